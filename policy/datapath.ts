/**
 * The policy datapath on a node: policy.c loaded with its maps pinned under `pinDir` (so enforcement outlives
 * the daemon), its two programs hooked on every endpoint's interface ahead of the datapath's own filter, the
 * writer that puts compiled policies into the maps, and the reader of its flow events. The programs are loaded
 * once per network (the network is a constant of each copy; the maps are one set), the cluster network's at open.
 *
 *   const dp = PolicyDatapath.open(objectPath, pinDir, onFlow);
 *   dp.writer.adopt(local);                          // after a restart: take over what the maps hold
 *   dp.hook(ifindex, networkId(undefined), 'host', null);       // a routed pod's host veth
 *   dp.hook(ifindex, networkId('default/blue'), 'pod', netns);  // a secondary interface in its pod
 *   dp.writer.apply(compile(world, all), local, nodeAddresses);
 *   setInterval(() => dp.poll(), 100);
 */
import { BpfObject, type BpfProgram, isKernelError, mountBpffs, RingBufferReader, TcHook } from '../kernel';
import {
  COUNTER, decodeFlowEvent, type FlowEventRecord, NETWORK_SECTION, type PolicyMaps, PolicyWriter, PROGRAMS, policyMaps,
} from './bpf-maps';

/** Where the policy's filters sit on a hook: priority 1, ahead of the datapath's own (from_pod is at 2). */
export const POLICY_FILTER = { handle: 1, priority: 1 } as const;

/** Network ids in the maps: 0 is the cluster network; others a stable hash of the NAD's `namespace/name`. */
export function networkId(network: string | undefined): number {
  if (network === undefined) return 0;
  let h = 0x811c9dc5; // FNV-1a, 32 bits
  for (const ch of Buffer.from(network)) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  return h === 0 ? 1 : h;
}

export type CounterName = keyof typeof COUNTER;
const COUNTER_NAMES = Object.fromEntries(Object.entries(COUNTER).map(([k, v]) => [v, k])) as Record<number, CounterName>;

/**
 * policy.c loaded for `network`: its maps those pinned under `pinDir` (created and pinned by the first load),
 * its programs specialised by the constants of `.rodata.network`: the network, and whether the programs check
 * a pod interface's packets against pol_ports (`ports`; the kernel must let tc programs ask for the netns
 * cookie). The caller closes it (attached programs stay).
 */
export function loadPolicyObject(objectPath: string, pinDir: string, network: number, ports = false): BpfObject {
  const obj = BpfObject.open(objectPath, { pinRoot: pinDir });
  try {
    const constants = Buffer.alloc(8);
    constants.writeUInt32LE(network, 0);
    constants.writeUInt32LE(ports ? 1 : 0, 4);
    obj.setConstants(NETWORK_SECTION, constants);
    obj.load();
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

/**
 * A secondary network's copy with the pol_ports check, or, where the verifier refuses it (a kernel before 6.13:
 * no bpf_get_netns_cookie for tc), without it: `ports` says which.
 */
export function loadNetworkCopy(objectPath: string, pinDir: string, network: number): { obj: BpfObject; ports: boolean } {
  if (network === 0) return { obj: loadPolicyObject(objectPath, pinDir, 0), ports: false };
  try {
    return { obj: loadPolicyObject(objectPath, pinDir, network, true), ports: true };
  } catch {
    return { obj: loadPolicyObject(objectPath, pinDir, network, false), ports: false };
  }
}

interface Programs {
  readonly obj: BpfObject;
  readonly from: BpfProgram;
  readonly to: BpfProgram;
}

export class PolicyDatapath {
  readonly writer: PolicyWriter;
  private readonly reader: RingBufferReader;
  /** The programs per network id, each loaded at its first endpoint (one verifier pass per network). */
  private readonly copies = new Map<number, Programs>();

  private constructor(
    private readonly objectPath: string,
    private readonly pinDir: string,
    cluster: BpfObject,
    readonly maps: PolicyMaps,
    onFlow: (e: FlowEventRecord) => void,
  ) {
    this.writer = new PolicyWriter(maps, { networkId });
    this.copies.set(0, programsOf(cluster));
    this.reader = new RingBufferReader(maps.events, (b) => onFlow(decodeFlowEvent(b)));
  }

  /**
   * Loads policy.c for the cluster network, reusing the maps pinned under `pinDir` (a restart) or pinning new
   * ones; `poll()` hands the flow events to `onFlow`.
   */
  static open(objectPath: string, pinDir: string, onFlow: (e: FlowEventRecord) => void): PolicyDatapath {
    mountBpffs();
    const obj = loadPolicyObject(objectPath, pinDir, 0);
    try {
      return new PolicyDatapath(objectPath, pinDir, obj, policyMaps(obj), onFlow);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Hooks both programs of the endpoint's network on its interface (replacing what an earlier daemon attached
   * there). The host end of a veth sees the pod's traffic on ingress; a pod's own interface on egress.
   */
  hook(ifindex: number, network: number, end: 'host' | 'pod', netns: string | null): void {
    const { from, to } = this.programs(network);
    const [outOf, into] = end === 'host' ? (['ingress', 'egress'] as const) : (['egress', 'ingress'] as const);
    new TcHook(ifindex, outOf, netns).attach(from, { ...POLICY_FILTER, replace: true });
    new TcHook(ifindex, into, netns).attach(to, { ...POLICY_FILTER, replace: true });
  }

  /** Takes the policy's filters off an interface (nothing to do when the interface or its netns is gone). */
  unhook(ifindex: number, netns: string | null): void {
    for (const point of ['ingress', 'egress'] as const) {
      try {
        new TcHook(ifindex, point, netns).detach(POLICY_FILTER);
      } catch (err) {
        if (!isKernelError(err)) throw err; // the netns is gone: so is the interface
      }
    }
  }

  /** Hands every flow event waiting now to `onFlow`; never blocks. */
  poll(): number {
    return this.reader.consume();
  }

  /** The datapath's counters summed over CPUs: network id -> counter -> value. */
  counters(): Map<number, Partial<Record<CounterName, bigint>>> {
    const out = new Map<number, Partial<Record<CounterName, bigint>>>();
    for (const [k, perCpu] of this.maps.counters.entriesPerCpu()) {
      const name = COUNTER_NAMES[k.counter];
      if (!name) continue;
      let m = out.get(k.network);
      if (!m) out.set(k.network, (m = {}));
      m[name] = perCpu.reduce((a, b) => a + b, 0n);
    }
    return out;
  }

  /** Closes handles; pinned maps and attached programs stay (enforcement goes on without the daemon). */
  close(): void {
    this.reader.close();
    for (const p of this.copies.values()) p.obj.close();
    this.copies.clear();
  }

  /** Whether the secondary networks' copies check pod interfaces' sources (undefined until one is loaded). */
  portsChecked: boolean | undefined;

  private programs(network: number): Programs {
    let p = this.copies.get(network);
    if (!p) {
      const { obj, ports } = loadNetworkCopy(this.objectPath, this.pinDir, network);
      if (network !== 0) this.portsChecked = ports;
      this.copies.set(network, (p = programsOf(obj)));
    }
    return p;
  }
}

function programsOf(obj: BpfObject): Programs {
  return { obj, from: obj.program(PROGRAMS.fromEndpoint), to: obj.program(PROGRAMS.toEndpoint) };
}

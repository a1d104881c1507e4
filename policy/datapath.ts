/**
 * The policy datapath on a node: policy.c loaded once with its maps pinned under `pinDir` (so enforcement
 * outlives the daemon), its two programs hooked on every endpoint's interface ahead of the datapath's own
 * filter, the writer that puts compiled policies into the maps, and the reader of its flow events.
 *
 *   const dp = PolicyDatapath.open(objectPath, pinDir, onFlow);
 *   dp.writer.adopt(local);                          // after a restart: take over what the maps hold
 *   dp.hook(ifindex, networkId, 'host', null);       // before the endpoint is reachable
 *   dp.writer.apply(compile(world, all), local, nodeAddresses);
 *   setInterval(() => dp.poll(), 100);
 */
import { BpfObject, type BpfProgram, isKernelError, mountBpffs, RingBufferReader, TcHook } from '../kernel';
import {
  COUNTER, type FlowEventRecord, FlowEventStruct, type PolicyMaps, PolicyWriter, PROGRAMS, policyMaps,
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

export class PolicyDatapath {
  readonly writer: PolicyWriter;
  private readonly reader: RingBufferReader;
  private readonly from: BpfProgram;
  private readonly to: BpfProgram;

  private constructor(
    private readonly obj: BpfObject,
    readonly maps: PolicyMaps,
    onFlow: (e: FlowEventRecord) => void,
  ) {
    this.writer = new PolicyWriter(maps, { networkId });
    this.from = obj.program(PROGRAMS.fromEndpoint);
    this.to = obj.program(PROGRAMS.toEndpoint);
    this.reader = new RingBufferReader(maps.events, (b) => onFlow(FlowEventStruct.decode(b)));
  }

  /**
   * Loads policy.c, reusing the maps pinned under `pinDir` (a restart) or pinning new ones; `poll()` hands
   * the flow events to `onFlow`.
   */
  static open(objectPath: string, pinDir: string, onFlow: (e: FlowEventRecord) => void): PolicyDatapath {
    mountBpffs();
    const obj = BpfObject.open(objectPath, { pinRoot: pinDir });
    try {
      obj.load();
      return new PolicyDatapath(obj, policyMaps(obj), onFlow);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /**
   * Hooks both programs on an endpoint's interface (replacing what an earlier daemon attached there) and
   * records its network. The host end of a veth sees the pod's traffic on ingress; a pod's own interface on egress.
   */
  hook(ifindex: number, network: number, end: 'host' | 'pod', netns: string | null): void {
    this.maps.ifaces.update(ifindex, network);
    const [outOf, into] = end === 'host' ? (['ingress', 'egress'] as const) : (['egress', 'ingress'] as const);
    new TcHook(ifindex, outOf, netns).attach(this.from, { ...POLICY_FILTER, replace: true });
    new TcHook(ifindex, into, netns).attach(this.to, { ...POLICY_FILTER, replace: true });
  }

  /** Forgets an interface (its filters went with it, or go now if it is still there). */
  unhook(ifindex: number, netns: string | null): void {
    this.maps.ifaces.delete(ifindex);
    for (const point of ['ingress', 'egress'] as const) {
      try {
        new TcHook(ifindex, point, netns).detach(POLICY_FILTER);
      } catch (err) {
        if (!isKernelError(err)) throw err; // the netns is gone: so is the interface
      }
    }
  }

  /** The interfaces the maps know (after a restart: those an earlier daemon hooked). */
  hookedInterfaces(): number[] {
    return [...this.maps.ifaces.keys()];
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
    this.obj.close();
  }
}

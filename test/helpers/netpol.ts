/**
 * The netpol truth table of the upstream e2e suite (`test/e2e/network/netpol`), on real sockets: an agent per
 * pod (netpol-agent.js) serves TCP and UDP ports 80 and 81 and probes other pods on request; a table is every
 * (source, destination, protocol, port) probed at once, compared with what the reference evaluator says, and
 * probed again until it agrees or the deadline passes (policies take effect asynchronously, as upstream allows).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Connection, evaluate, type PolicyPod, type World } from '../../policy/evaluate';
import { namespaceLabels, parsePolicy, type Protocol } from '../../policy/parse';
import { globalAddresses, runAsync, track } from '../../hack/cluster';
import { expectEventually } from './eventually';
import { run, TestCluster } from './plexus-harness';

export const NETPOL_PORTS: Array<[Protocol, number]> = [['TCP', 80], ['TCP', 81], ['UDP', 80], ['UDP', 81]];

/** Container ports as the upstream suite names them: serve-80-tcp, serve-81-udp, ... */
export const NAMED_PORTS = NETPOL_PORTS.map(([protocol, port]) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol }));

/** The upstream suite's world: namespaces x, y, z (labelled ns=...), each with pods a, b, c (labelled pod=...). */
export const NETPOL_NAMESPACES = ['x', 'y', 'z'];
export const NETPOL_NAMES = ['a', 'b', 'c'];

/** The manifests of that world (namespaces and pods serving the named ports), plus pod annotations. */
export function netpolManifests(annotations: Record<string, string> = {}): Record<string, unknown>[] {
  return [
    ...NETPOL_NAMESPACES.map((ns) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ns } } })),
    ...NETPOL_NAMESPACES.flatMap((ns) => NETPOL_NAMES.map((n) => netpolPod(ns, n, annotations))),
  ];
}

export function netpolPod(namespace: string, name: string, annotations: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { pod: name }, annotations },
    spec: { containers: [{ name: 'agent', image: 'agnhost', ports: NAMED_PORTS }] },
  };
}

export const networkPolicy = (namespace: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec });

/** A MultiNetworkPolicy for `networks` (the policy-for annotation's value). */
export const multiNetworkPolicy = (namespace: string, name: string, spec: Record<string, unknown>, networks: string) => ({
  apiVersion: 'k8s.cni.cncf.io/v1beta1', kind: 'MultiNetworkPolicy', metadata: { namespace, name, annotations: { 'k8s.v1.cni.cncf.io/policy-for': networks } }, spec,
});

/**
 * One set of MultiNetworkPolicies on `network` that uses most of the API at once: x closed to ingress, x/a open
 * to y/b on a named TCP port and UDP 81, y's egress to x on a UDP port range and to `blocks` (ipBlocks of the
 * network's addresses) on `blockPorts`.
 */
export function mixedMultiPolicies(network: string, blocks: Array<Record<string, unknown>>, blockPorts?: Array<Record<string, unknown>>): Record<string, unknown>[] {
  return [
    multiNetworkPolicy('x', 'deny-in', { podSelector: {}, policyTypes: ['Ingress'] }, network),
    multiNetworkPolicy('x', 'a-from-yb', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 'serve-80-tcp' }, { protocol: 'UDP', port: 81 }] }],
    }, network),
    multiNetworkPolicy('y', 'out', {
      podSelector: {}, policyTypes: ['Egress'],
      egress: [
        { to: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] },
        { to: blocks.map((ipBlock) => ({ ipBlock })), ...(blockPorts ? { ports: blockPorts } : {}) },
      ],
    }, network),
  ];
}

/** What the evaluator is given for `policies` in that world. */
export function netpolWorld(policies: Record<string, unknown>[]): World {
  return { policies: policies.map((p) => parsePolicy(p)), namespaces: new Map(NETPOL_NAMESPACES.map((n) => [n, namespaceLabels(n, { ns: n })])) };
}

export class NetpolAgent {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (results: boolean[]) => void>();
  private nextId = 1;
  private readonly ready: Promise<void>;

  constructor(netns: string) {
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, join(__dirname, 'netpol-agent.js'), '80', '81'], { stdio: ['pipe', 'pipe', 'pipe'] });
    track(this.child);
    let stderr = '';
    this.child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: this.child.stdout });
    this.ready = new Promise((resolve, reject) => {
      this.child.on('exit', (code) => reject(new Error(`netpol agent in ${netns} exited (${code}): ${stderr}`)));
      lines.on('line', (line) => {
        if (line === 'ready') return resolve();
        const { id, results } = JSON.parse(line) as { id: number; results: boolean[] };
        this.waiting.get(id)?.(results);
        this.waiting.delete(id);
      });
    });
  }

  /** An agent in `netns` once it serves (its sockets listen on any address, before the pod has one). */
  static async started(netns: string): Promise<NetpolAgent> {
    const agent = new NetpolAgent(netns);
    await agent.ready;
    return agent;
  }

  async request(req: Record<string, unknown>): Promise<boolean[]> {
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  /** `size`: a UDP probe's datagram size in bytes (default: a few dozen). */
  probe(targets: Array<{ ip: string; port: number; proto: Protocol; size?: number }>, timeoutMs = 1000): Promise<boolean[]> {
    return this.request({ targets: targets.map((t) => ({ ...t, proto: t.proto.toLowerCase() })), timeoutMs });
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill('SIGKILL');
  }
}

export interface NetpolPod {
  readonly pod: PolicyPod;
  readonly v4: string;
  readonly v6: string;
  readonly agent: NetpolAgent;
}

const cell = (c: { src: NetpolPod; dst: NetpolPod; protocol: Protocol; port: number }) =>
  `${c.src.pod.namespace}/${c.src.pod.name} -> ${c.dst.pod.namespace}/${c.dst.pod.name} ${c.protocol}/${c.port}`;

/** Every pair's reachability, probed through real sockets over one family; self-probes skipped (NP6). */
export async function probeTable(pods: readonly NetpolPod[], family: 4 | 6): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  await Promise.all(pods.map(async (src) => {
    const targets = pods.filter((d) => d !== src).flatMap((dst) => NETPOL_PORTS.map(([protocol, port]) => ({ dst, protocol, port })));
    const results = await src.agent.probe(targets.map((t) => ({ ip: family === 4 ? t.dst.v4 : t.dst.v6, port: t.port, proto: t.protocol })));
    targets.forEach((t, i) => out.set(cell({ src, ...t }), results[i]!));
  }));
  return out;
}

/** What the reference evaluator says for the same cells; `network` is the NAD the pods' addresses are on (none: the cluster network). */
export function expectedTable(world: World, pods: readonly NetpolPod[], family: 4 | 6, network?: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const src of pods) {
    for (const dst of pods.filter((d) => d !== src)) {
      for (const [protocol, port] of NETPOL_PORTS) {
        const ip = (p: NetpolPod) => (family === 4 ? p.v4 : p.v6);
        const conn: Connection = { src: { ip: ip(src), pod: src.pod }, dst: { ip: ip(dst), pod: dst.pod }, protocol, port, ...(network ? { network } : {}) };
        out.set(cell({ src, dst, protocol, port }), evaluate(world, conn).allowed);
      }
    }
  }
  return out;
}

/** Probes until the table is `want` (every cell), or `deadlineMs` passes; returns the cells still wrong. */
export async function converge(pods: readonly NetpolPod[], family: 4 | 6, want: Map<string, boolean>, deadlineMs = 20_000): Promise<string[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const got = await probeTable(pods, family);
    const wrong = [...want].filter(([k, v]) => got.get(k) !== v).map(([k, v]) => `${k}: want ${v ? 'allowed' : 'denied'}, got ${v ? 'denied' : 'allowed'}`);
    if (wrong.length === 0 || Date.now() > end) return wrong;
  }
}

/**
 * Writes the netpol world (its pods annotated with `annotations`), `extraPods` and `policies` as the cluster's
 * manifests; returns what the evaluator is given for them.
 */
export async function applyWorld(c: TestCluster, annotations: Record<string, string>, policies: Record<string, unknown>[], extraPods: Record<string, unknown>[] = []): Promise<World> {
  await c.writeManifests('world.yaml', [...netpolManifests(annotations), ...extraPods, ...policies]);
  return netpolWorld(policies);
}

/** Every pair of `pods` reaches each other, on each family, as the evaluator says for `network` (none: the cluster network). */
export async function expectTables(pods: readonly NetpolPod[], w: World, network?: string, opts: { families?: Array<4 | 6>; deadlineMs?: number } = {}): Promise<void> {
  for (const family of opts.families ?? [4, 6]) {
    expect({ family, wrong: await converge(pods, family, expectedTable(w, pods, family, network), opts.deadlineMs) }).toEqual({ family, wrong: [] });
  }
}

/** An interface's global IPv4 and IPv6 addresses, as ip shows them. */
export function addressesOf(netns: string, dev: string): { v4: string; v6: string } {
  const a = globalAddresses(netns, dev);
  return { v4: a.ipv4!, v6: a.ipv6! };
}

/** The tc filters on a pod's own interface, shown inside the pod (the independent witness of a hook). */
export const podFilters = (netns: string, dir: 'ingress' | 'egress', dev = 'net1'): string => run('ip', ['netns', 'exec', netns, 'tc', 'filter', 'show', 'dev', dev, dir]).stdout;

/**
 * TCP state, seen from outside: `from` opens three connections to `to`:81 from one source port, each ended by an
 * RST, 1.1 s apart (allowed connections are reported once a second per client, server and port). `forwarded`
 * gives the FORWARDED flows `plexusctl observe` shows for the pair (JSON lines). A tracker that forgets a
 * connection at its RST judges and reports each one: three flows from that port. Without TCP state the second
 * and third would match the first's entry: one. Port 81: the callers' earlier tests leave none of this pair's
 * connections reporting on it.
 */
export async function expectReopenedOnSamePorts(from: NetpolPod, to: NetpolPod, forwarded: () => string): Promise<void> {
  const sport = 40000 + Math.floor(Math.random() * 20000);
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 1100));
    expect(await from.agent.request({ connectFrom: { ip: to.v4, port: 81, sport }, timeoutMs: 3000 })).toEqual([true]);
  }
  await expectEventually(() => {
    const flows = forwarded().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { source: { port?: number } });
    expect(flows.filter((f) => f.source.port === sport)).toHaveLength(3);
  }, { timeoutMs: 10_000 });
}

/**
 * A one-node cluster for policy tests: plexus-routed as the cluster network on `pool`, the policy maps pinned
 * under a directory of this process's own; `daemon`: more of plexusd's configuration. `stop` ends the pods'
 * agents, the cluster and the pins.
 */
export async function startPolicyCluster(
  pool: Record<string, unknown>, tag: string, daemon: Record<string, unknown> = {},
): Promise<{ c: TestCluster; pinDir: string; stop(pods: readonly NetpolPod[]): Promise<void> }> {
  const pinDir = `/sys/fs/bpf/plexus/plxt-${tag}-${process.pid}`;
  const c = await TestCluster.start({
    clusterNetwork: { cniVersion: '1.1.0', name: 'cluster', plugins: [{ type: 'plexus-routed', ipam: { type: 'plexus-ipam', pool: pool['name'] } }] },
    daemon: { ipam: { pools: [pool] }, routed: { pinDir }, ...daemon },
  });
  return {
    c, pinDir,
    async stop(pods) {
      for (const p of pods) p.agent.stop();
      await c.destroy();
      run('rm', ['-rf', pinDir], { allowFail: true });
    },
  };
}

/**
 * Datagrams to port 80 that `dev` in `netns` saw arrive from `from` within `ms` (tcpdump in the receiver: the
 * witness), while `send` runs.
 */
export async function arrivals(netns: string, dev: string, from: string, send: () => void, ms = 3000): Promise<number> {
  const dump = runAsync('ip', ['netns', 'exec', netns, 'timeout', String(ms / 1000), 'tcpdump', '-i', dev, '-n', '-l', `udp and dst port 80 and src host ${from}`]);
  await new Promise((r) => setTimeout(r, 700)); // tcpdump listening
  send();
  return ((await dump).stdout.match(/ UDP, length/g) ?? []).length;
}

/** Three datagrams from `netns` to `dst`:80 with `src` as their source (IP_TRANSPARENT: any source, as a spoofer would). */
export function sendFrom(netns: string, src: string, dst: string): void {
  run('ip', ['netns', 'exec', netns, 'python3', '-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    's.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT',
    's.bind((sys.argv[1], 0))',
    'for _ in range(3): s.sendto(b"spoofed?", (sys.argv[2], 80))',
  ].join('\n'), src, dst]);
}

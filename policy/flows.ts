/**
 * Flows as `plexusctl observe` shows them, in the habits of `hubble observe` (network-policy.md §3): what the
 * datapath reported (a connection allowed when first seen, a drop, a connection cut by a policy change) with
 * both ends named (pod, namespace, labels) on the network it crossed. Pure: no kernel, no Node modules, so
 * plexusctl can filter and print without loading anything heavy.
 */

export type Verdict = 'FORWARDED' | 'DROPPED';
/**
 * Why a flow was dropped (Hubble has one POLICY_DENIED; the side that denied is worth telling), and
 * INVALID_SOURCE_IP as Hubble names it: the DPDK engine's anti-spoofing (a pod's port sending with another
 * pod's address).
 */
export type DropReason = 'POLICY_DENIED_EGRESS' | 'POLICY_DENIED_INGRESS' | 'INVALID_SOURCE_IP';
const WHY: Record<DropReason, string> = {
  POLICY_DENIED_EGRESS: "source's egress policy denies it",
  POLICY_DENIED_INGRESS: "destination's ingress policy denies it",
  INVALID_SOURCE_IP: "its source is another pod's address",
};

export interface FlowEndpoint {
  readonly ip: string;
  readonly port?: number;
  readonly namespace?: string;
  readonly pod_name?: string;
  /** "key=value", sorted. */
  readonly labels?: readonly string[];
  /** Set when no pod owns the address: this node, or anything else ("world"). */
  readonly identity?: 'host' | 'world';
}

export interface Flow {
  /** Incremented per flow by the daemon; a follower resumes after the last it saw. */
  readonly seq: number;
  readonly time: string;
  readonly node: string;
  /** 'cluster' or the NAD's namespace/name. */
  readonly network: string;
  readonly verdict: Verdict;
  readonly drop_reason?: DropReason;
  /** An established connection cut because the policy changed (NP7: Plexus judges connections again). */
  readonly cut?: true;
  readonly protocol: string;
  readonly source: FlowEndpoint;
  readonly destination: FlowEndpoint;
  /** Seen leaving the endpoint the interface belongs to (EGRESS) or entering it (INGRESS). */
  readonly traffic_direction: 'EGRESS' | 'INGRESS';
  readonly bytes: number;
}

/** IP protocol numbers as names; others stay numbers. */
export function protocolName(proto: number, v6: boolean): string {
  if (proto === 6) return 'TCP';
  if (proto === 17) return 'UDP';
  if (proto === 132) return 'SCTP';
  if (proto === 1 && !v6) return 'ICMPv4';
  if (proto === 58 && v6) return 'ICMPv6';
  return String(proto);
}

/** The filters of `plexusctl observe`; every one set must match (as hubble ANDs its flags). */
export interface FlowFilter {
  /** `namespace/name` or `name` (any namespace) at either end, the source, or the destination. */
  pod?: string;
  fromPod?: string;
  toPod?: string;
  namespace?: string;
  verdict?: Verdict;
  protocol?: string;
  port?: number;
  toPort?: number;
  network?: string;
  ip?: string;
}

const podMatches = (e: FlowEndpoint, want: string): boolean => {
  if (!e.pod_name) return false;
  const i = want.indexOf('/');
  return i < 0 ? e.pod_name === want : e.namespace === want.slice(0, i) && e.pod_name === want.slice(i + 1);
};

export function flowMatches(f: Flow, q: FlowFilter): boolean {
  const ends = [f.source, f.destination];
  if (q.pod !== undefined && !ends.some((e) => podMatches(e, q.pod!))) return false;
  if (q.fromPod !== undefined && !podMatches(f.source, q.fromPod)) return false;
  if (q.toPod !== undefined && !podMatches(f.destination, q.toPod)) return false;
  if (q.namespace !== undefined && !ends.some((e) => e.namespace === q.namespace)) return false;
  if (q.verdict !== undefined && f.verdict !== q.verdict) return false;
  if (q.protocol !== undefined && f.protocol.toLowerCase() !== q.protocol.toLowerCase()) return false;
  if (q.port !== undefined && !ends.some((e) => e.port === q.port)) return false;
  if (q.toPort !== undefined && f.destination.port !== q.toPort) return false;
  if (q.network !== undefined && f.network !== q.network) return false;
  if (q.ip !== undefined && !ends.some((e) => e.ip === q.ip)) return false;
  return true;
}

const endText = (e: FlowEndpoint): string => {
  const who = e.pod_name ? `${e.namespace}/${e.pod_name}` : e.identity === 'host' ? `host(${e.ip})` : e.ip;
  if (e.port === undefined) return who;
  return e.ip.includes(':') && !e.pod_name && e.identity !== 'host' ? `[${who}]:${e.port}` : `${who}:${e.port}`;
};

/** One line, as `hubble observe` prints its compact form: time, ends, network, protocol, verdict and why. */
export function formatFlow(f: Flow): string {
  const time = f.time.slice(11, 23);
  const why = f.verdict === 'DROPPED' ? ` (${f.cut ? 'connection cut: ' : ''}${WHY[f.drop_reason ?? 'POLICY_DENIED_INGRESS']})` : '';
  return `${time} [${f.network}] ${endText(f.source)} -> ${endText(f.destination)} ${f.protocol} ${f.verdict}${why}`;
}

/** A flow not built yet: what builds it, called once at most, when someone reads it. */
interface Pending {
  readonly seq: number;
  build?: () => Omit<Flow, 'seq'>;
  flow?: Flow;
}

/**
 * A bounded ring of recent flows with followers: once full, each new flow takes the oldest one's slot. A flow
 * can be pushed as a function that builds it: the datapath reports thousands a second and most are never read,
 * so naming and formatting them waits until someone asks (at once when someone follows).
 */
export class FlowRing {
  private readonly slots: Pending[] = [];
  private readonly followers = new Set<(f: Flow) => void>();
  private seq = 0;

  constructor(readonly capacity: number) {}

  push(flow: Omit<Flow, 'seq'> | (() => Omit<Flow, 'seq'>)): void {
    const p: Pending = typeof flow === 'function' ? { seq: ++this.seq, build: flow } : { seq: ++this.seq, flow: { ...flow, seq: this.seq } as Flow };
    if (this.slots.length < this.capacity) this.slots.push(p);
    else this.slots[(p.seq - 1) % this.capacity] = p;
    if (this.followers.size === 0) return;
    const f = built(p);
    for (const follow of this.followers) follow(f);
  }

  /** What the ring holds, oldest first. */
  list(): Flow[] {
    const oldest = this.slots.length < this.capacity ? 0 : this.seq % this.capacity;
    return [...this.slots.slice(oldest), ...this.slots.slice(0, oldest)].map(built);
  }

  /** Calls `f` for every flow pushed from now on, until the returned function is called. */
  follow(f: (flow: Flow) => void): () => void {
    this.followers.add(f);
    return () => this.followers.delete(f);
  }
}

function built(p: Pending): Flow {
  if (!p.flow) {
    p.flow = { ...p.build!(), seq: p.seq } as Flow;
    delete p.build;
  }
  return p.flow;
}

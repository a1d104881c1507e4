/**
 * The reference answer to "may this connection be made?" (network-policy.md §1.3), written for clarity, not
 * speed: the datapath's compiled maps must agree with it on every connection, which is how they are tested.
 *
 * A connection is allowed iff the source's egress allows it and the destination's ingress allows it (NP3). A
 * side allows when no policy isolates its pod in that direction (NP1), or when some rule of some isolating
 * policy matches (NP2: a union, order-free). Ingress also allows connections from the pod's own node (NP5) on
 * the cluster network. NetworkPolicies govern the cluster network only; a MultiNetworkPolicy governs only the
 * networks its policy-for names, with peers resolved to their addresses on that network (§2.1).
 */
import { cidrContains, parseIp } from '../core/address';
import type { Policy, PolicyPeer, PolicyPort, PolicyRule, Protocol } from './parse';
import { type Labels, matches } from './selector';

export interface ContainerPort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** A pod as policy sees it. hostNetwork pods are node traffic: no pod selector matches them (NP9). */
export interface PolicyPod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  readonly ports: readonly ContainerPort[];
  readonly hostNetwork?: boolean;
}

export interface Side {
  /** The address on the network the connection uses. */
  readonly ip: string;
  /** The pod that owns `ip` on that network, if one does. */
  readonly pod?: PolicyPod;
  /** The address is one of the destination pod's node's own (NP5). */
  readonly node?: boolean;
}

export interface Connection {
  readonly src: Side;
  readonly dst: Side;
  readonly protocol: Protocol;
  readonly port: number;
  /** The network (`namespace/name` of its NAD); undefined: the cluster network. */
  readonly network?: string;
}

export interface World {
  readonly policies: readonly Policy[];
  /** Namespace labels (namespaceLabels(): with kubernetes.io/metadata.name). */
  readonly namespaces: ReadonlyMap<string, Labels>;
}

export interface SideVerdict {
  readonly allowed: boolean;
  /** The policies that isolate the pod in this direction (none: not isolated). */
  readonly isolatedBy: readonly string[];
  /** The policies with a rule that matched. */
  readonly allowedBy: readonly string[];
  /** Allowed because the source is the destination's node (NP5). */
  readonly node?: boolean;
}

export interface Verdict {
  readonly allowed: boolean;
  readonly egress: SideVerdict;
  readonly ingress: SideVerdict;
}

const OPEN: SideVerdict = { allowed: true, isolatedBy: [], allowedBy: [] };

export function evaluate(world: World, c: Connection): Verdict {
  const egress = c.src.pod && !c.src.pod.hostNetwork ? side(world, c, c.src.pod, 'egress') : OPEN;
  let ingress = c.dst.pod && !c.dst.pod.hostNetwork ? side(world, c, c.dst.pod, 'ingress') : OPEN;
  if (!ingress.allowed && c.src.node && c.network === undefined) ingress = { ...ingress, allowed: true, node: true };
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

/** The policies that apply to connections on `network`. */
export function governs(p: Policy, network: string | undefined): boolean {
  return p.kind === 'NetworkPolicy' ? network === undefined : network !== undefined && (p.networks ?? []).includes(network);
}

function side(world: World, c: Connection, pod: PolicyPod, dir: 'ingress' | 'egress'): SideVerdict {
  const isolatedBy: string[] = [];
  const allowedBy: string[] = [];
  for (const p of world.policies) {
    const rules = p[dir];
    if (!rules || p.namespace !== pod.namespace || !governs(p, c.network) || !matches(p.podSelector, pod.labels)) continue;
    const id = `${p.namespace}/${p.name}`;
    isolatedBy.push(id);
    const peer = dir === 'ingress' ? c.src : c.dst;
    if (rules.some((r) => ruleMatches(world, p, r, peer, c))) allowedBy.push(id);
  }
  return { allowed: isolatedBy.length === 0 || allowedBy.length > 0, isolatedBy, allowedBy };
}

function ruleMatches(world: World, p: Policy, r: PolicyRule, peer: Side, c: Connection): boolean {
  const peerOk = !r.peers || r.peers.some((x) => peerMatches(world, p, x, peer));
  // Named ports resolve on the destination pod, whichever side the rule is on (F10).
  return peerOk && (!r.ports || r.ports.some((x) => portMatches(x, c)));
}

function peerMatches(world: World, p: Policy, x: PolicyPeer, peer: Side): boolean {
  if (x.kind === 'ipBlock') {
    const ip = parseIp(peer.ip);
    return cidrContains(x.cidr, ip) && !x.except.some((e) => cidrContains(e, ip)); // F12: pod addresses too
  }
  const pod = peer.pod;
  if (!pod || pod.hostNetwork) return false;
  if (x.namespaces === undefined) {
    if (pod.namespace !== p.namespace) return false;
  } else if (!matches(x.namespaces, world.namespaces.get(pod.namespace) ?? {})) return false;
  return matches(x.pods, pod.labels);
}

export function portMatches(x: PolicyPort, c: Connection): boolean {
  if (x.protocol !== c.protocol) return false; // F14: SCTP is never TCP
  if (x.port === undefined) return true;
  if (typeof x.port === 'number') return c.port >= x.port && c.port <= (x.endPort ?? x.port);
  const dst = c.dst.pod && !c.dst.pod.hostNetwork ? c.dst.pod : undefined; // a hostNetwork pod's ports are the node's
  return (dst?.ports ?? []).some((cp) => cp.name === x.port && cp.protocol === c.protocol && cp.port === c.port);
}

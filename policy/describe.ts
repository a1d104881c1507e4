/**
 * What `plexusctl policy NAMESPACE/POD` shows: per network the pod is on, and per direction, whether the pod
 * is isolated and which policies select it, each rule in words (selectors in kubectl's label syntax). It reads
 * the same World as the evaluator, so what it says is what is evaluated.
 */
import { formatIp, familyBits } from '../core/address';
import { type PolicyPod, type World, governs } from './evaluate';
import type { PolicyPeer, PolicyPort, PolicyRule } from './parse';
import { type Selector, matches } from './selector';

export interface DirectionView {
  readonly isolated: boolean;
  readonly policies: ReadonlyArray<{ readonly policy: string; readonly kind: string; readonly rules: readonly string[] }>;
}

export interface NetworkView {
  /** `cluster`, or the NAD `namespace/name`. */
  readonly network: string;
  readonly ingress: DirectionView;
  readonly egress: DirectionView;
}

export interface PodPolicyView {
  readonly pod: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly networks: readonly NetworkView[];
}

/** The pod's view on the cluster network and on every secondary network a MultiNetworkPolicy of its namespace names. */
export function describePod(world: World, pod: PolicyPod): PodPolicyView {
  const secondary = [...new Set(world.policies.filter((p) => p.kind === 'MultiNetworkPolicy' && p.namespace === pod.namespace).flatMap((p) => p.networks ?? []))].sort();
  const networks = [undefined, ...secondary].map((network) => ({
    network: network ?? 'cluster',
    ingress: direction(world, pod, network, 'ingress'),
    egress: direction(world, pod, network, 'egress'),
  }));
  return { pod: `${pod.namespace}/${pod.name}`, labels: pod.labels, networks };
}

function direction(world: World, pod: PolicyPod, network: string | undefined, dir: 'ingress' | 'egress'): DirectionView {
  const policies = pod.hostNetwork ? [] : world.policies
    .filter((p) => p[dir] !== undefined && p.namespace === pod.namespace && governs(p, network) && matches(p.podSelector, pod.labels))
    .map((p) => ({ policy: `${p.namespace}/${p.name}`, kind: p.kind, rules: (p[dir] as readonly PolicyRule[]).map((r) => ruleText(r, dir, p.namespace)) }));
  return { isolated: policies.length > 0, policies };
}

export function ruleText(r: PolicyRule, dir: 'ingress' | 'egress', namespace: string): string {
  const word = dir === 'ingress' ? 'from' : 'to';
  const peers = r.peers ? r.peers.map((p) => peerText(p, namespace)).join(' or ') : 'anywhere';
  const ports = r.ports ? r.ports.map(portText).join(', ') : 'any port';
  return `allow ${word} ${peers} on ${ports}`;
}

function peerText(p: PolicyPeer, namespace: string): string {
  if (p.kind === 'ipBlock') {
    const text = (c: { family: 'v4' | 'v6'; base: bigint; prefix: number }) => (c.prefix === familyBits(c.family) ? formatIp({ family: c.family, value: c.base }) : `${formatIp({ family: c.family, value: c.base })}/${c.prefix}`);
    return `${text(p.cidr)}${p.except.length ? ` except ${p.except.map(text).join(', ')}` : ''}`;
  }
  const pods = p.pods.requirements.length ? `pods {${selectorText(p.pods)}}` : 'all pods';
  const where = p.namespaces === undefined ? `in namespace ${namespace}` : p.namespaces.requirements.length ? `in namespaces {${selectorText(p.namespaces)}}` : 'in all namespaces';
  return `${pods} ${where}`;
}

function portText(p: PolicyPort): string {
  if (p.port === undefined) return `all ${p.protocol} ports`;
  if (typeof p.port === 'string') return `${p.protocol} port named ${p.port}`;
  return p.endPort !== undefined && p.endPort !== p.port ? `${p.protocol} ${p.port}-${p.endPort}` : `${p.protocol} ${p.port}`;
}

/** kubectl's label selector syntax: k=v, k in (a,b), k notin (a), k, !k. */
export function selectorText(s: Selector): string {
  return s.requirements.map((r) => {
    switch (r.operator) {
      case 'In':
        return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
      case 'NotIn':
        return `${r.key} notin (${r.values.join(',')})`;
      case 'Exists':
        return r.key;
      case 'DoesNotExist':
        return `!${r.key}`;
    }
  }).join(',');
}

/**
 * NetworkPolicy (networking.k8s.io/v1) and MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1, v1beta2) manifests,
 * validated and defaulted as the API server would (network-policy.md §1.2): the file source has no API server
 * in front of it, and the Kubernetes source may meet objects written before a field existed. A policy the API
 * would refuse is refused with every problem named by its path; a valid one becomes a `Policy`, in which
 * every default is explicit and nothing is left to interpret.
 */
import { type Cidr, cidrContainsCidr, parseCidr } from '../core/address';
import { PlexusError } from '../core/errors';
import { EVERYTHING, type Labels, type Selector, parseSelector } from './selector';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** One `ports[]` entry: a protocol, and a port number, range or name (none: every port of the protocol). */
export interface PolicyPort {
  readonly protocol: Protocol;
  readonly port?: number | string;
  /** Inclusive; only with a numeric `port` (F8). */
  readonly endPort?: number;
}

export type PolicyPeer =
  /** Pods: `namespaces` undefined means the policy's own namespace (F5). */
  | { readonly kind: 'pods'; readonly pods: Selector; readonly namespaces?: Selector }
  | { readonly kind: 'ipBlock'; readonly cidr: Cidr; readonly except: readonly Cidr[]; readonly text: string };

/** `peers` / `ports` undefined: every peer / every port (F4). */
export interface PolicyRule {
  readonly peers?: readonly PolicyPeer[];
  readonly ports?: readonly PolicyPort[];
}

export interface Policy {
  readonly kind: 'NetworkPolicy' | 'MultiNetworkPolicy';
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: Selector;
  /** Present iff the (defaulted) policyTypes holds Ingress: then the selected pods are isolated for ingress. */
  readonly ingress?: readonly PolicyRule[];
  readonly egress?: readonly PolicyRule[];
  /** MultiNetworkPolicy: the networks (`namespace/name` of their NADs) it applies to (policy-for). */
  readonly networks?: readonly string[];
}

export const POLICY_FOR_ANNOTATION = 'k8s.v1.cni.cncf.io/policy-for';
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const PEER_KEYS = ['podSelector', 'namespaceSelector', 'ipBlock'];

interface Meta {
  name?: unknown;
  namespace?: unknown;
  annotations?: Record<string, unknown>;
}

/** A NetworkPolicy or MultiNetworkPolicy manifest as a Policy, or InvalidConfig naming every problem. */
export function parsePolicy(doc: unknown): Policy {
  const d = (doc ?? {}) as { apiVersion?: unknown; kind?: unknown; metadata?: Meta; spec?: unknown };
  const kind = d.kind === 'NetworkPolicy' || d.kind === 'MultiNetworkPolicy' ? d.kind : undefined;
  const meta = d.metadata ?? {};
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
  const name = typeof meta.name === 'string' ? meta.name : '';
  const what = `${String(d.kind)} ${namespace}/${name || '?'}`;
  const problems: string[] = [];
  if (!kind) problems.push(`kind: must be NetworkPolicy or MultiNetworkPolicy`);
  else if (kind === 'NetworkPolicy' && d.apiVersion !== 'networking.k8s.io/v1') problems.push(`apiVersion: must be networking.k8s.io/v1`);
  else if (kind === 'MultiNetworkPolicy' && d.apiVersion !== 'k8s.cni.cncf.io/v1beta1' && d.apiVersion !== 'k8s.cni.cncf.io/v1beta2') {
    problems.push(`apiVersion: must be k8s.cni.cncf.io/v1beta1 or v1beta2`);
  }
  if (!name) problems.push('metadata.name: required');
  const spec = (d.spec ?? {}) as Record<string, unknown>;
  if (typeof spec !== 'object' || Array.isArray(spec)) problems.push('spec: must be an object');
  for (const k of Object.keys(spec)) if (!['podSelector', 'ingress', 'egress', 'policyTypes'].includes(k)) problems.push(`spec.${k}: unknown field`);
  const podSelector = parseSelector(spec['podSelector'], 'spec.podSelector', problems);
  const types = policyTypes(spec, problems);
  const rules = (dir: 'ingress' | 'egress'): PolicyRule[] => {
    const raw = spec[dir];
    if (raw === undefined || raw === null) return [];
    if (!Array.isArray(raw)) {
      problems.push(`spec.${dir}: must be a list`);
      return [];
    }
    return raw.map((r, i) => parseRule(r, `spec.${dir}[${i}]`, dir === 'ingress' ? 'from' : 'to', problems));
  };
  const ingress = rules('ingress');
  const egress = rules('egress');
  let networks: string[] | undefined;
  if (kind === 'MultiNetworkPolicy') {
    const raw = meta.annotations?.[POLICY_FOR_ANNOTATION];
    networks = typeof raw === 'string' ? raw.split(',').map((s) => s.replace(/\s+/g, '')).filter(Boolean).map((n) => (n.includes('/') ? n : `${namespace}/${n}`)) : [];
    if (networks.length === 0) problems.push(`metadata.annotations.${POLICY_FOR_ANNOTATION}: required (the networks the policy is for)`);
  }
  if (problems.length) throw new PlexusError('InvalidConfig', `${what} refused: ${problems.join('; ')}`);
  return {
    kind: kind!, namespace, name, podSelector,
    ...(types.has('Ingress') ? { ingress } : {}),
    ...(types.has('Egress') ? { egress } : {}),
    ...(networks ? { networks } : {}),
  };
}

/** F2: absent or empty means Ingress, plus Egress when there are egress rules. */
function policyTypes(spec: Record<string, unknown>, problems: string[]): Set<'Ingress' | 'Egress'> {
  const raw = spec['policyTypes'];
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    const egress = spec['egress'];
    return new Set(Array.isArray(egress) && egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
  }
  const out = new Set<'Ingress' | 'Egress'>();
  if (!Array.isArray(raw) || raw.length > 2) {
    problems.push('spec.policyTypes: must list at most Ingress and Egress');
    return out;
  }
  raw.forEach((t, i) => {
    if (t === 'Ingress' || t === 'Egress') out.add(t);
    else problems.push(`spec.policyTypes[${i}]: must be Ingress or Egress, not ${JSON.stringify(t)}`);
  });
  return out;
}

function parseRule(raw: unknown, path: string, peersKey: 'from' | 'to', problems: string[]): PolicyRule {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${path}: must be an object`);
    return {};
  }
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) if (k !== peersKey && k !== 'ports') problems.push(`${path}.${k}: unknown field`);
  const out: { peers?: PolicyPeer[]; ports?: PolicyPort[] } = {};
  const peers = r[peersKey];
  if (Array.isArray(peers) && peers.length > 0) out.peers = peers.map((p, i) => parsePeer(p, `${path}.${peersKey}[${i}]`, problems)).filter((p): p is PolicyPeer => p !== undefined);
  else if (peers !== undefined && peers !== null && !Array.isArray(peers)) problems.push(`${path}.${peersKey}: must be a list`);
  const ports = r['ports'];
  if (Array.isArray(ports) && ports.length > 0) out.ports = ports.map((p, i) => parsePort(p, `${path}.ports[${i}]`, problems)).filter((p): p is PolicyPort => p !== undefined);
  else if (ports !== undefined && ports !== null && !Array.isArray(ports)) problems.push(`${path}.ports: must be a list`);
  return out;
}

function parsePeer(raw: unknown, path: string, problems: string[]): PolicyPeer | undefined {
  const p = (raw ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(p)) if (!PEER_KEYS.includes(k)) problems.push(`${path}.${k}: unknown field`);
  const set = PEER_KEYS.filter((k) => p[k] !== undefined && p[k] !== null);
  if (set.length === 0) {
    problems.push(`${path}: must specify a peer (podSelector, namespaceSelector or ipBlock)`); // F6
    return undefined;
  }
  if (set.includes('ipBlock')) {
    if (set.length > 1) {
      problems.push(`${path}: may not specify both ipBlock and another peer`); // F6
      return undefined;
    }
    return parseIpBlock(p['ipBlock'], `${path}.ipBlock`, problems);
  }
  return {
    kind: 'pods',
    pods: p['podSelector'] === undefined || p['podSelector'] === null ? EVERYTHING : parseSelector(p['podSelector'], `${path}.podSelector`, problems),
    ...(p['namespaceSelector'] !== undefined && p['namespaceSelector'] !== null ? { namespaces: parseSelector(p['namespaceSelector'], `${path}.namespaceSelector`, problems) } : {}),
  };
}

function parseIpBlock(raw: unknown, path: string, problems: string[]): PolicyPeer | undefined {
  const b = (raw ?? {}) as { cidr?: unknown; except?: unknown };
  if (typeof b.cidr !== 'string') {
    problems.push(`${path}.cidr: required`);
    return undefined;
  }
  let cidr: Cidr;
  try {
    cidr = parseCidr(b.cidr);
  } catch (e) {
    problems.push(`${path}.cidr: ${(e as Error).message}`);
    return undefined;
  }
  const except: Cidr[] = [];
  const list = b.except ?? [];
  if (!Array.isArray(list)) problems.push(`${path}.except: must be a list`);
  else {
    list.forEach((x, i) => {
      try {
        const c = parseCidr(String(x));
        // F7: a strict subset: inside the block and longer.
        if (c.family !== cidr.family || !cidrContainsCidr(cidr, c) || c.prefix <= cidr.prefix) problems.push(`${path}.except[${i}]: ${String(x)} must be a strict subset of ${b.cidr}`);
        else except.push(c);
      } catch (e) {
        problems.push(`${path}.except[${i}]: ${(e as Error).message}`);
      }
    });
  }
  return { kind: 'ipBlock', cidr, except, text: b.cidr };
}

const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/; // IANA_SVC_NAME, without "--"

/**
 * endPort is taken in MultiNetworkPolicy v1beta1 too: v1beta2 objects (which have it) are served through v1beta1
 * unchanged (the CRD preserves unknown fields), and dropping the field would narrow the policy silently (F8).
 */
function parsePort(raw: unknown, path: string, problems: string[]): PolicyPort | undefined {
  const p = (raw ?? {}) as { protocol?: unknown; port?: unknown; endPort?: unknown };
  for (const k of Object.keys(p)) if (!['protocol', 'port', 'endPort'].includes(k)) problems.push(`${path}.${k}: unknown field`);
  const protocol = p.protocol ?? 'TCP'; // F3
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') {
    problems.push(`${path}.protocol: must be TCP, UDP or SCTP, not ${JSON.stringify(protocol)}`); // F9
    return undefined;
  }
  const out: { protocol: Protocol; port?: number | string; endPort?: number } = { protocol };
  if (p.port !== undefined && p.port !== null) {
    if (typeof p.port === 'number') {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) problems.push(`${path}.port: must be 1-65535, not ${p.port}`);
      else out.port = p.port;
    } else if (typeof p.port === 'string') {
      if (/^[0-9]+$/.test(p.port)) problems.push(`${path}.port: a number must not be quoted (${JSON.stringify(p.port)})`);
      else if (!PORT_NAME.test(p.port) || p.port.includes('--')) problems.push(`${path}.port: ${JSON.stringify(p.port)} is not a valid port name`);
      else out.port = p.port;
    } else problems.push(`${path}.port: must be a number or a port name`);
  }
  if (p.endPort !== undefined && p.endPort !== null) {
    // F8: needs a numeric port, and is not below it.
    if (typeof p.endPort !== 'number' || !Number.isInteger(p.endPort) || p.endPort < 1 || p.endPort > 65535) problems.push(`${path}.endPort: must be 1-65535`);
    else if (typeof out.port !== 'number') problems.push(`${path}.endPort: may only be set with a numeric port`);
    else if (p.endPort < out.port) problems.push(`${path}.endPort: must be greater than or equal to port (${out.port})`);
    else out.endPort = p.endPort;
  }
  return out;
}

/** F11: every namespace carries its name as a label, which the API server sets and a manifest may lack. */
export function namespaceLabels(name: string, labels: Labels | undefined): Labels {
  return { ...(labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

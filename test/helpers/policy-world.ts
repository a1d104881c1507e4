/**
 * The world policy tests share: namespaces x, y, z with pods a, b, c on the cluster network (IPv4 and IPv6) and
 * a secondary network, a twin of x/a (another pod of its identity), a hostNetwork pod, random policy sets (fast-check) over them, and every connection worth
 * asking about (pod pairs, the node, outside addresses), for the compiler's and the eBPF program's tests.
 */
import fc from 'fast-check';
import type { Attachment } from '../../policy/compile';
import type { Connection, ContainerPort, PolicyPod, Side, World } from '../../policy/evaluate';
import { type Protocol, namespaceLabels, parsePolicy } from '../../policy/parse';

export const BLUE = 'x/blue';
export const portsOf: Record<string, ContainerPort[]> = {
  a: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
  b: [{ name: 'http', port: 81, protocol: 'TCP' }], // the same name on another port: resolution is per pod
  c: [],
};
export const attachments: Attachment[] = [];
['x', 'y', 'z'].forEach((ns, i) => ['a', 'b', 'c'].forEach((name, j) => {
  const pod: PolicyPod = { namespace: ns, name, labels: { pod: name, ...(j === 2 ? { tier: 'db' } : {}) }, ports: portsOf[name]! };
  attachments.push({ pod, ips: [`10.0.${i}.${j + 1}`, `fd00::${i}:${j + 1}`] });
  if (name !== 'c') attachments.push({ pod, network: BLUE, ips: [`10.9.${i}.${j + 1}`] });
}));
// A twin of x/a (same namespace, labels and ports, another name): one identity, two endpoints sharing compiled maps.
const twin: PolicyPod = { namespace: 'x', name: 'a2', labels: { pod: 'a' }, ports: portsOf['a']! };
attachments.push({ pod: twin, ips: ['10.0.0.9', 'fd00::0:9'] }, { pod: twin, network: BLUE, ips: ['10.9.0.9'] });
const host: PolicyPod = { namespace: 'x', name: 'h', labels: { pod: 'a' }, ports: portsOf['a']!, hostNetwork: true };
attachments.push({ pod: host, ips: ['192.168.0.10'] });
export const namespaces = new Map(['x', 'y', 'z'].map((n) => [n, namespaceLabels(n, { ns: n })]));

const selector = fc.constantFrom<object>({}, { matchLabels: { pod: 'a' } }, { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
  { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, { matchLabels: { pod: 'nobody' } });
const nsSelector = fc.constantFrom<object>({}, { matchLabels: { ns: 'y' } }, { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['x', 'z'] }] });
const ipBlock = fc.constantFrom<object>(
  { cidr: '10.0.0.0/16' }, { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] }, { cidr: '10.0.1.0/24', except: ['10.0.1.2/32'] },
  { cidr: '10.0.2.1/32' }, { cidr: '10.9.0.0/16', except: ['10.9.0.1/32', '10.9.2.0/24'] }, { cidr: '0.0.0.0/0' }, { cidr: '192.168.0.0/16' },
  { cidr: 'fd00::/64', except: ['fd00::1:0/112'] }, { cidr: 'fd00::2:3/128' }, { cidr: '::/0' },
);
const peer = fc.oneof(
  selector.map((s) => ({ podSelector: s })),
  nsSelector.map((s) => ({ namespaceSelector: s })),
  fc.tuple(selector, nsSelector).map(([p, n]) => ({ podSelector: p, namespaceSelector: n })),
  ipBlock.map((b) => ({ ipBlock: b })),
);
const port = fc.constantFrom<object>({ port: 80 }, { port: 81, protocol: 'UDP' }, { protocol: 'SCTP' }, { port: 80, endPort: 81 }, { port: 'http' },
  { port: 'dns', protocol: 'UDP' }, { protocol: 'TCP' }, { port: 53, protocol: 'UDP' }, { port: 1, endPort: 79 }, { port: 'http', protocol: 'UDP' });
const rule = (peersKey: 'from' | 'to') => fc.record({ peers: fc.option(fc.array(peer, { maxLength: 2 }), { nil: undefined }), ports: fc.option(fc.array(port, { maxLength: 2 }), { nil: undefined }) })
  .map((r) => ({ ...(r.peers ? { [peersKey]: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
export const policy = fc.record({
  multi: fc.boolean(), namespace: fc.constantFrom('x', 'y', 'z'), podSelector: selector,
  types: fc.constantFrom<string[] | undefined>(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
  ingress: fc.option(fc.array(rule('from'), { maxLength: 2 }), { nil: undefined }), egress: fc.option(fc.array(rule('to'), { maxLength: 2 }), { nil: undefined }),
});

export function toWorld(specs: Array<fc.RecordValue<{ multi: boolean; namespace: string; podSelector: object; types: string[] | undefined; ingress: object[] | undefined; egress: object[] | undefined }>>): World {
  const policies = specs.map((p, i) => parsePolicy({
    apiVersion: p.multi ? 'k8s.cni.cncf.io/v1beta2' : 'networking.k8s.io/v1', kind: p.multi ? 'MultiNetworkPolicy' : 'NetworkPolicy',
    metadata: { namespace: p.namespace, name: `p${i}`, ...(p.multi ? { annotations: { 'k8s.v1.cni.cncf.io/policy-for': BLUE } } : {}) },
    spec: { podSelector: p.podSelector, ...(p.types ? { policyTypes: p.types } : {}), ...(p.ingress ? { ingress: p.ingress } : {}), ...(p.egress ? { egress: p.egress } : {}) },
  }));
  return { policies, namespaces };
}

export const PROBES: Array<[Protocol, number]> = [['TCP', 80], ['TCP', 81], ['UDP', 53], ['UDP', 81], ['SCTP', 80], ['TCP', 8080]];

/** Every connection worth asking about on both networks: pod pairs, the node, the world, a hostNetwork pod. */
export function connections(): Connection[] {
  const out: Connection[] = [];
  for (const network of [undefined, BLUE]) {
    const here = attachments.filter((a) => a.network === network);
    for (const family of [0, 1]) {
      const sides: Side[] = [...here.filter((a) => a.ips[family]).map((a) => ({ ip: a.ips[family]!, pod: a.pod })),
        { ip: family ? 'fd00:ffff::1' : '192.168.0.1', node: true }, { ip: family ? 'fd00::1:200' : '10.0.1.200' }, { ip: family ? '2001:db8::1' : '172.16.0.1' }];
      for (const src of sides) {
        for (const dst of sides) {
          if (src === dst || (!src.pod && !dst.pod) || ('node' in dst)) continue;
          for (const [protocol, port] of PROBES) out.push({ src, dst, protocol, port, ...(network ? { network } : {}) });
        }
      }
    }
  }
  return out;
}
export const show = (c: Connection) => `${c.network ?? 'cluster'} ${c.src.pod ? `${c.src.pod.namespace}/${c.src.pod.name}` : c.src.ip} -> ${c.dst.pod ? `${c.dst.pod.namespace}/${c.dst.pod.name}` : c.dst.ip} ${c.protocol}/${c.port}`;


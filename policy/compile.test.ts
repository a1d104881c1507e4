/**
 * The compiled maps (identities, ipcache, per-endpoint LPM tables) must give the reference evaluator's answer
 * for every connection: random policy sets (fast-check) over namespaces x, y, z with pods a, b, c on the
 * cluster network and a secondary one, every pair and several protocols and ports, plus the node and outside
 * addresses. Then the lookup count stays fixed while the rules grow.
 */
import fc from 'fast-check';
import { ANY_PEER, type Attachment, compile, endpointKey, rangeBlocks, verdict } from './compile';
import { type Connection, type ContainerPort, type PolicyPod, type World, evaluate } from './evaluate';
import { type Protocol, namespaceLabels, parsePolicy } from './parse';

const BLUE = 'x/blue';
const portsOf: Record<string, ContainerPort[]> = {
  a: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }],
  b: [{ name: 'http', port: 81, protocol: 'TCP' }], // the same name on another port: resolution is per pod
  c: [],
};
const attachments: Attachment[] = [];
['x', 'y', 'z'].forEach((ns, i) => ['a', 'b', 'c'].forEach((name, j) => {
  const pod: PolicyPod = { namespace: ns, name, labels: { pod: name, ...(j === 2 ? { tier: 'db' } : {}) }, ports: portsOf[name]! };
  attachments.push({ pod, ips: [`10.0.${i}.${j + 1}`] });
  if (name !== 'c') attachments.push({ pod, network: BLUE, ips: [`10.9.${i}.${j + 1}`] });
}));
const host: PolicyPod = { namespace: 'x', name: 'h', labels: { pod: 'a' }, ports: portsOf['a']!, hostNetwork: true };
attachments.push({ pod: host, ips: ['192.168.0.10'] });
const namespaces = new Map(['x', 'y', 'z'].map((n) => [n, namespaceLabels(n, { ns: n })]));

const selector = fc.constantFrom<object>({}, { matchLabels: { pod: 'a' } }, { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
  { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, { matchLabels: { pod: 'nobody' } });
const nsSelector = fc.constantFrom<object>({}, { matchLabels: { ns: 'y' } }, { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['x', 'z'] }] });
const ipBlock = fc.constantFrom<object>(
  { cidr: '10.0.0.0/16' }, { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] }, { cidr: '10.0.1.0/24', except: ['10.0.1.2/32'] },
  { cidr: '10.0.2.1/32' }, { cidr: '10.9.0.0/16', except: ['10.9.0.1/32', '10.9.2.0/24'] }, { cidr: '0.0.0.0/0' }, { cidr: '192.168.0.0/16' },
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
const policy = fc.record({
  multi: fc.boolean(), namespace: fc.constantFrom('x', 'y', 'z'), podSelector: selector,
  types: fc.constantFrom<string[] | undefined>(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
  ingress: fc.option(fc.array(rule('from'), { maxLength: 2 }), { nil: undefined }), egress: fc.option(fc.array(rule('to'), { maxLength: 2 }), { nil: undefined }),
});

function toWorld(specs: Array<fc.RecordValue<{ multi: boolean; namespace: string; podSelector: object; types: string[] | undefined; ingress: object[] | undefined; egress: object[] | undefined }>>): World {
  const policies = specs.map((p, i) => parsePolicy({
    apiVersion: p.multi ? 'k8s.cni.cncf.io/v1beta2' : 'networking.k8s.io/v1', kind: p.multi ? 'MultiNetworkPolicy' : 'NetworkPolicy',
    metadata: { namespace: p.namespace, name: `p${i}`, ...(p.multi ? { annotations: { 'k8s.v1.cni.cncf.io/policy-for': BLUE } } : {}) },
    spec: { podSelector: p.podSelector, ...(p.types ? { policyTypes: p.types } : {}), ...(p.ingress ? { ingress: p.ingress } : {}), ...(p.egress ? { egress: p.egress } : {}) },
  }));
  return { policies, namespaces };
}

const PROBES: Array<[Protocol, number]> = [['TCP', 80], ['TCP', 81], ['UDP', 53], ['UDP', 81], ['SCTP', 80], ['TCP', 8080]];

/** Every connection worth asking about on both networks: pod pairs, the node, the world, a hostNetwork pod. */
function connections(): Connection[] {
  const out: Connection[] = [];
  for (const network of [undefined, BLUE]) {
    const here = attachments.filter((a) => a.network === network);
    const sides = [...here.map((a) => ({ ip: a.ips[0]!, pod: a.pod })), { ip: '192.168.0.1', node: true }, { ip: '10.0.1.200' }, { ip: '172.16.0.1' }];
    for (const src of sides) {
      for (const dst of sides) {
        if (src === dst || (!src.pod && !dst.pod) || ('node' in dst)) continue;
        for (const [protocol, port] of PROBES) out.push({ src, dst, protocol, port, ...(network ? { network } : {}) });
      }
    }
  }
  return out;
}
const ALL = connections();
const show = (c: Connection) => `${c.network ?? 'cluster'} ${c.src.pod ? `${c.src.pod.namespace}/${c.src.pod.name}` : c.src.ip} -> ${c.dst.pod ? `${c.dst.pod.namespace}/${c.dst.pod.name}` : c.dst.ip} ${c.protocol}/${c.port}`;

test('the compiled maps agree with the reference evaluator on every connection, for random policy sets', () => {
  fc.assert(fc.property(fc.array(policy, { maxLength: 5 }), (specs) => {
    const w = toWorld(specs);
    const compiled = compile(w, attachments);
    const wrong = ALL.filter((c) => verdict(compiled, c) !== evaluate(w, c).allowed).map(show);
    expect(wrong.slice(0, 5)).toEqual([]);
  }), { numRuns: 300 });
});

test('identities: pods that differ only in name share one; labels, namespace or named ports make another; hostNetwork pods have none', () => {
  const c = compile({ policies: [], namespaces }, attachments);
  const id = (ns: string, name: string, network?: string) => c.ipcache.get(network ?? '')!.get(attachments.find((a) => a.pod.namespace === ns && a.pod.name === name && a.network === network)!.ips[0]!);
  expect(id('x', 'a')).toBe(id('x', 'a', BLUE));
  expect(new Set([id('x', 'a'), id('x', 'b'), id('y', 'a')]).size).toBe(3);
  expect(c.ipcache.get('')!.has('192.168.0.10')).toBe(false);
  const twin = compile({ policies: [], namespaces }, [...attachments, { pod: { namespace: 'x', name: 'a2', labels: { pod: 'a' }, ports: portsOf['a']! }, ips: ['10.0.0.50'] }]);
  expect(twin.ipcache.get('')!.get('10.0.0.50')).toBe(twin.ipcache.get('')!.get('10.0.0.1'));
});

test('the lookups stay five whatever the rules: 1,000 rules make entries, not lookups', () => {
  const many = Array.from({ length: 1000 }, (_, i) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: `r${i}` },
    spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 1000 + i, endPort: 1000 + i + (i % 7) }] }] } }));
  const w: World = { policies: many.map((d) => parsePolicy(d)), namespaces };
  const c = compile(w, attachments);
  const maps = c.endpoints.get(endpointKey(undefined, attachments[0]!.pod))!.ingress;
  expect(maps.rules.size).toBeGreaterThan(1000);
  const src = attachments.find((a) => a.pod.namespace === 'y' && a.pod.name === 'b' && !a.network)!;
  for (const port of [1000, 1500, 1999, 2007, 999]) {
    const conn: Connection = { src: { ip: src.ips[0]!, pod: src.pod }, dst: { ip: attachments[0]!.ips[0]!, pod: attachments[0]!.pod }, protocol: 'TCP', port };
    expect({ port, allowed: verdict(c, conn) }).toEqual({ port, allowed: evaluate(w, conn).allowed });
  }
  expect(ANY_PEER).toBe(0);
});

test('port ranges become aligned power-of-two blocks covering exactly the range', () => {
  for (const [lo, hi] of [[80, 80], [80, 81], [1, 65535], [1000, 1999], [0, 65535], [32768, 60999]] as const) {
    const blocks = rangeBlocks(lo, hi);
    const covered = blocks.flatMap(([start, bits]) => [start, start + (1 << (16 - bits)) - 1]);
    expect(covered[0]).toBe(lo);
    expect(covered.at(-1)).toBe(hi);
    for (let i = 0; i + 1 < blocks.length; i++) expect(blocks[i]![0] + (1 << (16 - blocks[i]![1]))).toBe(blocks[i + 1]![0]);
    for (const [start, bits] of blocks) expect(start % (1 << (16 - bits))).toBe(0);
    expect(blocks.length).toBeLessThanOrEqual(30);
  }
});

/**
 * The compiled maps (identities, ipcache, per-endpoint LPM tables) must give the reference evaluator's answer
 * for every connection: random policy sets (fast-check) over namespaces x, y, z with pods a, b, c on the
 * cluster network and a secondary one, every pair and several protocols and ports, plus the node and outside
 * addresses. Then the lookup count stays fixed while the rules grow.
 */
import fc from 'fast-check';
import { ANY_PEER, compile, endpointKey, rangeBlocks, verdict } from './compile';
import { type Connection, type World, evaluate } from './evaluate';
import { parsePolicy } from './parse';
import { BLUE, attachments, connections, namespaces, policy, portsOf, show, toWorld } from '../test/helpers/policy-world';

const ALL = connections();

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

test('split over two nodes, each compiling its own pods with the other\'s as remote peers, the cluster decides as the evaluator does', () => {
  // A connection is decided by the source's node (its egress) and the destination's node (its ingress).
  fc.assert(fc.property(fc.array(policy, { maxLength: 5 }), fc.array(fc.boolean(), { minLength: attachments.length, maxLength: attachments.length }), (specs, onFirst) => {
    const w = toWorld(specs);
    const nodeOf = (pod: { namespace: string; name: string }) => onFirst[attachments.findIndex((a) => a.pod.namespace === pod.namespace && a.pod.name === pod.name)] ? 0 : 1;
    const nodes = [0, 1].map((n) => compile(w, attachments.filter((a) => nodeOf(a.pod) === n), undefined, attachments.filter((a) => nodeOf(a.pod) !== n)));
    const wrong = ALL.filter((c) => {
      // The node side (NP5) is the destination's own node: only pods and outside addresses are judged here.
      if (c.src.node) return false;
      const egress = c.src.pod ? verdict(nodes[nodeOf(c.src.pod)]!, { ...c, dst: { ip: c.dst.ip } }) : true;
      const ingress = c.dst.pod ? verdict(nodes[nodeOf(c.dst.pod)]!, { ...c, src: { ip: c.src.ip } }) : true;
      return (egress && ingress) !== evaluate(w, c).allowed;
    }).map(show);
    expect(wrong.slice(0, 5)).toEqual([]);
  }), { numRuns: 200 });
});

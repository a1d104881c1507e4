/**
 * What the engine is sent must decide as the reference evaluator does: random policy sets over the shared
 * world, the blue network's pods as DPDK ports (engine network `l2`), and every connection on blue decided
 * from the sent policy alone, the way addon/policy.c reads it (endpoints by address, identity from the
 * ipcache, rules and ipBlock classes by longest prefix). The C itself is tested with real packets in
 * test/integration/dpdk-policy.test.ts.
 */
import fc from 'fast-check';
import { parseCidr, parseIp } from '../../core/address';
import { compile } from '../../policy/compile';
import { evaluate } from '../../policy/evaluate';
import { type EnginePolicy, parseEnginePolicy } from '../../dpdk-native/policy-wire';
import { BLUE, attachments, connections, policy, show, toWorld } from '../../test/helpers/policy-world';
import { type EngineAttachment, enginePolicyOf } from './engine-policy';

const PROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;
const onBlue: EngineAttachment[] = attachments.filter((a) => a.network === BLUE && !a.pod.hostNetwork).map((a) => ({ ...a, network: BLUE, engineNetwork: 'l2', ports: [`${a.pod.namespace}-${a.pod.name}`] }));
const key = (ip: string): bigint => {
  const a = parseIp(ip);
  return a.family === 'v4' ? (0xffffn << 32n) | a.value : a.value;
};

/** addon/policy.c's decide(), over the policy as sent. */
function engineAllows(p: EnginePolicy, src: string, dst: string, proto: number, port: number): boolean {
  const local = (ip: string) => p.endpoints.find((e) => e.network === 'l2' && e.ips.some((x) => key(x) === key(ip)));
  const rule = (epdir: number, peer: number) => p.rules.some(([d, pe, pr, po, len]) => {
    const mask = len === 0 ? 0n : ((1n << 56n) - 1n) ^ ((1n << BigInt(56 - len)) - 1n);
    const k = (BigInt(peer) << 24n) | (BigInt(proto) << 16n) | BigInt(port);
    return d === epdir && (k & mask) === (((BigInt(pe) << 24n) | (BigInt(pr) << 16n) | BigInt(po)) & mask);
  });
  const allows = (epdir: number, peer: string) => {
    const id = p.ipcache.find(([n, ip]) => n === 'l2' && key(ip) === key(peer))?.[2] ?? 1;
    if (rule(epdir, id) || rule(epdir, 0)) return true;
    const a = parseIp(peer);
    const cls = p.cidrs.filter(([d, c]) => d === epdir && parseCidr(c).family === a.family)
      .map(([, c, v]) => ({ c: parseCidr(c), v }))
      .filter(({ c }) => (a.value >> BigInt((a.family === 'v4' ? 32 : 128) - c.prefix)) === (c.base >> BigInt((a.family === 'v4' ? 32 : 128) - c.prefix)))
      .sort((x, y) => y.c.prefix - x.c.prefix)[0];
    return cls !== undefined && rule(epdir, cls.v);
  };
  const from = local(src);
  if (from?.isolated.includes('egress') && !allows(from.id * 2 + 1, dst)) return false;
  const to = local(dst);
  return !(to?.isolated.includes('ingress') && !allows(to.id * 2, src));
}

test('the policy sent to the engine decides every connection on the network as the evaluator does, for random policy sets', () => {
  const onBlueConnections = connections().filter((c) => c.network === BLUE);
  fc.assert(fc.property(fc.array(policy, { maxLength: 5 }), (specs) => {
    const w = toWorld(specs);
    // Sent as JSON and read back as the engine reads it: nothing survives only in memory.
    const sent = parseEnginePolicy(JSON.parse(JSON.stringify(enginePolicyOf(compile(w, attachments), onBlue, new Set([BLUE]), [], 'r'))));
    const wrong = onBlueConnections.filter((c) => engineAllows(sent, c.src.ip, c.dst.ip, PROTO[c.protocol], c.port) !== evaluate(w, c).allowed).map(show);
    expect(wrong.slice(0, 5)).toEqual([]);
  }), { numRuns: 200 });
});

test('a network no MultiNetworkPolicy names is not judged, and its ports are no endpoints', () => {
  const ports = onBlue.map((a) => ({ port: a.ports[0]!, engineNetwork: 'l2' }));
  const p = enginePolicyOf(compile(toWorld([]), attachments), onBlue, new Set(['x/green']), ports, 'r');
  expect(p).toEqual({ revision: 'r', networks: [], endpoints: [], otherPorts: [], ipcache: [], cidrs: [], rules: [] });
});

test('the ports of pods no policy selects on a judged network are sent, so their sources are checked too', () => {
  const onGreen = { pod: { namespace: 'x', name: 'g', labels: {}, ports: [] }, network: 'x/green', engineNetwork: 'l2', ips: ['10.9.9.9'], ports: ['green-g'] };
  const ports = [...onBlue, onGreen].map((a) => ({ port: a.ports[0]!, engineNetwork: a.engineNetwork })).concat({ port: 'elsewhere', engineNetwork: 'other' });
  const p = enginePolicyOf(compile(toWorld([]), attachments), [...onBlue, onGreen], new Set([BLUE]), ports, 'r');
  expect(p.otherPorts).toEqual(['green-g']);
  expect(p.endpoints.flatMap((e) => e.ports)).toEqual(onBlue.map((a) => a.ports[0]));
});

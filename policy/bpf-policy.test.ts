/**
 * policy.c under BPF_PROG_TEST_RUN: random policy sets (the world of policy-world.ts) compiled by
 * policy/compile.ts, written into the program's maps, and every connection of the world (IPv4 and IPv6, the
 * cluster network and a secondary one, TCP, UDP and SCTP) built as a packet and run through the kernel: the
 * verdict must be the reference evaluator's. The kernel, not our code, answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseIp } from '../core/address';
import { BpfObject, type BpfProgram, mountBpffs, RingBufferReader, TC_ACT, testRun } from '../kernel';
import { compileBpf } from '../kernel/bpf/testdata/tc-count';
import { compileAndRun, structLayouts, structLines } from '../test/helpers/c-parity';
import { BLUE, attachments, connections, namespaces, policy, show, toWorld } from '../test/helpers/policy-world';
import {
  COUNTER, DIRECTION, FLAGS, FLOW, FlowEventStruct, decodeFlowEvent, type FlowEventRecord, MAPS, NETWORK_SECTION, PROGRAMS, type PolicyMaps, PolicyWriter, REASON, STRUCTS, VERDICT, addr16, addrText, policyMaps,
} from './bpf-maps';
import { IdentityAllocator, compile, endpointKey } from './compile';
import { loadPolicyObject } from './datapath';
import { type Connection, evaluate } from './evaluate';
import { parsePolicy } from './parse';
import { thrownBy } from '../test/helpers/thrown';
import { run } from '../test/helpers/netns';

const dir = mkdtempSync(join(tmpdir(), 'plexus-policy-bpf-'));
const PIN_ROOT = `/sys/fs/bpf/plexus-test-policy-${process.pid}`; // the maps are pinned by name: never the daemon's
/** The program as loaded for each network of the world (the network is a constant of each loaded copy). */
const copies = new Map<number, BpfObject>();
let object: string;
let prog: BpfProgram;
let maps: PolicyMaps;
let writer: PolicyWriter;
const allocator = new IdentityAllocator();
const NODE_ADDRESSES = ['192.168.0.1', 'fd00:ffff::1'];
const networkId = (n: string | undefined) => (n === undefined ? 0 : n === BLUE ? 7 : 99);
const PROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;

beforeAll(() => {
  mountBpffs();
  object = compileBpf(join(__dirname, 'bpf/policy.c'), join(dir, 'policy.o'));
  for (const network of [undefined, BLUE]) copies.set(networkId(network), loadPolicyObject(object, PIN_ROOT, networkId(network)));
  prog = programOf(undefined);
  maps = policyMaps(copies.get(0)!);
  writer = new PolicyWriter(maps, { networkId });
});
afterAll(() => {
  for (const o of copies.values()) o.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(PIN_ROOT, { recursive: true, force: true });
});

/** The program out of an endpoint of `network` (whose copy shares every map with the others). */
const programOf = (network: string | undefined): BpfProgram => copies.get(networkId(network))!.program(PROGRAMS.fromEndpoint);

/** What the program answers for a packet it lets through: "no opinion", so the datapath's own filter runs next. */
const PASS = TC_ACT.UNSPEC;

/** An Ethernet frame from `src` to `dst` (IPv4 or IPv6 by the addresses) carrying `l4` as IP protocol `proto`. */
function frame(src: string, dst: string, proto: number, l4: Buffer): Buffer {
  const v6 = parseIp(src).family === 'v6';
  let ip: Buffer;
  if (v6) {
    ip = Buffer.alloc(40);
    ip.writeUInt32BE(0x60000000, 0);
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = proto;
    ip[7] = 64;
    addr16(src).copy(ip, 8);
    addr16(dst).copy(ip, 24);
  } else {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip[8] = 64;
    ip[9] = proto;
    addr16(src).copy(ip, 12, 12);
    addr16(dst).copy(ip, 16, 12);
  }
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  return Buffer.concat([eth, ip, l4]);
}

/** A transport header with its ports (TCP's data offset set, the rest zero). */
function ports(protocol: keyof typeof PROTO, sport: number, dport: number): Buffer {
  const l4 = Buffer.alloc(protocol === 'TCP' ? 20 : protocol === 'UDP' ? 8 : 12);
  l4.writeUInt16BE(sport, 0);
  l4.writeUInt16BE(dport, 2);
  if (protocol === 'TCP') l4[12] = 0x50;
  return l4;
}

/** The first packet of connection `c`. */
const packet = (c: Connection): Buffer => frame(c.src.ip, c.dst.ip, PROTO[c.protocol], ports(c.protocol, 40000, c.port));

const ALL = connections();
const local = attachments.filter((a) => !a.pod.hostNetwork);

test('the kernel\'s verdict is the reference evaluator\'s, for random policy sets, both families, two networks', () => {
  let packets = 0;
  fc.assert(fc.property(fc.array(policy, { maxLength: 4 }), (specs) => {
    const w = toWorld(specs);
    writer.apply(compile(w, attachments, allocator), local, NODE_ADDRESSES);
    const wrong: string[] = [];
    for (const network of [undefined, BLUE]) {
      const prog = programOf(network);
      for (const c of ALL.filter((x) => x.network === network)) {
        const want = evaluate(w, c).allowed ? PASS : TC_ACT.SHOT;
        packets++;
        if (testRun(prog, packet(c)).retval !== want) wrong.push(`${show(c)}: kernel ${want === PASS ? 'dropped' : 'passed'} it`);
      }
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  }), { numRuns: 50 });
  expect(packets).toBeGreaterThan(50 * 1000);
});

test('an update never lets through a packet that both the old and the new policy deny, at any step; nothing stale is left', () => {
  fc.assert(fc.property(fc.array(policy, { maxLength: 4 }), fc.array(policy, { maxLength: 4 }), fc.integer(), (before, after, seed) => {
    const [wa, wb] = [toWorld(before), toWorld(after)];
    writer.apply(compile(wa, attachments, allocator), local, NODE_ADDRESSES);
    // Connections both deny, a few per network (each probe with a port pair no tracked connection has).
    const denied = ALL.filter((c) => !evaluate(wa, c).allowed && !evaluate(wb, c).allowed);
    const sample = denied.filter((_, i) => (i * 7919 + seed) % Math.max(1, Math.ceil(denied.length / 24)) === 0).slice(0, 24);
    const leaks: string[] = [];
    let steps = 0;
    const compiledB = compile(wb, attachments, allocator);
    writer.apply(compiledB, local, NODE_ADDRESSES, () => {
      steps++;
      for (const network of [undefined, BLUE]) {
        const prog = programOf(network);
        for (const c of sample.filter((x) => x.network === network)) if (testRun(prog, packet(c)).retval === PASS) leaks.push(`step ${steps}: ${show(c)}`);
      }
    });
    expect(leaks.slice(0, 3)).toEqual([]);
    // Exactly the new policy's entries are left.
    expect([...maps.rules.keys()].length).toBe(ruleCount(compiledB));
  }), { numRuns: 30 });
});

/** The rule entries a compiled policy puts in the maps for the local endpoints. */
function ruleCount(compiled: ReturnType<typeof compile>): number {
  let rules = 0;
  for (const a of local) {
    const ep = compiled.endpoints.get(endpointKey(a.network, a.pod));
    for (const d of ep ? [ep.ingress, ep.egress] : []) if (d.isolated) rules += d.rules.size;
  }
  return rules;
}

/** Connections whose kernel verdict is not the evaluator's in `w` (at most a few, for the message). */
function disagreements(w: ReturnType<typeof toWorld>): string[] {
  const wrong: string[] = [];
  for (const network of [undefined, BLUE]) {
    const prog = programOf(network);
    for (const c of ALL.filter((x) => x.network === network && x.protocol === 'TCP')) {
      if ((testRun(prog, packet(c)).retval === PASS) !== evaluate(w, c).allowed) wrong.push(show(c));
      if (wrong.length >= 3) return wrong;
    }
  }
  return wrong;
}

test('a new writer takes over the maps another left, even mid-update (a daemon restart): it enforces on, and its updates leave exactly their own entries', () => {
  fc.assert(fc.property(fc.array(policy, { maxLength: 3 }), fc.array(policy, { maxLength: 3 }), fc.array(policy, { maxLength: 3 }), fc.nat(400), (a, b, next, cutAt) => {
    const [wa, wb, wNext] = [toWorld(a), toWorld(b), toWorld(next)];
    writer.apply(compile(wa, attachments, allocator), local, NODE_ADDRESSES);
    // The old writer dies after `cutAt` map writes of its next update (or finishes it).
    const before = maps.state.lookup(0)!.revision;
    let steps = 0;
    try {
      writer.apply(compile(wb, attachments, allocator), local, NODE_ADDRESSES, () => {
        if (++steps === cutAt) throw new Error('killed');
      });
    } catch {
      // what a SIGKILL leaves
    }
    const live = maps.state.lookup(0)!.revision === before ? wa : wb;
    const fresh = new PolicyWriter(maps, { networkId });
    fresh.adopt(local);
    expect(disagreements(live)).toEqual([]); // taking over changes nothing
    const compiledNext = compile(wNext, attachments, new IdentityAllocator()); // a new daemon numbers identities anew
    fresh.apply(compiledNext, local, NODE_ADDRESSES);
    expect(disagreements(wNext)).toEqual([]);
    expect([...maps.rules.keys()].length).toBe(ruleCount(compiledNext));
    writer = fresh;
  }), { numRuns: 25 });
});

test('an address that moves from one endpoint to another in one update is the new one\'s, not removed with the old one\'s', () => {
  const w = toWorld([]);
  const [x, y] = [local.find((l) => !l.network && l.pod.name === 'a')!, local.find((l) => !l.network && l.pod.name === 'b')!];
  const moved = x.ips[0]!;
  const other = local.filter((l) => l !== x && l !== y);
  writer.apply(compile(w, attachments, allocator), local, NODE_ADDRESSES);
  const idOf = (ip: string) => maps.local.lookup({ network: 0, addr: addr16(ip) })?.id;
  const yId = idOf(y.ips[0]!);
  // x gives its address up and y takes it, in one update (IP reuse while writes were folded into one)
  const after = [...other, { ...x, ips: x.ips.slice(1) }, { ...y, ips: [...y.ips, moved] }];
  writer.apply(compile(w, attachments, allocator), after, NODE_ADDRESSES);
  expect(idOf(moved)).toBe(yId);
  writer.apply(compile(w, attachments, allocator), local, NODE_ADDRESSES); // and back, for the tests after
  expect(idOf(moved)).not.toBe(yId);
});

test('a change writes only the endpoints it changes: the others keep their slot; an update that changes nothing writes nothing and flips nothing', () => {
  // Everything isolated, with rules: a namespace-wide policy in each namespace.
  const base = ['x', 'y', 'z'].map((ns) => ({ multi: false, namespace: ns, podSelector: {}, types: ['Ingress', 'Egress'], ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16' } }] }] }));
  const one = { multi: false, namespace: 'z', podSelector: { matchLabels: { pod: 'c' } }, types: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }], ports: [{ port: 81 }] }], egress: undefined };
  const writes = (specs: typeof base) => {
    let steps = 0;
    const compiled = compile(toWorld(specs), attachments, allocator);
    writer.apply(compiled, local, NODE_ADDRESSES, () => steps++);
    return { steps, compiled };
  };
  const full = writes(base); // from whatever the test before left: (nearly) everything rewritten
  writes(base); // the other generation's flags catch up
  const revision = maps.state.lookup(0)!.revision;
  expect(writes(base).steps).toBe(0);
  expect(maps.state.lookup(0)!.revision).toBe(revision); // nothing changed: no flip, no connection judged again
  expect(disagreements(toWorld(base))).toEqual([]);
  // One policy more, selecting z/c: only z/c's entries are written (its rules into its other slot, its two
  // addresses' flags), the revision flips, z/c's old entries go.
  const zcEntries = (c: ReturnType<typeof compile>) => {
    const ep = c.endpoints.get(endpointKey(undefined, local.find((a) => a.pod.namespace === 'z' && a.pod.name === 'c')!.pod))!;
    return [ep.ingress, ep.egress].reduce((n, d) => n + (d.isolated ? d.rules.size + d.cidr.size : 0), 0);
  };
  const before = zcEntries(compile(toWorld(base), attachments, allocator));
  const changed = writes([...base, one]);
  // its new entries, its old ones removed, its two addresses, the flip
  expect(changed.steps).toBe(zcEntries(changed.compiled) + before + 2 + 1);
  expect(changed.steps).toBeLessThan(full.steps / 4);
  expect(maps.state.lookup(0)!.revision).toBe(revision + 1);
  expect(disagreements(toWorld([...base, one]))).toEqual([]);
  expect([...maps.rules.keys()].length).toBe(ruleCount(changed.compiled));
  // And back.
  writes(base);
  expect(disagreements(toWorld(base))).toEqual([]);
  expect([...maps.rules.keys()].length).toBe(ruleCount(compile(toWorld(base), attachments, allocator)));
});

test('maps an older plexusd wrote (no slot flag: each generation\'s entries in its own slot) are read as they were, and taken over', () => {
  const specs = ['x', 'y'].map((ns) => ({ multi: false, namespace: ns, podSelector: {}, types: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } }, namespaceSelector: {} }], ports: [{ port: 80 }] }], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }] }] }));
  const zClosed = { multi: false, namespace: 'z', podSelector: {}, types: ['Ingress'], ingress: undefined, egress: undefined };
  writer.apply(compile(toWorld(specs), attachments, allocator), local, NODE_ADDRESSES);
  // A change to z only: x's and y's endpoints keep their slot across the flip, so the live generation's flags
  // of some point at the other generation's slot.
  writer.apply(compile(toWorld([...specs, zClosed]), attachments, allocator), local, NODE_ADDRESSES);
  // Rewrite the maps as the older writer laid them out: the live generation's entries in its own slot, no flag.
  const live = maps.state.lookup(0)!.revision & 1;
  const flipped = new Set<number>();
  for (const [k, v] of maps.local.entries()) {
    if (!(v.flags[live] & FLAGS.SLOT_FLIP)) continue;
    flipped.add(v.id);
    maps.local.update(k, { id: v.id, flags: v.flags.map((f) => f & ~FLAGS.SLOT_FLIP) as [number, number] });
  }
  expect(flipped.size).toBeGreaterThan(0);
  for (const [k, cls] of maps.cidr.entries()) {
    if (!flipped.has(k.epdir >>> 2)) continue;
    maps.cidr.delete(k);
    maps.cidr.update({ ...k, epdir: (k.epdir & ~1) | live }, cls);
  }
  for (const k of maps.rules.keys()) {
    if (!flipped.has(k.epdir >>> 2)) continue;
    maps.rules.delete(k);
    maps.rules.update({ ...k, epdir: (k.epdir & ~1) | live }, 1);
  }
  const now = toWorld([...specs, zClosed]);
  expect(disagreements(now)).toEqual([]);
  const fresh = new PolicyWriter(maps, { networkId });
  expect(fresh.adopt(local).leftovers).toBe(0);
  expect(disagreements(now)).toEqual([]);
  const next = [specs[0]!, zClosed];
  const compiled = compile(toWorld(next), attachments, allocator);
  fresh.apply(compiled, local, NODE_ADDRESSES);
  expect(disagreements(toWorld(next))).toEqual([]);
  expect([...maps.rules.keys()].length).toBe(ruleCount(compiled));
  writer = fresh;
});

test('an update cut short before its flip, which gave an isolated endpoint new addresses, is taken over with the endpoint\'s rules; a node address only it added is dropped', () => {
  const specs = ['x', 'y'].map((ns) => ({ multi: false, namespace: ns, podSelector: {}, types: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } }, namespaceSelector: {} }], ports: [{ port: 80 }] }], egress: undefined }));
  const zClosed = { multi: false, namespace: 'z', podSelector: {}, types: ['Ingress'], ingress: undefined, egress: undefined };
  // z alone changes between these two worlds, so each switch flips while x/b keeps its slot: after one of any
  // two switches, x/b's live flags point at the other generation's slot (the case the takeover must read).
  const worlds = [toWorld(specs), toWorld([...specs, zClosed])];
  const xbAddress = { network: 0, addr: addr16(local.find((a) => !a.network && a.pod.namespace === 'x' && a.pod.name === 'b')!.ips[0]!) };
  const flipped = () => (maps.local.lookup(xbAddress)!.flags[maps.state.lookup(0)!.revision & 1] & FLAGS.SLOT_FLIP) !== 0;
  let now = worlds[0]!;
  writer.apply(compile(now, attachments, allocator), local, NODE_ADDRESSES);
  for (let i = 1; i <= 2 && !(i > 1 && flipped()); i++) {
    now = worlds[i % 2]!;
    writer.apply(compile(now, attachments, allocator), local, NODE_ADDRESSES);
  }
  expect(flipped()).toBe(true);
  const live = maps.state.lookup(0)!.revision & 1;
  const xb = maps.local.lookup(xbAddress)!;
  // What the cut-short update left: new addresses of x/b, live in the next generation only, and a new node address.
  const extra = Array.from({ length: 30 }, (_, i) => `10.0.7.${i + 1}`);
  const half = (v: number): [number, number] => (live === 0 ? [0, v] : [v, 0]);
  for (const ip of extra) maps.local.update({ network: 0, addr: addr16(ip) }, { id: xb.id, flags: half(xb.flags[live]) });
  maps.local.update({ network: 0, addr: addr16('192.168.0.77') }, { id: 0, flags: half(FLAGS.NODE) });
  const fresh = new PolicyWriter(maps, { networkId });
  expect(fresh.adopt(local).leftovers).toBe(1); // the node address; x/b's live rules are not leftovers
  expect(maps.local.lookup({ network: 0, addr: addr16('192.168.0.77') })).toBeUndefined();
  expect(disagreements(now)).toEqual([]);
  const compiled = compile(now, attachments, allocator);
  fresh.apply(compiled, local, NODE_ADDRESSES);
  expect(disagreements(now)).toEqual([]);
  expect(extra.filter((ip) => maps.local.lookup({ network: 0, addr: addr16(ip) }))).toEqual([]);
  expect([...maps.rules.keys()].length).toBe(ruleCount(compiled));
  writer = fresh;
});

describe('connection tracking', () => {
  const a = attachments.find((x) => x.pod.namespace === 'x' && x.pod.name === 'a' && !x.network)!;
  const b = attachments.find((x) => x.pod.namespace === 'x' && x.pod.name === 'b' && !x.network)!;
  const c0 = attachments.find((x) => x.pod.namespace === 'x' && x.pod.name === 'c' && !x.network)!;
  const np = (name: string, spec: object) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name }, spec });
  const aFromB = (ports: number[]) => np('a-in', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: ports.map((port) => ({ port })) }] });
  const bClosed = np('b-in', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Ingress'] });
  const write = (docs: object[]) => {
    const w = { policies: docs.map((d) => parsePolicy(d)), namespaces };
    writer.apply(compile(w, attachments, allocator), local, NODE_ADDRESSES);
  };
  /** One TCP packet from `from`:`sport` to `to`:`dport` through the program: true if it passed. */
  const send = (from: typeof a, sport: number, to: typeof a, dport: number): boolean =>
    testRun(prog, frame(from.ips[0]!, to.ips[0]!, PROTO.TCP, ports('TCP', sport, dport))).retval === PASS;

  /** An ICMP echo (type 8 request, 0 reply) from `from` to `to` with identifier `id`: true if it passed. */
  const ping = (from: typeof a, to: typeof a, type: 0 | 8, id: number): boolean => {
    const icmp = Buffer.alloc(8);
    icmp[0] = type;
    icmp.writeUInt16BE(id, 4);
    return testRun(prog, frame(from.ips[0]!, to.ips[0]!, 1, icmp)).retval === PASS;
  };

  beforeEach(() => {
    for (const k of [...maps.ct.keys()]) maps.ct.delete(k);
  });

  test('the reply of an allowed connection passes where a new connection the other way does not (NP4); the policy is asked once per connection', () => {
    write([aFromB([80]), bClosed]);
    expect(send(b, 40000, a, 80)).toBe(true);
    expect(send(a, 80, b, 40000)).toBe(true); // b admits nothing, but this is the reply
    expect(send(a, 50000, b, 80)).toBe(false); // a new connection towards b
    expect(send(b, 40001, a, 81)).toBe(false);
    const entries = [...maps.ct.entries()];
    expect(entries.map(([k]) => `${k.sport}->${k.dport}`)).toEqual(['40000->80']); // one entry, the initiator's way
  });

  test('ICMP echo: a reply passes only as the reply of a request, and a ping one way never opens the other', () => {
    write([bClosed]); // b admits nothing; a admits everything
    expect(ping(b, a, 8, 7)).toBe(true);
    expect(ping(a, b, 0, 7)).toBe(true); // the reply of b's request
    expect(ping(a, b, 8, 7)).toBe(false); // a request of a's own, same identifier: a new connection towards b
    expect(ping(a, b, 0, 9)).toBe(false); // a reply nobody asked for
    expect(ping(b, a, 8, 9)).toBe(true);
  });

  test('a policy change cuts the connections it now denies, both ways, and keeps the others', () => {
    write([aFromB([80, 81]), bClosed]);
    expect(send(b, 40000, a, 80)).toBe(true);
    expect(send(b, 40001, a, 81)).toBe(true);
    write([aFromB([81]), bClosed]);
    expect(send(a, 80, b, 40000)).toBe(false); // the reply side of a connection the new policy denies
    expect(send(b, 40000, a, 80)).toBe(false);
    expect(send(a, 81, b, 40001)).toBe(true); // its reply first: judged again as b opened it, not as a reply
    expect(send(b, 40001, a, 81)).toBe(true);
    const revision = maps.state.lookup(0)!.revision;
    // The cut one is kept, marked cut (by a's ingress), so it stays dropped; the other goes on.
    expect([...maps.ct.entries()].map(([k, v]) => [k.dport, v.revision, v.cut]).sort()).toEqual([[80, revision, REASON.INGRESS], [81, revision, 0]]);
  });

  test('a cut connection stays cut either way: the responder\'s retransmission does not open it anew the other way; the next change judges it again', () => {
    // c is not isolated, and a's egress is open: a packet of a to c, if the cut had forgotten the connection,
    // would open a -> c as a new connection, and c's packets would then pass as its replies.
    const cIn = [aFromB([80]), np('a-from-c', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }], ports: [{ port: 80 }] }] })];
    write(cIn);
    expect(send(c0, 40011, a, 80)).toBe(true);
    write([aFromB([80])]);
    expect(send(a, 80, c0, 40011)).toBe(false); // the responder first: judged as c opened it, cut
    expect(send(a, 80, c0, 40011)).toBe(false); // its retransmission: still cut
    expect(send(c0, 40011, a, 80)).toBe(false); // and c's packets are no replies
    write(cIn); // the next change judges it again: allowed again, it goes on
    expect(send(a, 80, c0, 40011)).toBe(true);
    expect(send(c0, 40011, a, 80)).toBe(true);
  });

  describe('TCP state', () => {
    const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, ACK: 0x10 } as const;
    /** One TCP segment with `flags` from `from`:`sport` to `to`:`dport`, out of the endpoint (as `prog`) or into it: true if it passed. */
    const segment = (from: typeof a, sport: number, to: typeof a, dport: number, flags: number, via: 'out' | 'into' = 'out'): boolean => {
      const l4 = ports('TCP', sport, dport);
      l4[13] = flags;
      const program = via === 'out' ? prog : copies.get(0)!.program(PROGRAMS.toEndpoint);
      return testRun(program, frame(from.ips[0]!, to.ips[0]!, PROTO.TCP, l4)).retval === PASS;
    };
    /** The tracked entry of `from`:`sport` -> its peer (b's connections to a by default), if any. */
    const entry = (sport: number, from = b) => [...maps.ct.entries()].find(([k]) => k.sport === sport && addrText(k.src) === from.ips[0])?.[1];
    /** Moves the entry's last-seen time `seconds` back (the kernel's clock counts from boot: the machine has been up longer). */
    const idle = (sport: number, seconds: number) => {
      const [k, v] = [...maps.ct.entries()].find(([key]) => key.sport === sport)!;
      expect(v.seen).toBeGreaterThan(BigInt(seconds) * 1_000_000_000n);
      maps.ct.update(k, { ...v, seen: v.seen - BigInt(seconds) * 1_000_000_000n });
    };
    /** b opens a connection to a:80 (a admits b on 80; b admits nothing), and a answers. */
    const open = (sport: number) => {
      write([aFromB([80]), bClosed]);
      expect([segment(b, sport, a, 80, TCP.SYN), segment(a, 80, b, sport, TCP.SYN | TCP.ACK), segment(b, sport, a, 80, TCP.ACK)]).toEqual([true, true, true]);
      expect(entry(sport)).toMatchObject({ replied: 1, fin_initiator: 0, fin_responder: 0 });
    };
    /** Whether a's packet to b:`sport` passes (b admits nothing, so only as part of b's connection). */
    const aPasses = (sport: number, flags = TCP.ACK) => segment(a, 80, b, sport, flags);

    test('after both FINs a connection is kept closing for seconds, so what a close still sends passes either way; then it is forgotten', () => {
      open(41000);
      expect(segment(b, 41000, a, 80, TCP.FIN | TCP.ACK)).toBe(true);
      expect(entry(41000)).toMatchObject({ fin_initiator: 1, fin_responder: 0 });
      expect(aPasses(41000, TCP.FIN | TCP.ACK)).toBe(true);
      expect(entry(41000)).toMatchObject({ fin_initiator: 1, fin_responder: 1 });
      expect(segment(b, 41000, a, 80, TCP.ACK)).toBe(true); // the last ACK, out of b ...
      expect(segment(b, 41000, a, 80, TCP.ACK, 'into')).toBe(true); // ... and into a, a second program on the node
      expect(aPasses(41000, TCP.FIN | TCP.ACK)).toBe(true); // a's FIN again, its ACK lost
      expect(aPasses(41000)).toBe(true); // the other ACK of a simultaneous close
      idle(41000, 11);
      expect(aPasses(41000)).toBe(false); // forgotten: a -> b is a new connection, which b does not admit
    });

    test('an RST either way counts as both FINs; an RST opens nothing; an allowed FIN of a forgotten connection is tracked closing', () => {
      open(41020);
      expect(segment(a, 80, b, 41020, TCP.RST, 'into')).toBe(true); // a's RST into b: the reply way, and it passes
      expect(entry(41020)).toMatchObject({ fin_initiator: 1, fin_responder: 1 });
      expect(aPasses(41020)).toBe(true); // what was in flight still passes, for seconds
      idle(41020, 11);
      expect(aPasses(41020)).toBe(false);
      write([aFromB([80]), bClosed]);
      expect(segment(b, 41021, a, 80, TCP.RST)).toBe(true); // admitted, and nothing to remember
      expect(entry(41021)).toBeUndefined();
      expect(segment(b, 41022, a, 80, TCP.FIN | TCP.ACK)).toBe(true); // b's connection, forgotten here (evicted, say), closing
      expect(entry(41022)).toMatchObject({ fin_initiator: 1, fin_responder: 0 });
      expect(aPasses(41022, TCP.FIN | TCP.ACK)).toBe(true); // so a's answer passes
    });

    test('a SYN on the ports of a closing connection opens a new one, judged anew', () => {
      open(41031);
      expect([segment(b, 41031, a, 80, TCP.FIN | TCP.ACK), aPasses(41031, TCP.FIN | TCP.ACK)]).toEqual([true, true]);
      expect(segment(b, 41031, a, 80, TCP.SYN)).toBe(true); // the ports reused at once
      expect(entry(41031)).toMatchObject({ replied: 0, fin_initiator: 0, fin_responder: 0 });
      expect(aPasses(41031, TCP.SYN | TCP.ACK)).toBe(true);
      expect(entry(41031)).toMatchObject({ replied: 1, fin_initiator: 0, fin_responder: 0 });
      open(41030);
      expect([segment(b, 41030, a, 80, TCP.FIN | TCP.ACK), aPasses(41030, TCP.FIN | TCP.ACK)]).toEqual([true, true]);
      write([aFromB([81]), bClosed]); // port 80 no longer admitted
      expect(segment(b, 41030, a, 80, TCP.SYN)).toBe(false); // a new connection to a:80: denied, not the old one going on
    });

    test('an entry not known to be answered (an older version wrote it) learns it from the initiator\'s ACK', () => {
      open(41060);
      const [k, v] = [...maps.ct.entries()].find(([key]) => key.sport === 41060)!;
      maps.ct.update(k, { ...v, replied: 0 });
      expect(segment(b, 41060, a, 80, TCP.ACK)).toBe(true);
      expect(entry(41060)).toMatchObject({ replied: 1 });
    });

    test('idle lifetimes follow the state: longer than two minutes once answered, a minute unanswered, two minutes half closed, seconds closing', () => {
      open(41040);
      idle(41040, 125);
      expect(aPasses(41040)).toBe(true); // answered: hours
      write([aFromB([80]), bClosed]);
      expect(segment(b, 41041, a, 80, TCP.SYN)).toBe(true); // never answered: a minute
      idle(41041, 61);
      expect(aPasses(41041)).toBe(false);
      open(41042);
      expect(segment(b, 41042, a, 80, TCP.FIN | TCP.ACK)).toBe(true); // b is done sending; a may go on: two minutes
      idle(41042, 61);
      expect(aPasses(41042)).toBe(true);
      idle(41042, 121);
      expect(aPasses(41042)).toBe(false);
      open(41043);
      expect([segment(b, 41043, a, 80, TCP.FIN | TCP.ACK), aPasses(41043, TCP.FIN | TCP.ACK)]).toEqual([true, true]);
      idle(41043, 11); // both done: ten seconds
      expect(aPasses(41043)).toBe(false);
    });
  });

  test('IPv6 neighbour discovery between global addresses passes an isolated pod (L2 networks resolve peers so); an echo does not', () => {
    write([bClosed]);
    const icmp6 = (type: number) => {
      const m = Buffer.alloc(24);
      m[0] = type;
      return testRun(prog, frame(a.ips[1]!, b.ips[1]!, 58, m)).retval === PASS;
    };
    expect([135, 136, 133, 134, 137].map(icmp6)).toEqual([true, true, true, true, true]);
    expect([130, 131, 132, 143].map(icmp6)).toEqual([true, true, true, true]); // MLD
    expect(icmp6(128)).toBe(false);
    expect(icmp6(1)).toBe(false); // an error is judged as it comes
  });

  test('a link-local source or a multicast destination is judged like any address, not waved through', () => {
    write([bClosed]);
    // from a's fe80:: address to b's global one: `world` to b's closed ingress
    expect(testRun(prog, frame('fe80::a', b.ips[1]!, PROTO.TCP, ports('TCP', 40030, 80))).retval).not.toBe(PASS);
    // neighbour discovery from a link-local source still passes
    const ns = Buffer.alloc(24);
    ns[0] = 135;
    expect(testRun(prog, frame('fe80::a', b.ips[1]!, 58, ns)).retval).toBe(PASS);
  });

  test('an ICMP error quoting a packet of a tracked connection passes an isolated pod as its replies do; one quoting anything else is judged', () => {
    write([aFromB([80]), bClosed]);
    expect(send(b, 40020, a, 80)).toBe(true); // b's connection to a: tracked
    /** An ICMP error (v4 type 3 code 4, "fragmentation needed"; v6 type 2, "packet too big") from `from` to b quoting b:`sport` -> a:`dport` over TCP. */
    const error = (family: 0 | 1, from: string, sport: number, dport: number, quotedSrc = b.ips[family]!) => {
      const quotedL4 = ports('TCP', sport, dport).subarray(0, 8);
      const inner = frame(quotedSrc, a.ips[family]!, PROTO.TCP, quotedL4).subarray(14);
      const head = Buffer.alloc(8);
      head[0] = family ? 2 : 3;
      head[1] = family ? 0 : 4;
      return testRun(prog, frame(from, b.ips[family]!, family ? 58 : 1, Buffer.concat([head, inner]))).retval === PASS;
    };
    expect(testRun(prog, frame(b.ips[1]!, a.ips[1]!, PROTO.TCP, ports('TCP', 40021, 80))).retval).toBe(PASS); // and one over IPv6
    expect(error(0, '172.16.0.1', 40020, 80)).toBe(true); // a router on the way: related
    expect(error(1, '2001:db8::1', 40021, 80)).toBe(true);
    expect(error(0, '172.16.0.1', 40099, 80)).toBe(false); // no such connection: judged, and b admits nothing
    expect(error(0, '172.16.0.1', 40020, 80, c0.ips[0]!)).toBe(false); // quotes a packet b never sent
  });

  describe('fragments and IPv6 extension headers', () => {
    const frags = () => copies.get(0)!.map(MAPS.frags);
    beforeEach(() => {
      for (const k of [...frags().keys()]) frags().delete(k);
    });
    /** An IPv4 fragment of datagram `id`: offset in 8-byte units; `more` sets MF. */
    const v4Fragment = (from: typeof a, to: typeof a, proto: number, id: number, offset: number, more: boolean, payload: Buffer): boolean => {
      const f = frame(from.ips[0]!, to.ips[0]!, proto, payload);
      f.writeUInt16BE(id, 14 + 4);
      f.writeUInt16BE((more ? 0x2000 : 0) | offset, 14 + 6);
      return testRun(prog, f).retval === PASS;
    };
    /** Bytes that, read as a transport header, would say ports `sport` -> `dport`: a later fragment's payload. */
    const looksLike = (sport: number, dport: number) => ports('UDP', sport, dport);
    /** An IPv6 packet from `from` to `to` with extension headers (type, then the body after next/length) before `proto`'s `l4`. */
    const v6With = (from: typeof a, to: typeof a, headers: Array<[number, Buffer]>, proto: number, l4: Buffer): boolean => {
      const chain: Buffer[] = [];
      headers.forEach(([, body], i) => chain.push(Buffer.concat([Buffer.from([i + 1 < headers.length ? headers[i + 1]![0] : proto, body.length === 6 ? 0 : (body.length + 2) / 8 - 1]), body])));
      const f = frame(from.ips[1]!, to.ips[1]!, headers.length ? headers[0]![0] : proto, Buffer.concat([...chain, l4]));
      return testRun(prog, f).retval === PASS;
    };
    const fragmentHeader = (offset8: number, more: boolean, id: number) => {
      const b = Buffer.alloc(6);
      b.writeUInt16BE((offset8 << 3) | (more ? 1 : 0), 0);
      b.writeUInt32BE(id, 2);
      return b;
    };
    const udpIn = (port: number) => np('a-in', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'UDP', port }] }] });

    test('the later fragments of a datagram follow its first, whatever their payload looks like; one whose first was never seen is denied and not tracked', () => {
      write([udpIn(81)]);
      expect(v4Fragment(b, a, PROTO.UDP, 7, 0, true, ports('UDP', 40000, 81))).toBe(true);
      expect(v4Fragment(b, a, PROTO.UDP, 7, 185, false, looksLike(80, 80))).toBe(true); // payload, not ports
      expect(v4Fragment(b, a, PROTO.UDP, 8, 0, true, ports('UDP', 40001, 80))).toBe(false);
      expect(v4Fragment(b, a, PROTO.UDP, 8, 185, false, looksLike(40001, 81))).toBe(false); // looks allowed; its datagram is not
      const tracked = maps.ct.keys().length;
      expect(v4Fragment(b, a, PROTO.UDP, 99, 185, false, looksLike(40002, 81))).toBe(false);
      expect(maps.ct.keys().length).toBe(tracked);
    });

    test('IPv6: ports behind hop-by-hop and destination options headers; a fragment header\'s datagram followed like IPv4\'s', () => {
      write([aFromB([80])]);
      const options = Buffer.alloc(6); // PadN filling an 8-byte header
      options[0] = 1;
      options[1] = 4;
      expect(v6With(b, a, [[0, options], [60, options]], PROTO.TCP, ports('TCP', 40000, 80))).toBe(true);
      expect(v6With(b, a, [[0, options], [60, options]], PROTO.TCP, ports('TCP', 40001, 81))).toBe(false);
      expect(v6With(b, a, [[44, fragmentHeader(0, true, 0x01020304)]], PROTO.TCP, ports('TCP', 40002, 80))).toBe(true);
      expect(v6With(b, a, [[44, fragmentHeader(100, false, 0x01020304)]], PROTO.TCP, looksLike(1, 81))).toBe(true);
      expect(v6With(b, a, [[44, fragmentHeader(100, false, 0x0badf00d)]], PROTO.TCP, looksLike(40003, 80))).toBe(false);
    });

    test('IPv6: a later fragment is not walked past its fragment header (its datagram\'s first says what follows)', () => {
      write([aFromB([80])]);
      const options = Buffer.from([1, 4, 0, 0, 0, 0]);
      // First: fragment header, then destination options, then TCP. Later: the fragment header names
      // destination options, but what follows it is payload (here bytes that would read as a huge header).
      expect(v6With(b, a, [[44, fragmentHeader(0, true, 77)], [60, options]], PROTO.TCP, ports('TCP', 40010, 80))).toBe(true);
      const later = Buffer.alloc(16, 0xff);
      later[0] = 60; // read as headers, it would name another one, 2 KiB long: past the packet
      expect(v6With(b, a, [[44, fragmentHeader(50, false, 77)]], 60, later)).toBe(true);
    });

    test('a packet whose transport header cannot be read is judged with no port, never let through unasked', () => {
      write([aFromB([80])]);
      const truncated = (from: string, to: string) => testRun(prog, frame(from, to, PROTO.TCP, Buffer.from([0x9c, 0x40]))).retval === PASS;
      expect(truncated(b.ips[0]!, a.ips[0]!)).toBe(false); // 2 bytes of TCP: no destination port to allow
      expect(truncated(b.ips[1]!, a.ips[1]!)).toBe(false);
      const options = Buffer.from([1, 4, 0, 0, 0, 0]);
      const seven = Array.from({ length: 7 }, () => [60, options] as [number, Buffer]);
      expect(v6With(b, a, seven, PROTO.TCP, ports('TCP', 40011, 80))).toBe(false); // more headers than walked
      expect(truncated(a.ips[0]!, b.ips[0]!)).toBe(true); // b is not isolated: it passes, untracked
    });
  });

  describe('flow events and counters', () => {
    let events: FlowEventRecord[];
    let reader: RingBufferReader;
    const drain = () => {
      events = [];
      reader.consume();
      return events.map((e) => ({
        verdict: e.verdict, reason: e.reason, flags: e.flags, flow: `${addrText(e.src)}:${e.sport}->${addrText(e.dst)}:${e.dport}/${e.proto}`,
      }));
    };
    const counters = () => {
      const out: Record<number, bigint> = {};
      for (const [k, perCpu] of maps.counters.entriesPerCpu()) if (k.network === 0) out[k.counter] = perCpu.reduce((x, y) => x + y, 0n);
      return out;
    };
    /** What the reader does with each record: decode it both ways (they must agree) and keep it. */
    let onRecord = (r: Buffer) => {
      const e = decodeFlowEvent(r);
      expect(e).toEqual(FlowEventStruct.decode(r));
      events.push(e);
    };
    beforeAll(() => {
      reader = new RingBufferReader(maps.events, (r) => onRecord(r));
    });
    afterAll(() => reader.close());
    beforeEach(() => {
      for (const k of [...maps.counters.keys()]) maps.counters.delete(k);
      const droplog = copies.get(0)!.map(MAPS.droplog); // earlier tests' drops would hold back this test's reports
      for (const k of [...droplog.keys()]) droplog.delete(k);
      drain();
    });

    test('a new allowed connection is one event, its later packets and replies none; drops are counted every time and reported once per flow per second', () => {
      write([aFromB([80]), bClosed]);
      const [ia, ib] = [a.ips[0]!, b.ips[0]!];
      expect(send(b, 40000, a, 80)).toBe(true);
      expect(send(b, 40000, a, 80)).toBe(true);
      expect(send(a, 80, b, 40000)).toBe(true);
      for (let i = 0; i < 3; i++) expect(send(b, 40002, a, 81)).toBe(false);
      expect(send(a, 50000, b, 80)).toBe(false);
      expect(drain()).toEqual([
        { verdict: VERDICT.FORWARDED, reason: REASON.NONE, flags: 0, flow: `${ib}:40000->${ia}:80/6` },
        { verdict: VERDICT.DROPPED, reason: REASON.INGRESS, flags: 0, flow: `${ib}:40002->${ia}:81/6` },
        { verdict: VERDICT.DROPPED, reason: REASON.INGRESS, flags: 0, flow: `${ia}:50000->${ib}:80/6` },
      ]);
      expect(counters()).toEqual({ [COUNTER.FORWARDED]: 1n, [COUNTER.DROPPED_INGRESS]: 4n });
    });

    test('the reader takes every event once, in order, over several turns of the ring (records wrap its end)', () => {
      write([aFromB([80]), bClosed]);
      const ringRecords = Math.floor(maps.events.info.maxEntries / 72); // 64-byte events, 8-byte headers
      const batch = Math.floor(ringRecords * 0.7);
      const seen: number[] = [];
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < batch; i++) expect(send(b, 1024 + round * batch + i, a, 81)).toBe(false); // a drop each: its own flow
        seen.push(...drain().map((e) => Number(/:(\d+)->/.exec(e.flow)![1])));
      }
      expect(seen).toEqual(Array.from({ length: 5 * batch }, (_, i) => 1024 + i));
      expect(counters()[COUNTER.EVENTS_LOST]).toBeUndefined();
    });

    test('allowed connections are one event a second per client, server, protocol and port; the kernel counts each', () => {
      write([aFromB([80, 81]), bClosed]);
      for (let sport = 43000; sport < 43050; sport++) expect(send(b, sport, a, 80)).toBe(true);
      expect(send(b, 43100, a, 81)).toBe(true);
      const [ia, ib] = [a.ips[0]!, b.ips[0]!];
      expect(drain().map((e) => e.flow)).toEqual([`${ib}:43000->${ia}:80/6`, `${ib}:43100->${ia}:81/6`]);
      expect(counters()[COUNTER.FORWARDED]).toBe(51n);
      // A second later (the last report moved back), the next connection is reported again.
      const droplog = copies.get(0)!.map(MAPS.droplog);
      for (const [k, v] of droplog.entries()) {
        const earlier = Buffer.alloc(8);
        earlier.writeBigUInt64LE((v as Buffer).readBigUInt64LE(0) - 1_000_000_001n);
        droplog.update(k, earlier);
      }
      expect(send(b, 43200, a, 80)).toBe(true);
      expect(drain().map((e) => e.flow)).toEqual([`${ib}:43200->${ia}:80/6`]);
    });

    test('an exception of the callback is thrown after its batch, which is consumed all the same', () => {
      write([aFromB([80]), bClosed]);
      for (const sport of [42000, 42001, 42002]) expect(send(b, sport, a, 81)).toBe(false);
      const got: number[] = [];
      const keep = onRecord;
      onRecord = (r) => {
        const e = decodeFlowEvent(r);
        got.push(e.sport);
        if (e.sport === 42001) throw new Error('reader failed');
      };
      try {
        expect(() => reader.consume()).toThrow('reader failed');
        expect(got).toEqual([42000, 42001, 42002]);
        expect(reader.consume()).toBe(0);
      } finally {
        onRecord = keep;
      }
    });

    test('a connection cut by a policy change is reported as cut, in the way its initiator opened it', () => {
      write([aFromB([80]), bClosed]);
      expect(send(b, 40010, a, 80)).toBe(true);
      drain();
      write([bClosed, np('a-closed', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] })]);
      expect(send(a, 80, b, 40010)).toBe(false);
      expect(drain()).toEqual([{ verdict: VERDICT.DROPPED, reason: REASON.INGRESS, flags: FLOW.CUT, flow: `${b.ips[0]}:40010->${a.ips[0]}:80/6` }]);
      expect(counters()).toEqual({ [COUNTER.FORWARDED]: 1n, [COUNTER.CUT]: 1n });
    });
  });
});

test('what is not IP is not policy\'s business; a truncated header is dropped by no rule', () => {
  const arp = Buffer.alloc(42);
  arp.writeUInt16BE(0x0806, 12);
  expect(testRun(prog, arp).retval).toBe(PASS);
});

test('the network (and the pol_ports switch) are constants of each loaded copy, set before load at their exact size (ENOENT, EINVAL, EALREADY otherwise)', () => {
  const o = BpfObject.open(object, { pinRoot: PIN_ROOT });
  try {
    expect(thrownBy(() => o.setConstants('.rodata.nope', Buffer.alloc(4)))).toMatchObject({ errnoName: 'ENOENT' });
    expect(thrownBy(() => o.setConstants(NETWORK_SECTION, Buffer.alloc(4)))).toMatchObject({ errnoName: 'EINVAL' });
    expect(thrownBy(() => o.setConstants('.data', Buffer.alloc(4)))).toMatchObject({ errnoName: 'EINVAL' });
    o.setConstants(NETWORK_SECTION, Buffer.from([7, 0, 0, 0, 0, 0, 0, 0]));
    o.load();
    expect(thrownBy(() => o.setConstants(NETWORK_SECTION, Buffer.alloc(8)))).toMatchObject({ errnoName: 'EALREADY' });
    // bpftool reads the loaded copy's constant back from the kernel.
    const sections = (JSON.parse(run('bpftool', ['-j', 'map', 'show'])) as Array<{ id: number; name: string }>).filter((m) => m.name === NETWORK_SECTION);
    const values = sections.flatMap((m) => (JSON.parse(run('bpftool', ['-j', 'map', 'dump', 'id', String(m.id)])) as Array<{ formatted?: { value?: Record<string, Array<{ policy_network?: number }>> } }>)
      .flatMap((d) => d.formatted?.value?.[NETWORK_SECTION] ?? []).map((v) => v.policy_network));
    expect(values.filter((v) => v === 7)).toHaveLength(2); // this one and the test's copy for BLUE
  } finally {
    o.close();
  }
});

test('bpf-maps.ts matches bpf/policy.h as the C compiler lays it out (structs, flags, directions)', () => {
  const lines = structLines(STRUCTS);
  const print = (label: string) => lines.push(`  printf("%s=%lld\\n", "${label}", (long long)(${label}));`);
  for (const k of Object.keys(FLAGS)) print(`POLICY_${k}`);
  for (const k of Object.keys(DIRECTION)) print(`POLICY_${k.toUpperCase()}`);
  for (const k of Object.keys(VERDICT)) print(`POLICY_VERDICT_${k}`);
  for (const k of Object.keys(REASON)) print(`POLICY_REASON_${k}`);
  for (const k of Object.keys(FLOW)) print(`POLICY_FLOW_${k}`);
  for (const k of Object.keys(COUNTER)) print(`POLICY_COUNT_${k}`);
  const c = compileAndRun(['#include <stdio.h>', '#include <stddef.h>', '#include "policy.h"', 'int main(void) {', ...lines, '  return 0;', '}'].join('\n'), [join(__dirname, 'bpf')]);
  for (const s of STRUCTS) {
    const { ours, theirs } = structLayouts(s, c);
    expect(ours).toEqual(theirs);
  }
  expect(FLAGS).toEqual({ ISOLATED_INGRESS: c.get('POLICY_ISOLATED_INGRESS'), ISOLATED_EGRESS: c.get('POLICY_ISOLATED_EGRESS'), NODE: c.get('POLICY_NODE'), SLOT_FLIP: c.get('POLICY_SLOT_FLIP') });
  expect(DIRECTION).toEqual({ ingress: c.get('POLICY_INGRESS'), egress: c.get('POLICY_EGRESS') });
  const from = (prefix: string, names: object) => Object.fromEntries(Object.keys(names).map((k) => [k, c.get(`${prefix}${k}`)]));
  expect([VERDICT, REASON, FLOW, COUNTER]).toEqual([from('POLICY_VERDICT_', VERDICT), from('POLICY_REASON_', REASON), from('POLICY_FLOW_', FLOW), from('POLICY_COUNT_', COUNTER)]);
});

/**
 * eBPF through libbpf against the real kernel (root): the test program kernel/bpf/testdata/tc_count.c is built
 * with clang into a temp dir, loaded through the verifier, its maps pinned under a random directory of
 * /sys/fs/bpf, and attached to tc ingress of a veth end inside a netns this test creates. Traffic is ping
 * between two namespaces the test creates (their own addresses only). `bpftool` and `tc` are the witnesses.
 * Every netns, link and pin is removed in afterEach; the calling thread must still be in the host netns.
 */
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { thrownBy } from '../helpers/thrown';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BpfMap,
  bpfCodec,
  BpfObject,
  type BpfProgram,
  type KernelError,
  mountBpffs,
  Netlink,
  openPinnedMap,
  pinMap,
  removePin,
  TC_ACT,
  TcHook,
  testRun,
} from '../../kernel';
import {
  buildTcCount,
  compileBpf,
  DenyKey,
  DenyValue,
  MAPS,
  PROGRAM,
  PROTOS,
  ProtoStats,
  VERDICT,
  VERDICTS,
} from '../../kernel/bpf/testdata/tc-count';
import {
  bpftoolJson,
  describeAsRoot,
  NetnsScope,
  randomIfName,
  randomSuffix,
  run,
  runIn,
  tcJson,
  type TestNetns,
} from '../helpers/netns';

const { u32, u64 } = bpfCodec;
const threadNetns = (): string => readlinkSync('/proc/thread-self/ns/net');
const HOST_NETNS = threadNetns();

interface TcFilterJson {
  kind?: string;
  pref?: number;
  options?: { handle?: string; bpf_name?: string; 'direct-action'?: boolean; prog?: { id: number; name?: string } };
}
interface BpftoolMap {
  id: number;
  type: string;
  name: string;
  bytes_key: number;
  bytes_value: number;
  max_entries: number;
}

const failure = (call: () => unknown): KernelError => thrownBy(call) as KernelError;

// ---- packets for BPF_PROG_TEST_RUN ----

const ETH_P = { IP: 0x0800, IPV6: 0x86dd, ARP: 0x0806 } as const;

function ethernet(proto: number, payload: Buffer): Buffer {
  const eth = Buffer.alloc(14);
  Buffer.from('020000000002', 'hex').copy(eth, 0);
  Buffer.from('020000000001', 'hex').copy(eth, 6);
  eth.writeUInt16BE(proto, 12);
  return Buffer.concat([eth, payload]);
}

/** Ethernet + IPv4 (no options) + `l4` bytes of protocol `proto`. */
function ipv4Packet(src: string, dst: string, proto: number, l4 = Buffer.alloc(8)): Buffer {
  const ip4 = Buffer.alloc(20);
  ip4[0] = 0x45;
  ip4.writeUInt16BE(20 + l4.length, 2);
  ip4[8] = 64;
  ip4[9] = proto;
  Buffer.from(src.split('.').map(Number)).copy(ip4, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip4, 16);
  return ethernet(ETH_P.IP, Buffer.concat([ip4, l4]));
}

/** Ethernet + IPv6 with next header `nexthdr` (addresses are all zero: the program does not read them). */
function ipv6Packet(nexthdr: number, l4 = Buffer.alloc(8)): Buffer {
  const ip6 = Buffer.alloc(40);
  ip6[0] = 0x60;
  ip6.writeUInt16BE(l4.length, 4);
  ip6[6] = nexthdr;
  ip6[7] = 64;
  return ethernet(ETH_P.IPV6, Buffer.concat([ip6, l4]));
}

describeAsRoot('eBPF through libbpf (tc_count in real network namespaces)', () => {
  const scope = new NetnsScope();
  let buildDir: string;
  let objectPath: string;
  let pinRoot: string;

  beforeAll(() => {
    // Pins need the BPF filesystem; on a machine without it mounted, mount it as systemd would (and leave it).
    mountBpffs();
    buildDir = mkdtempSync(join(tmpdir(), 'plx-bpf-'));
    objectPath = buildTcCount(buildDir);
  });

  afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

  beforeEach(() => {
    pinRoot = `/sys/fs/bpf/plx-test-${randomSuffix(4)}`;
    scope.defer(() => rmSync(pinRoot, { recursive: true, force: true }));
  });

  afterEach(() => {
    scope.cleanup();
    expect(existsSync(pinRoot)).toBe(false);
    expect(threadNetns()).toBe(HOST_NETNS);
  });

  /** Opens and loads tc_count with this test's pin root; closed at cleanup. */
  function loadObject(): BpfObject {
    const obj = BpfObject.open(objectPath, { pinRoot });
    scope.defer(() => obj.close());
    obj.load();
    return obj;
  }

  /** Two fresh namespaces joined by a veth pair with 10.203.<n>.1/24 and .2/24, everything up. */
  async function pingPair(): Promise<{ a: TestNetns; b: TestNetns; bIf: string; bIndex: number; aAddr: string; bAddr: string }> {
    const a = scope.make('plx-bpf');
    const b = scope.make('plx-bpf');
    const [aIf, bIf] = [randomIfName('plxa'), randomIfName('plxb')];
    const n = 1 + Math.floor(Math.random() * 250);
    const [aAddr, bAddr] = [`10.203.${n}.1`, `10.203.${n}.2`];
    const na = await Netlink.open(a.path);
    const nb = await Netlink.open(b.path);
    try {
      await na.createVeth(aIf, bIf, { peerNetnsPath: b.path });
      await na.addAddress(aIf, `${aAddr}/24`);
      await nb.addAddress(bIf, `${bAddr}/24`);
      for (const [h, name] of [[na, aIf], [nb, bIf], [na, 'lo'], [nb, 'lo']] as const) await h.setLinkUp(name, true);
      const bIndex = (await nb.getLink(bIf))!.index;
      return { a, b, bIf, bIndex, aAddr, bAddr };
    } finally {
      na.close();
      nb.close();
    }
  }

  const ping = (from: TestNetns, to: string, count: number): boolean => {
    try {
      runIn(from, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', '-q', to]);
      return true;
    } catch {
      return false;
    }
  };

  const ingressFilters = (ns: TestNetns, dev: string): TcFilterJson[] =>
    tcJson<TcFilterJson[]>(ns, 'filter', 'show', 'dev', dev, 'ingress').filter((f) => f.kind === 'bpf' && f.options);

  describe('objects and pins', () => {
    test('load runs the program through the verifier and pins proto_stats by name under the pin root', () => {
      const obj = loadObject();
      const prog = obj.program(PROGRAM);
      expect(prog.fd).toBeGreaterThan(0);
      const pinned = `${pinRoot}/${MAPS.protoStats}`;
      expect(existsSync(pinned)).toBe(true);
      expect(bpftoolJson<BpftoolMap>('map', 'show', 'pinned', pinned)).toMatchObject({
        type: 'array',
        name: MAPS.protoStats,
        bytes_key: 4,
        bytes_value: ProtoStats.size,
        max_entries: PROTOS,
      });
      // Maps without a pinning attribute are not pinned.
      expect(existsSync(`${pinRoot}/${MAPS.denyV4}`)).toBe(false);
      expect(obj.map(MAPS.verdicts).info).toMatchObject({ keySize: 4, valueSize: 8, maxEntries: VERDICTS, name: MAPS.verdicts });
    });

    test('a second load reuses the map pinned by name: counters survive the first object', () => {
      const first = BpfObject.open(objectPath, { pinRoot });
      first.load();
      first.map(MAPS.protoStats, u32, ProtoStats).update(6, { packets: 5n, bytes: 300n });
      first.close();
      const second = loadObject();
      expect(second.map(MAPS.protoStats, u32, ProtoStats).lookup(6)).toEqual({ packets: 5n, bytes: 300n });
      const viaPin = openPinnedMap(`${pinRoot}/${MAPS.protoStats}`, u32, ProtoStats);
      try {
        expect(viaPin.lookup(6)).toEqual({ packets: 5n, bytes: 300n });
        expect(viaPin.info.id).toBe(second.map(MAPS.protoStats).info.id);
      } finally {
        viaPin.close();
      }
    });

    test('pinMap and openPinnedMap: one map through two handles, bpftool dumps what the API wrote', () => {
      const obj = loadObject();
      const path = obj.pinMap(MAPS.denyV4);
      expect(path).toBe(`${pinRoot}/${MAPS.denyV4}`);
      const mine = obj.map(MAPS.denyV4, DenyKey, DenyValue);
      const theirs = openPinnedMap(path, DenyKey, DenyValue);
      try {
        mine.update({ addr: '192.0.2.7' }, { drops: 7n, last_proto: 17 });
        expect(theirs.lookup({ addr: '192.0.2.7' })).toEqual({ drops: 7n, last_proto: 17 });
        const dump = bpftoolJson<Array<{ key: unknown; value: unknown; formatted?: unknown }>>('map', 'dump', 'pinned', path);
        expect(dump).toHaveLength(1);
        // BTF makes bpftool print the structs by field: addr is the __be32 as a host-order number.
        expect(dump[0]!.formatted ?? dump[0]).toMatchObject({ key: { addr: 0x070200c0 }, value: { drops: 7, last_proto: 17 } });
      } finally {
        theirs.close();
      }
      // A second handle pinned elsewhere through the top-level helper.
      const again = `${pinRoot}/sub/${MAPS.denyV4}`;
      pinMap(mine, again);
      expect(bpftoolJson<BpftoolMap>('map', 'show', 'pinned', again).name).toBe(MAPS.denyV4);
      expect(removePin(again)).toBe(true);
      expect(removePin(again)).toBe(false);
      expect(failure(() => openPinnedMap(again))).toMatchObject({ kind: 'KernelFailure', errnoName: 'ENOENT' });
    });

    test('reuseMap makes a fresh object use an existing pinned map', () => {
      const first = loadObject();
      const path = first.pinMap(MAPS.denyV4);
      first.map(MAPS.denyV4, DenyKey, DenyValue).update({ addr: '198.51.100.1' }, { drops: 1n, last_proto: 6 });
      const second = BpfObject.open(objectPath, { pinRoot });
      scope.defer(() => second.close());
      second.reuseMap(MAPS.denyV4, path);
      second.load();
      expect(second.map(MAPS.denyV4, DenyKey, DenyValue).lookup({ addr: '198.51.100.1' })).toEqual({ drops: 1n, last_proto: 6 });
    });
  });

  describe('maps', () => {
    test('iteration yields every key of a hash map; update modes; delete reports absence', () => {
      const deny = loadObject().map(MAPS.denyV4, DenyKey, DenyValue);
      const addrs = Array.from({ length: 50 }, (_, i) => `10.77.${i >> 4}.${(i & 15) + 1}`);
      addrs.forEach((addr, i) => deny.update({ addr }, { drops: BigInt(i), last_proto: i }, 'noexist'));
      expect([...deny.keys()].map((k) => k.addr).sort()).toEqual([...addrs].sort());
      const entries = new Map([...deny.entries()].map(([k, v]) => [k.addr, v]));
      expect(entries.size).toBe(50);
      expect(entries.get(addrs[9]!)).toEqual({ drops: 9n, last_proto: 9 });

      expect(failure(() => deny.update({ addr: addrs[0]! }, { drops: 0n, last_proto: 0 }, 'noexist'))).toMatchObject({ errnoName: 'EEXIST' });
      expect(failure(() => deny.update({ addr: '10.99.0.1' }, { drops: 0n, last_proto: 0 }, 'exist'))).toMatchObject({ errnoName: 'ENOENT' });
      deny.update({ addr: addrs[0]! }, { drops: 100n, last_proto: 1 }, 'exist');
      expect(deny.lookup({ addr: addrs[0]! })).toEqual({ drops: 100n, last_proto: 1 });

      for (const addr of addrs.slice(0, 25)) expect(deny.delete({ addr })).toBe(true);
      expect(deny.delete({ addr: addrs[0]! })).toBe(false);
      expect(deny.lookup({ addr: addrs[0]! })).toBeUndefined();
      expect([...deny.keys()].map((k) => k.addr).sort()).toEqual(addrs.slice(25).sort());
    });

    test('an array map iterates over every index; a per-CPU map has one value per possible CPU', () => {
      const obj = loadObject();
      const stats = obj.map(MAPS.protoStats, u32, ProtoStats);
      expect([...stats.keys()]).toEqual(Array.from({ length: PROTOS }, (_, i) => i));
      expect(stats.lookup(255)).toEqual({ packets: 0n, bytes: 0n });
      expect(failure(() => stats.delete(1))).toMatchObject({ errnoName: 'EINVAL' });
      expect(failure(() => stats.update(PROTOS, { packets: 0n, bytes: 0n }))).toMatchObject({ errnoName: 'E2BIG' });

      const verdicts = obj.map(MAPS.verdicts, u32, u64);
      expect(verdicts.perCpu).toBe(true);
      const cpus = verdicts.lookupPerCpu(0)!.length;
      expect(cpus).toBeGreaterThanOrEqual(1);
      verdicts.updatePerCpu(VERDICT.NOT_IP, Array.from({ length: cpus }, (_, i) => BigInt(i + 1)));
      expect(verdicts.lookupPerCpu(VERDICT.NOT_IP)).toEqual(Array.from({ length: cpus }, (_, i) => BigInt(i + 1)));
      verdicts.updatePerCpu(VERDICT.PASS, 4n);
      expect(new Map([...verdicts.entriesPerCpu()]).get(VERDICT.PASS)).toEqual(new Array(cpus).fill(4n));
      expect(failure(() => verdicts.lookup(0))).toMatchObject({ errnoName: 'EINVAL' });
      expect(failure(() => stats.lookupPerCpu(0))).toMatchObject({ errnoName: 'EINVAL' });
    });
  });

  describe('tc', () => {
    test('attached to tc ingress in a netns: pings are counted, a denied source is dropped, tc and bpftool agree', async () => {
      const { a, b, bIf, bIndex, aAddr, bAddr } = await pingPair();
      const obj = loadObject();
      const prog = obj.program(PROGRAM);
      const hook = new TcHook(bIndex, 'ingress', b.path);
      const filter = hook.attach(prog);
      expect(threadNetns()).toBe(HOST_NETNS);

      // Witness: tc shows a direct-action bpf filter running our program's id at pref 1, handle 0x1.
      const filters = ingressFilters(b, bIf);
      expect(filters).toHaveLength(1);
      expect(filters[0]).toMatchObject({ pref: 1, options: { handle: '0x1', 'direct-action': true, prog: { id: filter.progId } } });
      expect(bpftoolJson<{ id: number; name: string; type: string }>('prog', 'show', 'id', String(filter.progId))).toMatchObject({
        name: PROGRAM,
        type: 'sched_cls',
      });
      expect(hook.query()).toEqual(filter);

      // 3 echo requests arrive at b's ingress (the replies leave through its egress).
      expect(ping(a, bAddr, 3)).toBe(true);
      const stats = obj.map(MAPS.protoStats, u32, ProtoStats);
      const icmp = stats.lookup(1)!;
      expect(icmp.packets).toBe(3n);
      // ICMP echo of ping's default 56 data bytes: 14 Ethernet + 20 IPv4 + 8 ICMP + 56.
      expect(icmp.bytes).toBe(3n * 98n);
      // bpftool prints raw bytes plus, thanks to the object's BTF, the value by field under "formatted".
      const dumped = bpftoolJson<Array<{ formatted: { key: number; value: { packets: number; bytes: number } } }>>(
        'map', 'dump', 'pinned', `${pinRoot}/${MAPS.protoStats}`,
      );
      expect(dumped.find((e) => e.formatted.key === 1)?.formatted.value).toEqual({ packets: 3, bytes: 294 });

      // Deny a's address: pings die at b's ingress and are counted against that source.
      const deny = obj.map(MAPS.denyV4, DenyKey, DenyValue);
      deny.update({ addr: aAddr }, { drops: 0n, last_proto: 0 });
      expect(ping(a, bAddr, 2)).toBe(false);
      const denied = deny.lookup({ addr: aAddr })!;
      expect(denied.drops).toBeGreaterThanOrEqual(2n);
      expect(denied.last_proto).toBe(1);
      const verdicts = obj.map(MAPS.verdicts, u32, u64);
      const sum = (v: bigint[] | undefined): bigint => (v ?? []).reduce((x, y) => x + y, 0n);
      expect(sum(verdicts.lookupPerCpu(VERDICT.DROP_DENIED))).toBe(denied.drops);
      expect(sum(verdicts.lookupPerCpu(VERDICT.PASS))).toBeGreaterThanOrEqual(3n);
      expect(deny.delete({ addr: aAddr })).toBe(true);
      expect(ping(a, bAddr, 1)).toBe(true);

      // Detach: gone for tc, for query, and traffic is no longer counted.
      expect(hook.detach(filter)).toBe(true);
      expect(ingressFilters(b, bIf)).toEqual([]);
      expect(hook.query()).toBeUndefined();
      expect(hook.detach(filter)).toBe(false);
      const before = stats.lookup(1)!.packets;
      expect(ping(a, bAddr, 1)).toBe(true);
      expect(stats.lookup(1)!.packets).toBe(before);

      // The clsact qdisc is still there until destroyed.
      const qdiscs = (): string[] => tcJson<Array<{ kind: string }>>(b, 'qdisc', 'show', 'dev', bIf).map((q) => q.kind);
      expect(qdiscs()).toContain('clsact');
      expect(TcHook.destroyClsact(bIndex, b.path)).toBe(true);
      expect(qdiscs()).not.toContain('clsact');
      expect(TcHook.destroyClsact(bIndex, b.path)).toBe(false);
      expect(threadNetns()).toBe(HOST_NETNS);
    });

    test('egress and ingress hooks, explicit handle and priority, replace, and create on an existing clsact', async () => {
      const { b, bIf, bIndex } = await pingPair();
      const obj = loadObject();
      const prog = obj.program(PROGRAM);
      run('tc', ['-n', b.name, 'qdisc', 'add', 'dev', bIf, 'clsact']);
      const egress = new TcHook(bIndex, 'egress', b.path);
      expect(egress.create()).toBe(false);
      const f = egress.attach(prog, { handle: 7, priority: 42 });
      expect(f).toMatchObject({ handle: 7, priority: 42 });
      const shown = tcJson<TcFilterJson[]>(b, 'filter', 'show', 'dev', bIf, 'egress').filter((x) => x.options);
      expect(shown).toEqual([expect.objectContaining({ pref: 42, options: expect.objectContaining({ handle: '0x7' }) })]);
      expect(failure(() => egress.attach(prog, { handle: 7, priority: 42 }))).toMatchObject({ errnoName: 'EEXIST' });
      expect(egress.attach(prog, { handle: 7, priority: 42, replace: true })).toMatchObject({ handle: 7, priority: 42 });
      expect(new TcHook(bIndex, 'ingress', b.path).query({ handle: 7, priority: 42 })).toBeUndefined();
      expect(egress.detach({ handle: 7, priority: 42 })).toBe(true);
      expect(tcJson<TcFilterJson[]>(b, 'filter', 'show', 'dev', bIf, 'egress').filter((x) => x.options)).toEqual([]);
    });

    test('a missing link is a typed ENODEV, and the thread comes back from the netns', async () => {
      const { b } = await pingPair();
      const prog = loadObject().program(PROGRAM);
      expect(failure(() => new TcHook(99999, 'ingress', b.path).attach(prog))).toMatchObject({ kind: 'KernelFailure', errnoName: 'ENODEV' });
      expect(failure(() => new TcHook(1, 'ingress', '/run/netns/plx-bpf-missing').attach(prog))).toMatchObject({ errnoName: 'ENOENT' });
      expect(failure(() => new TcHook(0, 'ingress'))).toMatchObject({ errnoName: 'EINVAL' });
      expect(threadNetns()).toBe(HOST_NETNS);
    });
  });

  describe('BPF_PROG_TEST_RUN', () => {
    let obj: BpfObject;
    let prog: BpfProgram;
    beforeEach(() => {
      obj = loadObject();
      prog = obj.program(PROGRAM);
    });

    test.each([
      ['IPv4 ICMP from an allowed source passes and is counted', ipv4Packet('10.1.0.1', '10.1.0.2', 1), TC_ACT.OK, 1, VERDICT.PASS],
      ['IPv4 ICMP from a denied source is dropped', ipv4Packet('10.66.0.9', '10.1.0.2', 1), TC_ACT.SHOT, 1, VERDICT.DROP_DENIED],
      ['IPv6 UDP passes and is counted under 17', ipv6Packet(17), TC_ACT.OK, 17, VERDICT.PASS],
      ['ARP passes uncounted', ethernet(ETH_P.ARP, Buffer.alloc(28)), TC_ACT.OK, undefined, VERDICT.NOT_IP],
      ['IPv6 ICMPv6 passes and is counted under 58', ipv6Packet(58), TC_ACT.OK, 58, VERDICT.PASS],
    ])('%s', (_name, packet, retval, proto, verdict) => {
      obj.map(MAPS.denyV4, DenyKey, DenyValue).update({ addr: '10.66.0.9' }, { drops: 0n, last_proto: 0 });
      const result = testRun(prog, packet, { repeat: 10 });
      expect(result.retval).toBe(retval);
      expect(result.packet.equals(packet)).toBe(true);
      expect(result.durationNs).toBeGreaterThanOrEqual(0);
      const stats = obj.map(MAPS.protoStats, u32, ProtoStats);
      const counted = [...stats.entries()].filter(([, s]) => s.packets > 0n);
      expect(counted).toEqual(proto === undefined ? [] : [[proto, { packets: 10n, bytes: BigInt(10 * packet.length) }]]);
      const perCpu = obj.map(MAPS.verdicts, u32, u64).lookupPerCpu(verdict)!;
      expect(perCpu.reduce((x, y) => x + y, 0n)).toBe(10n);
      if (verdict === VERDICT.DROP_DENIED) {
        expect(obj.map(MAPS.denyV4, DenyKey, DenyValue).lookup({ addr: '10.66.0.9' })).toEqual({ drops: 10n, last_proto: 1 });
      }
    });

    test('a packet shorter than an Ethernet header is refused before the kernel, a truncated IP header by it', () => {
      expect(failure(() => testRun(prog, Buffer.alloc(10)))).toMatchObject({ errnoName: 'EINVAL' });
      // The kernel builds the test skb's network header itself, so the program's MALFORMED path (a header
      // shorter than it claims) is only reachable by real traffic, never through BPF_PROG_TEST_RUN.
      expect(failure(() => testRun(prog, ethernet(ETH_P.IP, Buffer.alloc(10))))).toMatchObject({ kind: 'KernelFailure', errnoName: 'EINVAL' });
      expect(failure(() => testRun(prog, ipv6Packet(6), { repeat: 0 }))).toMatchObject({ errnoName: 'EINVAL' });
    });
  });

  describe('errors are typed', () => {
    test.each([
      ['a missing object file', 'ENOENT', () => BpfObject.open('/nonexistent/plexus.o')],
      ['a file that is no ELF object', 'EINVAL', () => BpfObject.open('/etc/hostname')],
      ['a pin root outside bpffs', 'EINVAL', () => BpfObject.open(objectPath, { pinRoot: '/tmp/pins' })],
      ['a pin root with ..', 'EINVAL', () => BpfObject.open(objectPath, { pinRoot: '/sys/fs/bpf/../x' })],
      ['opening a missing pin', 'ENOENT', () => openPinnedMap('/sys/fs/bpf/plx-test-missing/x')],
      ['opening a pin outside bpffs', 'EINVAL', () => openPinnedMap('/etc/passwd')],
    ])('%s is a typed %s', (_name, errnoName, call) => {
      expect(failure(call)).toMatchObject({ kind: 'KernelFailure', errnoName });
    });

    test('a file that is no ELF object says so in the extack', () => {
      expect(failure(() => BpfObject.open('/etc/hostname')).extack).toMatch(/LIBBPF_ERRNO__FORMAT.*ELF/s);
    });

    test('missing program and map names are ENOENT; use before load EINVAL; twice loaded EALREADY; after close EBADF', () => {
      const early = BpfObject.open(objectPath, { pinRoot });
      scope.defer(() => early.close());
      expect(failure(() => early.program(PROGRAM))).toMatchObject({ errnoName: 'EINVAL' });
      early.load();
      expect(failure(() => early.load())).toMatchObject({ errnoName: 'EALREADY' });
      expect(failure(() => early.program('no_such_prog'))).toMatchObject({ kind: 'KernelFailure', errnoName: 'ENOENT' });
      expect(failure(() => early.map('no_such_map'))).toMatchObject({ errnoName: 'ENOENT' });
      expect(failure(() => early.program('bad name'))).toMatchObject({ errnoName: 'EINVAL' });
      expect(failure(() => early.map(MAPS.protoStats, u32, u64))).toMatchObject({ errnoName: 'EINVAL' });
      const stats = early.map(MAPS.protoStats, u32, ProtoStats);
      early.close();
      early.close();
      expect(failure(() => stats.lookup(1))).toMatchObject({ errnoName: 'EBADF' });
      expect(failure(() => early.map(MAPS.protoStats))).toMatchObject({ errnoName: 'EBADF' });
    });

    test('a closed pinned map refuses with EBADF, its typed views too', () => {
      const obj = loadObject();
      const pinned = BpfMap.openPinned(`${pinRoot}/${MAPS.protoStats}`);
      const view = pinned.typed(u32, ProtoStats);
      expect(view.lookup(0)).toEqual({ packets: 0n, bytes: 0n });
      view.close();
      expect(failure(() => pinned.lookup(Buffer.alloc(4)))).toMatchObject({ errnoName: 'EBADF' });
      expect(obj.map(MAPS.protoStats, u32, ProtoStats).lookup(0)).toEqual({ packets: 0n, bytes: 0n });
    });

    test('a program the verifier refuses fails with the kernel errno and the verifier log', () => {
      const src = join(buildDir, 'unchecked.c');
      writeFileSync(
        src,
        [
          '#include <linux/bpf.h>',
          '#include <bpf/bpf_helpers.h>',
          '/* Attaches to: nothing; reads the packet without a bounds check, which the verifier refuses. */',
          'SEC("tc") int unchecked(struct __sk_buff *skb) { return *(unsigned char *)(long)skb->data; }',
          'char _license[] SEC("license") = "GPL";',
        ].join('\n'),
      );
      const out = compileBpf(src, join(buildDir, 'unchecked.o'));
      const bad = BpfObject.open(out, { pinRoot });
      scope.defer(() => bad.close());
      const err = failure(() => bad.load());
      expect(err).toMatchObject({ kind: 'KernelFailure', errnoName: 'EACCES' });
      expect(err.extack).toMatch(/invalid access to packet/);
      expect(err.extack).toMatch(/BEGIN PROG LOAD LOG/);
    });
  });
});

/**
 * from_pod under BPF_PROG_TEST_RUN (STYLE 15): packets built in memory, the endpoints map seeded, the verdict,
 * the rewritten packet and the counters checked. Without a context the kernel runs the program as if the
 * packet came in on `lo` (ifindex 1), so endpoints "behind" ifindex 1 are the sender's own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BpfMap, BpfObject, mountBpffs, TC_ACT, testRun } from '../../kernel';
import { compileBpf } from '../../kernel/bpf/testdata/tc-count';
import { EndpointKeyStruct, type EndpointStats, EndpointStatsStruct, EndpointStruct, type EndpointValue, IfindexKey, MAPS, PROGRAM, sumStats, ZERO_STATS } from './bpf-maps';
import { endpointKey } from './node';

const SENDER = 1; // lo: where test runs "receive" the packet
const OTHER = 4242; // another pod's host veth (never looked up as a device by the program)
const POD_MAC = '02:00:00:00:00:22';
const HOST_MAC = '02:00:00:00:00:11';

const dir = mkdtempSync(join(tmpdir(), 'plexus-from-pod-'));
const pinRoot = `/sys/fs/bpf/plexus-test-from-pod-${process.pid}`;
let obj: BpfObject;
let endpoints: BpfMap<{ family: number; addr: Buffer }, EndpointValue>;
let stats: BpfMap<number, EndpointStats>;

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ether = (type: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(14);
  Buffer.from('02000000aaaa', 'hex').copy(h, 0);
  Buffer.from('02000000bbbb', 'hex').copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
};

function ipv4(src: string, dst: string, ttl = 64): Buffer {
  const ip = Buffer.alloc(20 + 8);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip[8] = ttl;
  ip[9] = 1; // ICMP
  Buffer.from(src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip.subarray(0, 20)), 10);
  ip[20] = 8; // echo request
  return ether(0x0800, ip);
}

function ipv6(src: string, dst: string, hops = 64): Buffer {
  const ip = Buffer.alloc(40 + 8);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(8, 4);
  ip[6] = 58; // ICMPv6
  ip[7] = hops;
  endpointKey(src).addr.copy(ip, 8);
  endpointKey(dst).addr.copy(ip, 24);
  ip[40] = 128;
  return ether(0x86dd, ip);
}

const counters = (): EndpointStats => sumStats(stats.lookupPerCpu(SENDER) ?? [ZERO_STATS]);

beforeAll(() => {
  mountBpffs();
  obj = BpfObject.open(compileBpf(join(__dirname, 'bpf/from_pod.c'), join(dir, 'from_pod.o')), { pinRoot });
  obj.load();
  endpoints = obj.map(MAPS.endpoints, EndpointKeyStruct, EndpointStruct);
  stats = obj.map(MAPS.stats, IfindexKey, EndpointStatsStruct);
  const ep = (ifindex: number) => ({ ifindex, flags: 0, pod_mac: POD_MAC, host_mac: HOST_MAC });
  endpoints.update(endpointKey('10.0.0.1'), ep(SENDER));
  endpoints.update(endpointKey('fd00::1'), ep(SENDER));
  endpoints.update(endpointKey('10.0.0.2'), ep(OTHER));
  endpoints.update(endpointKey('fd00::2'), ep(OTHER));
});

beforeEach(() => stats.updatePerCpu(SENDER, ZERO_STATS));

afterAll(() => {
  obj?.close();
  rmSync(pinRoot, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

const run = (packet: Buffer) => testRun(obj.program(PROGRAM), packet);

describe('from_pod', () => {
  test('IPv4 to a local pod: redirected to its peer, MACs rewritten, TTL - 1 with a valid checksum', () => {
    const r = run(ipv4('10.0.0.1', '10.0.0.2'));
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect(r.packet.subarray(0, 6).toString('hex')).toBe(POD_MAC.replace(/:/g, ''));
    expect(r.packet.subarray(6, 12).toString('hex')).toBe(HOST_MAC.replace(/:/g, ''));
    expect(r.packet[14 + 8]).toBe(63);
    expect(checksum(r.packet.subarray(14, 34))).toBe(0);
    expect(counters()).toMatchObject({ redirected: 1n, spoofed_packets: 0n });
  });

  test('IPv6 to a local pod: redirected, hop limit - 1', () => {
    const r = run(ipv6('fd00::1', 'fd00::2'));
    expect(r.retval).toBe(TC_ACT.REDIRECT);
    expect(r.packet[14 + 7]).toBe(63);
    expect(counters().redirected).toBe(1n);
  });

  test.each([
    ['an unknown IPv4 source', ipv4('10.0.0.9', '10.0.0.2')],
    ['another pod\'s IPv4 source', ipv4('10.0.0.2', '10.0.0.2')],
    ['an unknown IPv6 source', ipv6('fd00::9', 'fd00::2')],
  ])('%s is dropped and counted as spoofed', (_name, packet) => {
    expect(run(packet).retval).toBe(TC_ACT.SHOT);
    expect(counters()).toMatchObject({ spoofed_packets: 1n, spoofed_bytes: BigInt(packet.length), redirected: 0n });
  });

  // A truncated IP header (ROUTED_DROP_MALFORMED) cannot be tested here: BPF_PROG_TEST_RUN refuses such packets.

  test.each([
    ['ARP', ether(0x0806, Buffer.alloc(28))],
    ['an expiring IPv4 packet (the stack sends time-exceeded)', ipv4('10.0.0.1', '10.0.0.2', 1)],
    ['IPv6 from a link-local source (neighbour discovery)', ipv6('fe80::1', 'fd00::2')],
    ['IPv6 to multicast', ipv6('fd00::1', 'ff02::1')],
  ])('%s goes to the stack untouched', (_name, packet) => {
    const r = run(packet);
    expect(r.retval).toBe(TC_ACT.OK);
    expect(r.packet.subarray(0, packet.length)).toEqual(packet);
    expect(counters()).toMatchObject({ passed: 1n, spoofed_packets: 0n });
  });
});

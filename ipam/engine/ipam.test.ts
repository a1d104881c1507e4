import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cluster, pod } from '../../test/helpers/ipam/ipam-helpers';
import { Ipam, LocalStore, MemoryStore, openIpam, parseIpamConfig } from '../index';

const DUAL = { name: 'blue', cidrs: ['10.0.0.0/24', 'fd00::/120'], gateway: ['10.0.0.1', 'fd00::1'], routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0' }] };
const SMALL = { name: 'tiny', cidrs: ['10.9.0.0/28'], blockSize: 30 }; // 14 usable addresses in blocks of 4

let cluster: Cluster;
const ipamOf = (n: string): Ipam => cluster.node(n).ipam;
const req = (name: string, cid: string, extra: Record<string, unknown> = {}) =>
  ({ pod: pod(name), containerId: cid, ifName: 'net1', network: 'blue-net', pool: 'blue', ...extra });

beforeEach(async () => {
  cluster = new Cluster(new MemoryStore(), [DUAL, SMALL]);
  await cluster.add('a');
  await cluster.add('b');
});

describe('allocate', () => {
  test('a dual-stack pool gives one address per family with prefix, gateway and routes; the gateway is never handed out', async () => {
    const r = await ipamOf('a').allocate(req('p1', 'c1'));
    expect(r.addresses).toEqual([
      { ip: '10.0.0.2', address: '10.0.0.2/24', prefixLength: 24, family: 'v4', gateway: '10.0.0.1', pool: 'blue', network: 'blue-net' },
      { ip: 'fd00::2', address: 'fd00::2/120', prefixLength: 120, family: 'v6', gateway: 'fd00::1', pool: 'blue', network: 'blue-net' },
    ]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0' }]);
  });

  test('a retried allocation returns the same addresses', async () => {
    const a = await ipamOf('a').allocate(req('p1', 'c1'));
    const b = await ipamOf('a').allocate(req('p1', 'c1'));
    expect(b).toEqual(a);
    expect(ipamOf('a').pods()[0]?.addresses).toHaveLength(2);
  });

  test('concurrent retries of one attachment still get one address per family', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => ipamOf('a').allocate(req('p1', 'c1'))));
    expect(new Set(all.map((r) => JSON.stringify(r))).size).toBe(1);
    expect(ipamOf('a').pods()[0]?.addresses).toHaveLength(2);
  });

  test('family v4 only, and a family the pool lacks is a clear error', async () => {
    expect((await ipamOf('a').allocate(req('p1', 'c1', { family: 'v4' }))).addresses.map((x) => x.family)).toEqual(['v4']);
    await expect(ipamOf('a').allocate(req('p2', 'c2', { pool: 'tiny', family: 'v6' }))).rejects.toThrow(/pool tiny has no v6 CIDR/);
  });

  test('the same attachment for another pod is refused', async () => {
    await ipamOf('a').allocate(req('p1', 'c1'));
    await expect(ipamOf('a').allocate(req('p2', 'c1'))).rejects.toMatchObject({ kind: 'PodMismatch' });
  });

  test('unknown pool and bad identifiers are refused before anything changes', async () => {
    await expect(ipamOf('a').allocate(req('p1', 'c1', { pool: 'nope' }))).rejects.toThrow(/pool "nope" is not configured/);
    await expect(ipamOf('a').allocate(req('p1', '../etc'))).rejects.toMatchObject({ kind: 'InvalidEnv' });
    await expect(ipamOf('a').allocate(req('p1', 'c1', { ifName: 'a/b' }))).rejects.toMatchObject({ kind: 'InvalidEnv' });
    expect(ipamOf('a').pods()).toEqual([]);
  });

  test('allocateMany is all or nothing', async () => {
    await expect(ipamOf('a').allocateMany([
      req('p1', 'c1'),
      { ...req('p1', 'c1'), ifName: 'net2', pool: 'blue', ip: ['10.0.0.1'] },
    ])).rejects.toThrow(/excluded, a gateway/);
    expect(ipamOf('a').pods()).toEqual([]);
    const ok = await ipamOf('a').allocateMany([req('p1', 'c1'), { ...req('p1', 'c1'), ifName: 'net2', pool: 'tiny' }]);
    expect(ok.map((x) => x.addresses.length)).toEqual([2, 1]);
    expect(ipamOf('a').pods()[0]?.addresses).toHaveLength(3);
  });
});

describe('specific addresses', () => {
  test('a free address is granted, a held one is a conflict naming address, pool and holder', async () => {
    await ipamOf('a').allocate(req('p1', 'c1', { ip: ['10.0.0.50', 'fd00::50'] }));
    await expect(ipamOf('a').allocate(req('p2', 'c2', { ip: ['10.0.0.50'] }))).rejects.toMatchObject({
      kind: 'AddressConflict', message: expect.stringMatching(/address 10\.0\.0\.50 in pool blue is already held by pod default\/p1/),
    });
    // From another node, after the owner published its holders.
    await ipamOf('a').sync();
    await expect(ipamOf('b').allocate(req('p3', 'c3', { ip: ['fd00::50'] }))).rejects.toThrow(/fd00::50 in pool blue is already held by pod default\/p1 on node a/);
  });

  test('an address in another node\'s block, outside its reserve, is granted through the shared store', async () => {
    await ipamOf('a').allocate(req('p1', 'c1', { family: 'v4' })); // a claims 10.0.0.0/26 with a reserve of 16
    const r = await ipamOf('b').allocate(req('p2', 'c2', { ip: ['10.0.0.60'] }));
    expect(r.addresses[0]?.ip).toBe('10.0.0.60');
    const blk = (await ipamOf('a').blocks()).find((x) => x.key === 'blue:10.0.0.0-26');
    expect(blk?.owner).toBe('a');
    expect(blk?.foreign.map((f) => [f.ip, f.entry.node, f.entry.pod])).toEqual([['10.0.0.60', 'b', 'default/p2']]);
    // a never hands it out.
    for (let i = 0; i < 61; i++) {
      const x = await ipamOf('a').allocate(req(`q${i}`, `d${i}`, { family: 'v4' }));
      expect(x.addresses[0]?.ip).not.toBe('10.0.0.60');
    }
  });

  test('excluded, gateway and out-of-pool addresses are refused', async () => {
    await expect(ipamOf('a').allocate(req('p1', 'c1', { ip: ['10.0.0.1'] }))).rejects.toThrow(/10\.0\.0\.1 in pool blue is excluded, a gateway/);
    await expect(ipamOf('a').allocate(req('p1', 'c1', { ip: ['10.0.0.255'] }))).rejects.toThrow(/excluded/);
    await expect(ipamOf('a').allocate(req('p1', 'c1', { ip: ['10.1.0.5'] }))).rejects.toThrow(/10\.1\.0\.5 is not in pool blue/);
    await expect(ipamOf('a').allocate(req('p1', 'c1', { ip: ['10.0.0.5', '10.0.0.6'] }))).rejects.toThrow(/one requested address per family/);
  });
});

describe('release and cooldown', () => {
  test('release by attachment, by container, idempotently', async () => {
    await ipamOf('a').allocate(req('p1', 'c1'));
    await ipamOf('a').allocate({ ...req('p1', 'c1'), ifName: 'net2', pool: 'tiny' });
    expect((await ipamOf('a').release('c1', 'net2')).map((x) => x.ip)).toEqual(['10.9.0.1']);
    expect((await ipamOf('a').release('c1')).map((x) => x.ip)).toEqual(['10.0.0.2', 'fd00::2']);
    expect(await ipamOf('a').release('c1')).toEqual([]);
    expect(ipamOf('a').pods()).toEqual([]);
  });

  test('a freed address waits at the back of a FIFO queue', async () => {
    const ips = async (name: string, cid: string) => (await ipamOf('a').allocate(req(name, cid, { pool: 'tiny' }))).addresses[0]?.ip;
    expect(await ips('p1', 'c1')).toBe('10.9.0.1');
    expect(await ips('p2', 'c2')).toBe('10.9.0.2');
    await ipamOf('a').release('c1');
    await ipamOf('a').release('c2');
    expect(await ips('p3', 'c3')).toBe('10.9.0.3'); // fresh first, not the lowest free
    // Block 10.9.0.0/30 is used up: while cooling down, its released addresses wait for fresh blocks to fill.
    const rest: string[] = [];
    for (let i = 4; i < 17; i++) rest.push((await ips(`p${i}`, `c${i}`)) as string);
    expect(rest.slice(-3)).toEqual(['10.9.0.14', '10.9.0.1', '10.9.0.2']);
    await expect(ips('p99', 'c99')).rejects.toMatchObject({ kind: 'PoolExhausted', message: expect.stringContaining('pool tiny') });
  });
});

describe('sticky and IPAMClaim addresses', () => {
  test('a sticky pod gets its address back, others never get it, releaseSticky frees it', async () => {
    const first = await ipamOf('a').allocate(req('web-0', 'c1', { sticky: true }));
    await ipamOf('a').release('c1');
    const other = await ipamOf('a').allocate(req('web-1', 'c2', { sticky: true }));
    expect(other.addresses[0]?.ip).not.toBe(first.addresses[0]?.ip);
    // The same pod name comes back on another node with a new sandbox.
    const again = await ipamOf('b').allocate(req('web-0', 'c3', { sticky: true }));
    expect(again.addresses.map((x) => x.ip)).toEqual(first.addresses.map((x) => x.ip));
    expect(again.addresses[0]?.fixed).toBe('sticky:default/web-0');
    await ipamOf('b').release('c3');
    expect(await ipamOf('b').releaseSticky(pod('web-0'))).toEqual(first.addresses.map((x) => x.ip));
    expect((await ipamOf('a').blocks()).flatMap((x) => x.foreign).filter((f) => f.entry.fixed === 'sticky:default/web-0')).toEqual([]);
  });

  test('an IPAMClaim keeps its address across pods until releaseClaim (S38)', async () => {
    const vm1 = await ipamOf('a').allocate(req('virt-launcher-1', 'c1', { claim: 'vm1.blue.net1' }));
    expect(vm1.addresses[0]?.fixed).toBe('claim:default/vm1.blue.net1');
    await ipamOf('a').release('c1');
    const blocks = await ipamOf('a').blocks();
    expect(blocks.flatMap((x) => x.foreign).filter((f) => f.entry.fixed).map((f) => f.ip).sort()).toEqual(vm1.addresses.map((x) => x.ip).sort());
    const vm2 = await ipamOf('b').allocate(req('virt-launcher-2', 'c2', { claim: 'vm1.blue.net1' }));
    expect(vm2.addresses.map((x) => x.ip)).toEqual(vm1.addresses.map((x) => x.ip));
    await expect(ipamOf('a').allocate(req('x', 'c3', { claim: 'vm1.blue.net1', ip: ['10.0.0.9'] }))).rejects.toThrow(/S21/);
    expect((await ipamOf('b').releaseClaim({ namespace: 'default', name: 'vm1.blue.net1' })).sort()).toEqual(vm1.addresses.map((x) => x.ip).sort());
    expect(ipamOf('b').pods()).toEqual([]);
  });
});

describe('exhaustion, borrowing, strict affinity', () => {
  test('a node borrows outside other nodes\' reserves once no block is left', async () => {
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push((await ipamOf('a').allocate(req(`a${i}`, `ca${i}`, { pool: 'tiny' }))).addresses[0]?.ip as string);
    cluster.clock.advance(10_000);
    await ipamOf('a').sync(); // idle: a gives back its unused reserve
    for (let i = 0; i < 4; i++) got.push((await ipamOf('b').allocate(req(`b${i}`, `cb${i}`, { pool: 'tiny' }))).addresses[0]?.ip as string);
    expect(new Set(got).size).toBe(14);
    await expect(ipamOf('b').allocate(req('b9', 'cb9', { pool: 'tiny' }))).rejects.toThrow(/pool tiny has no free IPv4 address/);
  });

  test('strictAffinity never borrows', async () => {
    cluster = new Cluster(new MemoryStore(), [{ ...SMALL, strictAffinity: true }]);
    await cluster.add('a');
    await cluster.add('b');
    for (let i = 0; i < 13; i++) await ipamOf('a').allocate(req(`a${i}`, `ca${i}`, { pool: 'tiny' }));
    cluster.clock.advance(10_000);
    await ipamOf('a').sync();
    await expect(ipamOf('b').allocate(req('b0', 'cb0', { pool: 'tiny' }))).rejects.toThrow(/strictAffinity/);
  });
});

describe('nodes come and go', () => {
  test('a crashed daemon comes back with its addresses; retries return them', async () => {
    const before = await ipamOf('a').allocate(req('p1', 'c1'));
    await cluster.crash('a');
    expect(await ipamOf('a').allocate(req('p1', 'c1'))).toEqual(before);
    const next = await ipamOf('a').allocate(req('p2', 'c2'));
    expect(next.addresses[0]?.ip).not.toBe(before.addresses[0]?.ip);
  });

  test('a lost node\'s blocks are reclaimed; its addresses stay quarantined until GC after the grace period', async () => {
    for (let i = 0; i < 3; i++) await ipamOf('a').allocate(req(`a${i}`, `ca${i}`, { pool: 'tiny' }));
    await ipamOf('a').sync();
    await cluster.lose('a');
    const got: string[] = [];
    for (let i = 0; ; i++) {
      try {
        got.push((await ipamOf('b').allocate(req(`b${i}`, `cb${i}`, { pool: 'tiny' }))).addresses[0]?.ip as string);
      } catch {
        break;
      }
    }
    expect(got).not.toContain('10.9.0.1');
    expect(got).toHaveLength(11);
    let report = await ipamOf('b').gc({ pods: got.map((_, i) => pod(`b${i}`)) });
    expect(report.released).toEqual([]);
    cluster.clock.advance(60_000);
    report = await ipamOf('b').gc({ pods: got.map((_, i) => pod(`b${i}`)) });
    expect(report.released.map((c) => c.kind)).toEqual(['quarantined', 'quarantined', 'quarantined']);
    const more = await ipamOf('b').allocate(req('late', 'clate', { pool: 'tiny' }));
    expect(['10.9.0.1', '10.9.0.2', '10.9.0.3']).toContain(more.addresses[0]?.ip);
  });
});

describe('garbage collection', () => {
  test('only after the grace period, never what is live, and the recheck can veto', async () => {
    await ipamOf('a').allocate(req('live', 'c1'));
    await ipamOf('a').allocate(req('gone', 'c2'));
    const live = [{ containerId: 'c1', ifName: 'net1' }];
    expect((await ipamOf('a').gc({ attachments: live })).waiting.map((c) => c.id)).toEqual(['attachment:c2/net1']);
    cluster.clock.advance(30_000);
    expect((await ipamOf('a').gc({ attachments: live })).released).toEqual([]);
    cluster.clock.advance(30_000);
    expect((await ipamOf('a').gc({ attachments: live, recheck: () => false })).released).toEqual([]);
    const report = await ipamOf('a').gc({ attachments: live, recheck: (c) => c.containerId === 'c2' });
    expect(report.released.map((c) => c.id)).toEqual(['attachment:c2/net1']);
    expect(ipamOf('a').pods().map((p) => p.name)).toEqual(['live']);
  });

  test('runs on other input in between (the source GC between two CNI GCs) neither restart nor borrow a grace period', async () => {
    await ipamOf('a').allocate(req('live', 'c1'));
    await ipamOf('a').allocate(req('gone', 'c2'));
    const live = [{ containerId: 'c1', ifName: 'net1' }];
    await ipamOf('a').gc({ attachments: live });
    cluster.clock.advance(40_000);
    // The source still lists the pod: no candidate on that input, and CNI GC's clock keeps running.
    expect((await ipamOf('a').gc({ gonePods: [] })).waiting).toEqual([]);
    cluster.clock.advance(20_000);
    expect((await ipamOf('a').gc({ attachments: live })).released.map((c) => c.id)).toEqual(['attachment:c2/net1']);
    // And the other way round: a pod the source has just dropped does not inherit CNI GC's earlier look.
    await ipamOf('a').allocate(req('gone2', 'c3'));
    await ipamOf('a').gc({ attachments: live });
    cluster.clock.advance(60_000);
    expect((await ipamOf('a').gc({ gonePods: [pod('gone2')] })).released).toEqual([]);
  });

  test('gonePods: only the pods named are judged, sticky ones included', async () => {
    await ipamOf('a').allocate(req('web', 'c1'));
    await ipamOf('a').allocate(req('db-0', 'c2', { sticky: true, family: 'v4' }));
    await ipamOf('a').release('c2');
    await ipamOf('a').gc({ gonePods: [pod('db-0')] });
    cluster.clock.advance(61_000);
    expect((await ipamOf('a').gc({ gonePods: [pod('db-0')] })).released.map((c) => c.id)).toEqual(['sticky:default/db-0']);
    expect(ipamOf('a').pods().map((p) => p.name)).toEqual(['web']);
  });

  test('sticky addresses of pods that no longer exist are freed after the grace period', async () => {
    await ipamOf('a').allocate(req('db-0', 'c1', { sticky: true, family: 'v4' }));
    await ipamOf('a').release('c1');
    await ipamOf('a').gc({ pods: [pod('other')] });
    cluster.clock.advance(61_000);
    expect((await ipamOf('a').gc({ pods: [pod('db-0')] })).released).toEqual([]);
    await ipamOf('a').gc({ pods: [pod('other')] });
    cluster.clock.advance(61_000);
    expect((await ipamOf('a').gc({ pods: [pod('other')] })).released.map((c) => c.id)).toEqual(['sticky:default/db-0']);
  });
});

describe('shared store writes', () => {
  test('at most 0.1 shared writes per allocation on the fast path', async () => {
    const shared = new MemoryStore();
    cluster = new Cluster(shared, [{ name: 'big', cidrs: ['10.100.0.0/16'] }]);
    const node = await cluster.add('c');
    const before = shared.stats().writes;
    const n = 500;
    for (let i = 0; i < n; i++) await node.ipam.allocate(req(`p${i}`, `c${i}`, { family: 'v4', pool: 'big' }));
    const perAlloc = (shared.stats().writes - before) / n;
    expect(perAlloc).toBeLessThanOrEqual(0.1);
    const m = await node.ipam.metrics();
    expect(m.fastPath).toBe(n);
    expect(await node.ipam.metricsText()).toMatch(/plexus_ipam_allocations_total\{node="c",result="ok"\} 500/);
  });
});

describe('local store mode (single machine)', () => {
  test('openIpam with ipam.store local survives a restart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-local-'));
    try {
      const config = parseIpamConfig({ store: { type: 'local' }, pools: [DUAL], syncIntervalMs: 50 }).config;
      let ipam = await openIpam({ config, node: 'n1', stateDir: dir });
      const r = await ipam.allocate(req('p1', 'c1'));
      await ipam.close();
      ipam = await openIpam({ config, node: 'n1', stateDir: dir });
      expect(await ipam.allocate(req('p1', 'c1'))).toEqual(r);
      expect(await ipam.release('c1')).toHaveLength(2);
      await ipam.close({ leave: true });
      const s = await LocalStore.open(path.join(dir, 'ipam'));
      expect(await s.list('pod')).toEqual(new Map());
      await s.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

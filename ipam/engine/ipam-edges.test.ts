import { Cluster, pod } from '../../test/helpers/ipam/ipam-helpers';
import { Ipam, MemoryStore } from '../index';

const POOL = { name: 'blue', cidrs: ['10.0.0.0/24'], blockSize: 28 };
const req = (name: string, cid: string, extra: Record<string, unknown> = {}) =>
  ({ pod: pod(name), containerId: cid, ifName: 'net1', network: 'blue-net', pool: 'blue', ...extra });

let cluster: Cluster;
beforeEach(async () => {
  cluster = new Cluster(new MemoryStore(), [POOL], { cooldownMs: 1000 });
  await cluster.add('a');
  await cluster.add('b');
});
const ipamOf = (n: string): Ipam => cluster.node(n).ipam;

test('a pool with a nodeSelector is refused on nodes without the labels', async () => {
  const shared = new MemoryStore();
  const pools = [{ ...POOL, nodeSelector: { 'plexus.io/sriov': 'true' } }];
  const plain = await Ipam.open({ node: 'plain', shared, nodeStore: new MemoryStore(), pools, nodeLabels: {}, syncIntervalMs: 0 });
  const sriov = await Ipam.open({ node: 'sriov', shared, nodeStore: new MemoryStore(), pools, nodeLabels: { 'plexus.io/sriov': 'true' }, syncIntervalMs: 0 });
  await expect(plain.allocate(req('p', 'c1'))).rejects.toMatchObject({ kind: 'NetworkNotAllowed', message: expect.stringContaining('nodeSelector plexus.io/sriov=true') });
  expect((await sriov.allocate(req('p', 'c2'))).addresses).toHaveLength(1);
});

test('after the cooldown a released address is preferred again in FIFO order', async () => {
  const ip = async (name: string, cid: string) => (await ipamOf('a').allocate(req(name, cid))).addresses[0]?.ip;
  expect(await ip('p1', 'c1')).toBe('10.0.0.1');
  expect(await ip('p2', 'c2')).toBe('10.0.0.2');
  await ipamOf('a').release('c2');
  await ipamOf('a').release('c1');
  expect(await ip('p3', 'c3')).toBe('10.0.0.3');
  cluster.clock.advance(1000);
  // Cooled down: fresh addresses still come first within the block; then .2 (released first), then .1.
  const next: string[] = [];
  for (let i = 4; i < 20; i++) next.push((await ip(`p${i}`, `c${i}`)) as string);
  expect(next.indexOf('10.0.0.2')).toBeLessThan(next.indexOf('10.0.0.1'));
  expect(next.slice(0, 12)).toEqual(Array.from({ length: 12 }, (_, i) => `10.0.0.${i + 4}`));
});

test('GC and a retried ADD of the same attachment never both win', async () => {
  const first = await ipamOf('a').allocate(req('p1', 'c1'));
  await ipamOf('a').gc({ attachments: [] });
  cluster.clock.advance(60_000);
  let allowed = true;
  // The runtime retries ADD while GC decides; the recheck sees the ADD in flight and vetoes.
  const [gc, again] = await Promise.all([
    ipamOf('a').gc({ attachments: [], recheck: () => allowed }),
    (async () => {
      allowed = false;
      return ipamOf('a').allocate(req('p1', 'c1'));
    })(),
  ]);
  expect(gc.released).toEqual([]);
  expect(again).toEqual(first);
  expect(ipamOf('a').pods()[0]?.addresses.map((x) => x.ip)).toEqual(first.addresses.map((x) => x.ip));
});

test('a node whose lease lapsed stops using its reserve, re-registers, and keeps its pods\' addresses after a reclaim', async () => {
  const held = await ipamOf('a').allocate(req('p1', 'c1'));
  await ipamOf('a').sync();
  // a's registration runs out (a partition); b reclaims a's block and quarantines what a held.
  cluster.shared.expireNode?.('a');
  const report = await ipamOf('b').gc({});
  expect(report.reclaimed).toEqual(['blue:10.0.0.0-28']);
  // a comes back: its next allocation re-registers it, recovery takes its pod's address back from quarantine.
  const next = await ipamOf('a').allocate(req('p2', 'c2'));
  expect(next.addresses[0]?.ip).not.toBe(held.addresses[0]?.ip);
  const blocks = await ipamOf('b').blocks();
  const mine = blocks.flatMap((x) => x.foreign).find((f) => f.ip === held.addresses[0]?.ip);
  expect(mine?.entry).toMatchObject({ node: 'a', cid: 'c1', pod: 'default/p1' });
  expect(mine?.entry.lost).toBeUndefined();
  expect(await ipamOf('a').release('c1')).toHaveLength(1);
  // b never handed out a's address meanwhile, and can use it once released.
  for (let i = 0; i < 13; i++) await ipamOf('b').allocate(req(`q${i}`, `d${i}`));
  expect(ipamOf('b').pods().flatMap((p) => p.addresses.map((x) => x.ip))).not.toContain(next.addresses[0]?.ip);
});

test('operators see pools, blocks, pods and metrics', async () => {
  await ipamOf('a').allocate(req('p1', 'c1'));
  await ipamOf('b').allocate(req('p2', 'c2', { ip: ['10.0.0.200'] }));
  await ipamOf('a').sync();
  const [usage] = await ipamOf('a').pools();
  expect(usage).toMatchObject({ pool: 'blue', family: 'v4', capacity: '254', blocks: 2, ownedBlocks: 1, allocatedHere: 1 });
  expect(usage?.utilisation).toBeGreaterThan(0);
  const blocks = await ipamOf('a').blocks();
  expect(blocks.map((b) => [b.key, b.owner])).toEqual([['blue:10.0.0.0-28', 'a'], ['blue:10.0.0.192-28', 'b']]);
  expect(ipamOf('b').pods()).toEqual([{ namespace: 'default', name: 'p2', addresses: [expect.objectContaining({ ip: '10.0.0.200', via: 'own' })] }]);
  const m = await ipamOf('a').metrics();
  expect(m.allocations.ok).toBe(1);
  expect(m.latency.count).toBe(1);
  expect(await ipamOf('a').metricsText()).toMatch(/plexus_ipam_pool_utilisation\{node="a",pool="blue",family="v4"\} /);
});

test('without a recheck, GC still never undoes an ADD that returned the addresses after it looked', async () => {
  const first = await ipamOf('a').allocate(req('p1', 'c1'));
  await ipamOf('a').gc({ attachments: [] });
  cluster.clock.advance(60_000);
  const [gc, again] = await Promise.all([ipamOf('a').gc({ attachments: [] }), ipamOf('a').allocate(req('p1', 'c1'))]);
  expect(gc.released).toEqual([]);
  expect(again).toEqual(first);
  expect(ipamOf('a').pods()[0]?.addresses.map((x) => x.ip)).toEqual(first.addresses.map((x) => x.ip));
});

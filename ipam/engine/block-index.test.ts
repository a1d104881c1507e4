/**
 * The allocator looks at a few blocks per allocation however many the node owns (block-index.ts): counted
 * through the blocksExamined metric, never timed (STYLE 20).
 */
import { Cluster, pod } from '../../test/helpers/ipam/ipam-helpers';
import { LaneIndex } from '../model/block-index';
import { MemoryStore } from '../index';

describe('LaneIndex', () => {
  const all = (l: LaneIndex, now: number, every = false): string[] => [...l.candidates(now, every)];

  test('ready blocks come oldest first; a parked one wakes at its time, or when it changes', () => {
    const l = new LaneIndex();
    for (const k of ['a', 'b', 'c', 'd']) l.add(k);
    l.park('b', 200);
    l.park('c', 100);
    l.park('d', Infinity);
    expect(all(l, 50)).toEqual(['a']);
    expect(all(l, 100)).toEqual(['a', 'c']);
    expect(all(l, 150, true)).toEqual(['a', 'c', 'b']); // `all` wakes what still cools down
    l.add('d');
    expect(all(l, 150)).toEqual(['a', 'c', 'b', 'd']);
  });

  test('parking again keeps the earliest wake-up; a removed block does not come back', () => {
    const l = new LaneIndex();
    l.add('a');
    l.add('b');
    l.park('a', 300);
    l.park('a', 100);
    l.park('a', 200);
    l.park('b', 100);
    l.remove('b');
    expect(all(l, 99)).toEqual([]);
    expect(all(l, 100)).toEqual(['a']);
    l.park('a', 1000);
    expect(all(l, 300)).toEqual([]);
    expect(all(l, 1000)).toEqual(['a']);
  });

  test('a thousand parked blocks cost nothing until their time', () => {
    const l = new LaneIndex();
    for (let i = 0; i < 1000; i++) {
      l.add(`k${i}`);
      l.park(`k${i}`, 1000 + (i % 7));
    }
    l.add('live');
    const before = l.examined;
    for (let i = 0; i < 100; i++) expect(all(l, 999)).toEqual(['live']);
    expect(l.examined - before).toBe(100);
    expect(all(l, 1006)).toHaveLength(1001);
  });
});

describe('allocation with many owned blocks', () => {
  const POOL = { name: 'many', cidrs: ['10.64.0.0/18'], blockSize: 30 }; // 4,096 blocks of 4
  const req = (i: number) => ({ pod: pod(`p${i}`), containerId: `c${i}`, ifName: 'net1', network: 'many', pool: 'many' });

  test('a node with ~500 blocks, half their addresses cooling down, looks at a few blocks per allocation', async () => {
    const cluster = new Cluster(new MemoryStore(), [POOL], { cooldownMs: 30_000 });
    const { ipam } = await cluster.add('a');
    const holder = new Map<string, number>();
    const take = async (i: number): Promise<string> => {
      const ip = (await ipam.allocate(req(i))).addresses[0]?.ip as string;
      expect(holder.get(ip)).toBeUndefined();
      holder.set(ip, i);
      return ip;
    };
    const measure = async (from: number, n: number): Promise<{ perAllocation: number; ips: string[] }> => {
      const before = (await ipam.metrics()).blocksExamined;
      const ips: string[] = [];
      for (let i = from; i < from + n; i++) ips.push(await take(i));
      return { perAllocation: ((await ipam.metrics()).blocksExamined - before) / n, ips };
    };
    for (let i = 0; i < 2000; i++) await take(i);
    expect((await ipam.blocks()).filter((b) => b.owner === 'a').length).toBeGreaterThanOrEqual(500);
    // Every block gets reserve that may not be used for 30 s: the allocator used to scan them all each time.
    const released = new Set<string>();
    for (const [ip, i] of [...holder]) {
      if (i % 2 !== 0) continue;
      await ipam.release(`c${i}`);
      holder.delete(ip);
      released.add(ip);
    }
    // Each cooling block is looked at once, then parked until its addresses have cooled down.
    const cooling = await measure(10_000, 600);
    expect(cooling.perAllocation).toBeLessThan(4);
    expect(cooling.ips.filter((ip) => released.has(ip))).toEqual([]);
    expect((await measure(11_000, 600)).perAllocation).toBeLessThan(4);
    // Cooled down: the released addresses go out again, and still a few blocks are looked at per allocation.
    cluster.clock.advance(30_000);
    const cooled = await measure(12_000, 600);
    expect(cooled.perAllocation).toBeLessThan(4);
    expect(cooled.ips.filter((ip) => released.has(ip)).length).toBeGreaterThan(550);
    await ipam.close();
  });
});

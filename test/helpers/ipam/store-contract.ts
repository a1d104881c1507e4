/**
 * The one contract every IPAM store passes, run unchanged against MemoryStore, LocalStore (ipam/stores.test.ts)
 * and EtcdStore (test/integration/ipam-etcd.test.ts), STYLE 19. A store factory gives a fresh, empty store and a
 * second handle on the same data (another process's LocalStore, another etcd client; the same MemoryStore).
 */
import type { NodeRecord } from '../../../ipam/model/records';
import type { Store } from '../../../ipam/stores/store';

export interface StoreHarness {
  store: Store;
  /** Another handle on the same data, as a second process or node would have it. */
  peer(): Promise<Store>;
  cleanup(): Promise<void>;
}

export function describeStoreContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`IPAM store contract: ${name}`, () => {
    let h: StoreHarness;
    let s: Store;
    beforeEach(async () => {
      h = await make();
      s = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    test('an absent record reads as undefined and lists as nothing', async () => {
      expect(await s.get('block', 'p:10.0.0.0-26')).toBeUndefined();
      expect((await s.list('block')).size).toBe(0);
    });

    test('create with rev 0, then read it back with its revision', async () => {
      const res = await s.commit([{ op: 'put', kind: 'block', key: 'p:10.0.0.0-26', value: { a: 1 }, rev: 0 }]);
      expect(res.ok).toBe(true);
      expect(res.rev).toBeGreaterThan(0);
      expect(await s.get('block', 'p:10.0.0.0-26')).toEqual({ value: { a: 1 }, rev: res.rev });
    });

    test('create refuses an existing record and writes nothing', async () => {
      const first = await s.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: 1, rev: 0 }]);
      const again = await s.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: 2, rev: 0 }]);
      expect(again.ok).toBe(false);
      expect(await s.get('pod', 'ns/a')).toEqual({ value: 1, rev: first.rev });
    });

    test('compare-and-swap: a stale revision loses, the current one wins, revisions grow', async () => {
      const r1 = await s.commit([{ op: 'put', kind: 'slot', key: 'k', value: 'v1', rev: 0 }]);
      const r2 = await s.commit([{ op: 'put', kind: 'slot', key: 'k', value: 'v2', rev: r1.rev }]);
      expect(r2.ok).toBe(true);
      expect(r2.rev).toBeGreaterThan(r1.rev);
      expect((await s.commit([{ op: 'put', kind: 'slot', key: 'k', value: 'v3', rev: r1.rev }])).ok).toBe(false);
      expect((await s.get('slot', 'k'))?.value).toBe('v2');
    });

    test('a commit is all or nothing', async () => {
      const r = await s.commit([{ op: 'put', kind: 'block', key: 'b1', value: 1, rev: 0 }]);
      const res = await s.commit([
        { op: 'put', kind: 'block', key: 'b2', value: 2, rev: 0 },
        { op: 'put', kind: 'fixed', key: 'claim:ns/c', value: 3, rev: 0 },
        { op: 'put', kind: 'block', key: 'b1', value: 9, rev: r.rev + 1000 },
      ]);
      expect(res.ok).toBe(false);
      expect(await s.get('block', 'b2')).toBeUndefined();
      expect(await s.get('fixed', 'claim:ns/c')).toBeUndefined();
      expect((await s.get('block', 'b1'))?.value).toBe(1);
    });

    test('records written together share the new revision', async () => {
      const res = await s.commit([
        { op: 'put', kind: 'block', key: 'x', value: 1, rev: 0 },
        { op: 'put', kind: 'fixed', key: 'y', value: 2, rev: 0 },
      ]);
      expect((await s.get('block', 'x'))?.rev).toBe(res.rev);
      expect((await s.get('fixed', 'y'))?.rev).toBe(res.rev);
    });

    test('delete needs the current revision', async () => {
      const r = await s.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: 1, rev: 0 }]);
      expect((await s.commit([{ op: 'delete', kind: 'pod', key: 'ns/a', rev: r.rev + 1 }])).ok).toBe(false);
      expect((await s.commit([{ op: 'delete', kind: 'pod', key: 'ns/a', rev: r.rev }])).ok).toBe(true);
      expect(await s.get('pod', 'ns/a')).toBeUndefined();
      expect((await s.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: 2, rev: 0 }])).ok).toBe(true);
    });

    test('check ops compare without writing', async () => {
      const r = await s.commit([{ op: 'put', kind: 'block', key: 'b', value: 1, rev: 0 }]);
      expect((await s.commit([
        { op: 'check', kind: 'block', key: 'b', rev: r.rev },
        { op: 'check', kind: 'block', key: 'absent', rev: 0 },
        { op: 'put', kind: 'fixed', key: 'f', value: 1, rev: 0 },
      ])).ok).toBe(true);
      expect((await s.commit([
        { op: 'check', kind: 'block', key: 'b', rev: 0 },
        { op: 'put', kind: 'fixed', key: 'g', value: 1, rev: 0 },
      ])).ok).toBe(false);
      expect(await s.get('fixed', 'g')).toBeUndefined();
      expect((await s.get('block', 'b'))?.rev).toBe(r.rev);
    });

    test('list filters by kind and key prefix; keys may hold / and :', async () => {
      await s.commit([
        { op: 'put', kind: 'block', key: 'blue:10.0.0.0-26', value: 1, rev: 0 },
        { op: 'put', kind: 'block', key: 'blue:fd00::-122', value: 2, rev: 0 },
        { op: 'put', kind: 'block', key: 'bluer:10.1.0.0-26', value: 3, rev: 0 },
        { op: 'put', kind: 'pod', key: 'blue:ns/x', value: 4, rev: 0 },
      ]);
      const blue = await s.list<number>('block', 'blue:');
      expect([...blue.keys()].sort()).toEqual(['blue:10.0.0.0-26', 'blue:fd00::-122']);
      expect(blue.get('blue:fd00::-122')?.value).toBe(2);
      expect((await s.list('block')).size).toBe(3);
      expect([...(await s.list('pod')).keys()]).toEqual(['blue:ns/x']);
    });

    test('values are copies: changing what was read or written changes nothing stored', async () => {
      const value = { held: { '1': 'ns/a' } };
      const r = await s.commit([{ op: 'put', kind: 'block', key: 'b', value, rev: 0 }]);
      value.held['1'] = 'mutated';
      const got = await s.get<typeof value>('block', 'b');
      expect(got?.value.held['1']).toBe('ns/a');
      if (got) got.value.held['1'] = 'mutated too';
      expect((await s.get<typeof value>('block', 'b'))?.value).toEqual({ held: { '1': 'ns/a' } });
      expect((await s.get('block', 'b'))?.rev).toBe(r.rev);
    });

    test('one commit is one write, whatever it touches; refused commits count as conflicts', async () => {
      const before = s.stats();
      await s.commit([
        { op: 'put', kind: 'block', key: 'a', value: 1, rev: 0 },
        { op: 'put', kind: 'pod', key: 'b', value: 1, rev: 0 },
        { op: 'put', kind: 'slot', key: 'c', value: 1, rev: 0 },
      ]);
      await s.commit([{ op: 'put', kind: 'block', key: 'a', value: 1, rev: 0 }]);
      const after = s.stats();
      expect(after.writes - before.writes).toBe(1);
      expect(after.conflicts - before.conflicts).toBe(1);
    });

    test('a commit touching one record twice is refused outright', async () => {
      await expect(s.commit([
        { op: 'put', kind: 'block', key: 'a', value: 1, rev: 0 },
        { op: 'check', kind: 'block', key: 'a', rev: 0 },
      ])).rejects.toThrow(/twice/);
    });

    test('concurrent compare-and-swap increments lose no update', async () => {
      await s.commit([{ op: 'put', kind: 'meta', key: 'counter', value: 0, rev: 0 }]);
      const peer = await h.peer();
      const bump = async (store: Store): Promise<void> => {
        for (let round = 0; ; round++) {
          if (round > 10_000) throw new Error('compare-and-swap never succeeded in 10000 rounds');
          const cur = await store.get<number>('meta', 'counter');
          if (!cur) throw new Error('counter vanished');
          if ((await store.commit([{ op: 'put', kind: 'meta', key: 'counter', value: cur.value + 1, rev: cur.rev }])).ok) return;
        }
      };
      await Promise.all(Array.from({ length: 24 }, (_, i) => bump(i % 2 ? peer : s)));
      expect((await s.get<number>('meta', 'counter'))?.value).toBe(24);
    });

    test('a peer sees committed changes and conflicts with stale ones', async () => {
      const peer = await h.peer();
      const r = await s.commit([{ op: 'put', kind: 'block', key: 'b', value: 'mine', rev: 0 }]);
      expect(await peer.get('block', 'b')).toEqual({ value: 'mine', rev: r.rev });
      expect((await peer.commit([{ op: 'put', kind: 'block', key: 'b', value: 'theirs', rev: 0 }])).ok).toBe(false);
      const r2 = await peer.commit([{ op: 'put', kind: 'block', key: 'b', value: 'theirs', rev: r.rev }]);
      expect(r2.ok).toBe(true);
      expect((await s.commit([{ op: 'put', kind: 'block', key: 'b', value: 'late', rev: r.rev }])).ok).toBe(false);
      expect((await s.get('block', 'b'))?.value).toBe('theirs');
    });

    test('node registration: alive until revoked; a check for "dead" fails while it lives', async () => {
      const lease = await s.acquireNode('node-a', { token: 't1', ttlMs: 5000 });
      expect(lease.valid()).toBe(true);
      const rec = await s.get('node', 'node-a');
      expect(rec).toBeDefined();
      expect((await s.list('node')).has('node-a')).toBe(true);
      expect((await s.commit([{ op: 'check', kind: 'node', key: 'node-a', rev: 0 }, { op: 'put', kind: 'block', key: 'b', value: 1, rev: 0 }])).ok).toBe(false);
      await lease.revoke();
      expect(lease.valid()).toBe(false);
      expect(await s.get('node', 'node-a')).toBeUndefined();
      expect((await s.commit([{ op: 'check', kind: 'node', key: 'node-a', rev: 0 }, { op: 'put', kind: 'block', key: 'b', value: 1, rev: 0 }])).ok).toBe(true);
    });

    test('node registration: another token is refused while alive, the same token takes over', async () => {
      const a = await s.acquireNode('node-a', { token: 't1', ttlMs: 5000 });
      await expect(s.acquireNode('node-a', { token: 't2', ttlMs: 5000 })).rejects.toMatchObject({ kind: 'StoreConflict' });
      const again = await s.acquireNode('node-a', { token: 't1', ttlMs: 5000 });
      expect(again.valid()).toBe(true);
      expect(await s.get('node', 'node-a')).toBeDefined();
      await again.revoke();
      await a.revoke();
    });

    test('node registration publishes its info to every reader; taking it over replaces the info', async () => {
      const a = await s.acquireNode('node-a', { token: 't1', ttlMs: 5000, info: { underlay4: '192.168.200.1', vtepMac: '02:00:00:00:00:01' } });
      const peer = await h.peer();
      expect((await peer.get<NodeRecord>('node', 'node-a'))?.value.info).toEqual({ underlay4: '192.168.200.1', vtepMac: '02:00:00:00:00:01' });
      expect((await peer.list<NodeRecord>('node')).get('node-a')?.value.info).toEqual({ underlay4: '192.168.200.1', vtepMac: '02:00:00:00:00:01' });
      const again = await s.acquireNode('node-a', { token: 't1', ttlMs: 5000, info: { underlay4: '192.168.200.9' } });
      expect((await peer.get<NodeRecord>('node', 'node-a'))?.value.info).toEqual({ underlay4: '192.168.200.9' });
      const plain = await s.acquireNode('node-b', { token: 't2', ttlMs: 5000 });
      expect((await peer.get<NodeRecord>('node', 'node-b'))?.value.info).toBeUndefined();
      await plain.revoke();
      await again.revoke();
      await a.revoke();
    });

    test('node records cannot be written by commits', async () => {
      await expect(s.commit([{ op: 'put', kind: 'node', key: 'x', value: { token: 't' }, rev: 0 }])).rejects.toThrow(/acquireNode/);
    });
  });
}

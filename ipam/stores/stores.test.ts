import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStore } from './local-store';
import { MemoryStore } from './memory-store';
import { type StoreHarness, describeStoreContract } from '../../test/helpers/ipam/store-contract';

describeStoreContract('MemoryStore', async (): Promise<StoreHarness> => {
  const store = new MemoryStore();
  return { store, peer: async () => store, cleanup: () => store.close() };
});

describeStoreContract('MemoryStore with latency', async (): Promise<StoreHarness> => {
  const store = new MemoryStore({ delayMs: 1 });
  return { store, peer: async () => store, cleanup: () => store.close() };
});

async function localHarness(opts: { compactBytes?: number } = {}): Promise<StoreHarness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-store-'));
  const store = await LocalStore.open(dir, opts);
  const peers: LocalStore[] = [];
  return {
    store,
    // A second LocalStore on the same directory behaves like a second process: its own memory, the same disk.
    peer: async () => {
      const p = await LocalStore.open(dir, opts);
      peers.push(p);
      return p;
    },
    cleanup: async () => {
      for (const p of [store, ...peers]) await p.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeStoreContract('LocalStore', () => localHarness());
describeStoreContract('LocalStore compacting on every commit', () => localHarness({ compactBytes: 1 }));

describe('LocalStore on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-disk-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('reopening replays the journal', async () => {
    const a = await LocalStore.open(dir);
    const r = await a.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: { x: 1 }, rev: 0 }]);
    await a.commit([{ op: 'delete', kind: 'pod', key: 'ns/a', rev: r.rev }, { op: 'put', kind: 'pod', key: 'ns/b', value: 2, rev: 0 }]);
    await a.close();
    const b = await LocalStore.open(dir);
    expect(await b.get('pod', 'ns/a')).toBeUndefined();
    expect((await b.get('pod', 'ns/b'))?.value).toBe(2);
    await b.close();
  });

  test('a torn last line (writer killed mid-write) is ignored and cut off', async () => {
    const a = await LocalStore.open(dir);
    await a.commit([{ op: 'put', kind: 'pod', key: 'ns/a', value: 1, rev: 0 }]);
    await a.close();
    fs.appendFileSync(path.join(dir, 'journal.log'), '{"s":2,"w":[["pod","ns/b",');
    const b = await LocalStore.open(dir);
    expect(await b.get('pod', 'ns/b')).toBeUndefined();
    const r = await b.commit([{ op: 'put', kind: 'pod', key: 'ns/c', value: 3, rev: 0 }]);
    expect(r.ok).toBe(true);
    await b.close();
    const c = await LocalStore.open(dir);
    expect((await c.get('pod', 'ns/c'))?.value).toBe(3);
    expect((await c.get('pod', 'ns/a'))?.value).toBe(1);
    await c.close();
  });

  test('compaction keeps everything and journal lines already in the snapshot are skipped', async () => {
    const a = await LocalStore.open(dir, { compactBytes: 200 });
    let rev = 0;
    for (let i = 0; i < 50; i++) rev = (await a.commit([{ op: 'put', kind: 'meta', key: 'n', value: i, rev }])).rev;
    expect(fs.statSync(path.join(dir, 'journal.log')).size).toBeLessThan(400);
    await a.close();
    const b = await LocalStore.open(dir);
    expect(await b.get('meta', 'n')).toEqual({ value: 49, rev });
    await b.close();
  });

  test('a stale lock left by a dead process is broken', async () => {
    fs.writeFileSync(path.join(dir, 'lock'), '999999999 1\n');
    const a = await LocalStore.open(dir, { lockTimeoutMs: 2000 });
    expect((await a.commit([{ op: 'put', kind: 'meta', key: 'x', value: 1, rev: 0 }])).ok).toBe(true);
    await a.close();
  });

  test('a lock held by a live process times out with TryAgainLater naming the holder', async () => {
    const a = await LocalStore.open(dir, { lockTimeoutMs: 200 });
    fs.writeFileSync(path.join(dir, 'lock'), `${process.ppid} \n`);
    await expect(a.get('meta', 'x')).rejects.toMatchObject({ kind: 'TryAgainLater', message: expect.stringContaining(String(process.ppid)) });
    fs.rmSync(path.join(dir, 'lock'));
    await a.close();
  });
});

/**
 * The Kubernetes IPAM store (ipam/stores/kube-store.ts) against the test API server: the store contract, kubectl
 * reading what it wrote, a writer SIGKILLed at each point of a multi-record commit (before the commit point,
 * right after it, mid-apply, mid-lock), writers SIGKILLed at random while they contend, and three nodes'
 * IPAM allocating through the store while the server fails requests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { KubeApiServer } from '../../hack/kube-api';
import type { SeenRequest } from '../../hack/kube-api/server';
import { runAsync } from '../../hack/cluster';
import { KubeClient } from '../../meta-plugin/source/kube/client';
import { Ipam, LocalStore } from '../../ipam/index';
import { KubeStore, type KubeStoreOptions } from '../../ipam/stores/kube-store';
import type { BlockRecord } from '../../ipam/model/records';
import { describeStoreContract } from '../helpers/ipam/store-contract';
import type { Account } from '../helpers/ipam/kube-txn-child';
import { writeTsHook } from '../helpers/ts-child';
import { ROOT } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

const CRD = yaml.load(readFileSync(join(ROOT, 'crds/plexus-ipamrecord.yaml'), 'utf8')) as Parameters<KubeApiServer['apply']>[0];

interface Api {
  server: KubeApiServer;
  kubeconfig: string;
  dir: string;
  open(opts?: Partial<KubeStoreOptions>): Promise<KubeStore>;
  stop(): Promise<void>;
}

async function startApi(): Promise<Api> {
  const server = new KubeApiServer();
  await server.start();
  server.apply(CRD);
  const dir = mkdtempSync(join(tmpdir(), 'pxkstore-'));
  const kubeconfig = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const stores: KubeStore[] = [];
  return {
    server, kubeconfig, dir,
    open: async (opts = {}) => {
      const s = await KubeStore.open({ api: new KubeClient(kubeconfig, 5000), ...opts });
      stores.push(s);
      return s;
    },
    stop: async () => {
      for (const s of stores) await s.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeStoreContract('KubeStore', async () => {
  const api = await startApi();
  return { store: await api.open(), peer: () => api.open(), cleanup: () => api.stop() };
});

/** The IPAMRecords as the server holds them (an independent view: no KubeStore in between). */
function stored(api: Api): Array<{ name: string; spec: { kind: string; key: string; value?: unknown; txn?: string; absent?: boolean; rev?: string } }> {
  const res = api.server.resources.all().find((r) => r.plural === 'ipamrecords');
  if (!res) throw new Error('ipamrecords are not served');
  return api.server.store.list(res).map((o) => ({ name: o.metadata.name, spec: (o as unknown as { spec: never }).spec }));
}

const leftovers = (api: Api) => stored(api).filter((o) => o.spec.kind === 'txn' || o.spec.txn !== undefined || o.spec.absent);

describe('the Kubernetes store', () => {
  let api: Api;
  beforeEach(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.stop();
  });

  test('kubectl applies the CRD and lists blocks by kind and node; a single-record commit is one request', async () => {
    const kubectl = async (...args: string[]) => {
      const r = await runAsync('kubectl', ['--kubeconfig', api.kubeconfig, ...args], { timeoutMs: 30_000 });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    expect(await kubectl('apply', '-f', join(ROOT, 'crds/plexus-ipamrecord.yaml'))).toMatch(/ipamrecords.plexus.io (configured|unchanged)/);
    const s = await api.open();
    const block: BlockRecord = { pool: 'blue', owner: 'node-a', held: { '1': 'ns/a' }, foreign: {} };
    const created = await s.commit([{ op: 'put', kind: 'block', key: 'blue:10.0.0.0-26', value: block, rev: 0 }]);
    await s.commit([{ op: 'put', kind: 'block', key: 'blue:fd00::-122', value: { ...block, owner: 'node-b' }, rev: 0 }]);
    const before = api.server.requests.length;
    const grown = await s.commit([{ op: 'put', kind: 'block', key: 'blue:10.0.0.0-26', value: { ...block, held: { '1': 'ns/a', '2': '' } }, rev: created.rev }]);
    expect(grown.ok).toBe(true);
    expect(api.server.requests.slice(before).map((r) => r.method)).toEqual(['PUT']);
    const list = JSON.parse(await kubectl('get', 'ipamrecords', '-l', 'plexus.io/kind=block,plexus.io/node=node-a', '-o', 'json')) as { items: Array<{ spec: { key: string; value: BlockRecord } }> };
    expect(list.items.map((i) => [i.spec.key, i.spec.value.held])).toEqual([['blue:10.0.0.0-26', { '1': 'ns/a', '2': '' }]]);
    const table = await kubectl('get', 'ipamrecords', '-l', 'plexus.io/pool=blue', '-o', 'custom-columns=KIND:.spec.kind,KEY:.spec.key,NODE:.metadata.labels.plexus\\.io/node');
    expect(table.trim().split('\n').slice(1).map((l) => l.split(/\s+/))).toEqual([['block', 'blue:10.0.0.0-26', 'node-a'], ['block', 'blue:fd00::-122', 'node-b']]);
  });

  test('a cluster without the CRD, or a token RBAC holds back, is a config error naming the fix', async () => {
    const bare = new KubeApiServer();
    await bare.start();
    try {
      const kubeconfig = bare.writeKubeconfig(join(api.dir, 'bare.kubeconfig'));
      await expect(KubeStore.open({ api: new KubeClient(kubeconfig, 5000) })).rejects.toMatchObject({ kind: 'InvalidConfig', message: expect.stringContaining('crds/plexus-ipamrecord.yaml') });
    } finally {
      await bare.stop();
    }
    api.server.bindRole('limited', [{ apiGroups: ['plexus.io'], resources: ['ippools'], verbs: ['list'] }]);
    const limited = api.server.writeKubeconfig(join(api.dir, 'limited.kubeconfig'), 'limited');
    await expect(KubeStore.open({ api: new KubeClient(limited, 5000) })).rejects.toMatchObject({ kind: 'InvalidConfig', message: expect.stringContaining('deploy/rbac.yaml') });
  });

  test('a multi-record commit leaves no transaction or lock behind, and readers never wait for one', async () => {
    const s = await api.open();
    const r = await s.commit([
      { op: 'put', kind: 'meta', key: 'a', value: 1, rev: 0 },
      { op: 'put', kind: 'meta', key: 'b', value: 2, rev: 0 },
    ]);
    expect(r.ok).toBe(true);
    expect(leftovers(api)).toEqual([]);
    expect(stored(api).map((o) => o.spec.rev)).toEqual([String(r.rev), String(r.rev)]);
    // A pending transaction, left by hand: readers see the records as they were, at once.
    const peer = await api.open({ txnTimeoutMs: 60_000 });
    const hung = api.server.hangNext((q) => isCommitPoint(q), { served: false });
    void peer.commit([{ op: 'put', kind: 'meta', key: 'a', value: 10, rev: r.rev }, { op: 'put', kind: 'meta', key: 'b', value: 20, rev: r.rev }]).catch(() => undefined);
    await hung;
    const t0 = Date.now();
    expect((await s.get('meta', 'a'))?.value).toBe(1);
    expect([...(await s.list<number>('meta')).values()].map((v) => v.value)).toEqual([1, 2]);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  describe('a writer SIGKILLed inside a multi-record commit', () => {
    /** Runs the `once` child until `hang` holds its request, then SIGKILLs it. */
    async function killAt(match: (r: SeenRequest) => boolean, served: boolean): Promise<string> {
      const setup = await api.open();
      await setup.commit([{ op: 'put', kind: 'meta', key: 'a', value: 100, rev: 0 }]);
      await setup.commit([{ op: 'put', kind: 'meta', key: 'b', value: 0, rev: 0 }]);
      const hung = api.server.hangNext(match, { served });
      const child = startChild(['once', api.kubeconfig]);
      await Promise.race([hung, child.exited.then(() => Promise.reject(new Error(`child exited: ${child.output()}`)))]);
      await child.kill();
      expect(child.output()).toMatch(/^begin$/m);
      expect(child.output()).not.toMatch(/^done/m);
      return child.output();
    }

    test('before the commit point: nothing happened, and the next writer aborts the transaction once stale', async () => {
      await killAt(isCommitPoint, false);
      expect(leftovers(api).length).toBe(4); // the transaction, two locks and a placeholder
      const s = await api.open({ txnTimeoutMs: 1000 });
      const a = await s.get<number>('meta', 'a');
      expect(a?.value).toBe(100);
      expect((await s.get('meta', 'b'))?.value).toBe(0);
      expect(await s.get('fixed', 'new')).toBeUndefined();
      expect((await s.commit([{ op: 'put', kind: 'meta', key: 'a', value: 99, rev: a?.rev ?? -1 }])).ok).toBe(true);
      expect(leftovers(api)).toEqual([]);
      expect((await s.get('meta', 'b'))?.value).toBe(0);
      expect(await s.get('fixed', 'new')).toBeUndefined();
    });

    for (const [name, match] of [
      ['right after the commit point', isCommitPoint],
      ['mid-apply', (q: SeenRequest) => q.method === 'PUT' && spec(q)?.kind === 'meta' && spec(q)?.txn === undefined && spec(q)?.rev !== undefined],
    ] as const) {
      test(`${name}: readers see the whole commit at once, and the next writer finishes it`, async () => {
        await killAt(match, true);
        expect(leftovers(api).length).toBeGreaterThan(0);
        const s = await api.open({ txnTimeoutMs: 60_000 });
        const [a, b, made] = [await s.get<number>('meta', 'a'), await s.get<number>('meta', 'b'), await s.get('fixed', 'new')];
        expect([a?.value, b?.value, made?.value]).toEqual([60, 40, { moved: 40 }]);
        expect(new Set([a?.rev, b?.rev, made?.rev]).size).toBe(1);
        expect((await s.commit([{ op: 'put', kind: 'meta', key: 'b', value: 41, rev: b?.rev ?? -1 }])).ok).toBe(true);
        expect(leftovers(api)).toEqual([]);
        expect((await s.get('meta', 'a'))?.value).toBe(60);
      });
    }

    test('mid-lock: a partly locked transaction is rolled back, its placeholder removed', async () => {
      // Locks go in name order: fixed-new-..., then meta-a-..., meta-b-...: hang the third (b's).
      let locks = 0;
      await killAt((q) => q.method === 'PUT' && spec(q)?.txn !== undefined && ++locks === 2, false);
      const s = await api.open({ txnTimeoutMs: 1000 });
      expect((await s.list('fixed')).size).toBe(0);
      const b = await s.get<number>('meta', 'b');
      expect((await s.commit([{ op: 'put', kind: 'meta', key: 'b', value: 1, rev: b?.rev ?? -1 }])).ok).toBe(true);
      const a = await s.get<number>('meta', 'a');
      expect((await s.commit([{ op: 'put', kind: 'meta', key: 'a', value: 1, rev: a?.rev ?? -1 }])).ok).toBe(true);
      expect(a?.value).toBe(100);
      // The placeholder of `new` is only removed by someone who meets it, or a store opening later.
      await new Promise((r) => setTimeout(r, 1100));
      await api.open({ txnTimeoutMs: 1000 });
      expect(leftovers(api)).toEqual([]);
    });
  });

  test('contending writers SIGKILLed at random: no commit is ever seen half done, and nothing is left once settled', async () => {
    const N = 5;
    const s = await api.open({ txnTimeoutMs: 1000 });
    for (let i = 0; i < N; i++) await s.commit([{ op: 'put', kind: 'meta', key: `acct-${i}`, value: { balance: 100, flag: false }, rev: 0 }]);
    const children = [0, 1, 2].map(() => startChild(['loop', api.kubeconfig, String(N)]));
    let kills = 0;
    let checks = 0;
    let midCommit = 0; // kills that landed between a commit's start and its answer
    /** Every account's flag agrees with its flag record, and no money is made or lost, read as a snapshot. */
    const consistent = async (): Promise<void> => {
      for (;;) {
        const accounts = await s.list<Account>('meta', 'acct-');
        const flags = await s.list('fixed', 'flag:');
        const again = await s.list<Account>('meta', 'acct-');
        // Two lists are two reads: they agree when no commit (each touches accounts) came between them.
        if ([...again].some(([k, v]) => accounts.get(k)?.rev !== v.rev)) continue;
        expect([...accounts.values()].reduce((sum, a) => sum + a.value.balance, 0)).toBe(N * 100);
        for (const [key, a] of accounts) expect({ key, flag: flags.has(`flag:${key}`) }).toEqual({ key, flag: a.value.flag });
        checks++;
        return;
      }
    };
    const commits = () => children.map((c) => c.output()).join('').match(/^done \d+ true$/gm)?.length ?? 0;
    let total = 0;
    for (let round = 0; round < 12; round++) {
      // Let the children commit a few times (a new child needs a moment to start), then kill one mid-stride.
      const before = total + commits();
      const t0 = Date.now();
      while (total + commits() < before + 3) {
        if (Date.now() - t0 > 30_000) throw new Error(`no commits in 30 s: ${children.map((c) => c.output().slice(-500)).join('\n---\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      await consistent();
      const i = round % children.length;
      await children[i]!.kill();
      if (/^begin \d+\n?$/m.test(children[i]!.output().trimEnd().split('\n').at(-1) ?? '')) midCommit++;
      total += children[i]!.output().match(/^done \d+ true$/gm)?.length ?? 0;
      kills++;
      children[i] = startChild(['loop', api.kubeconfig, String(N)]);
    }
    for (const c of children) await c.kill();
    const done = total + commits();
    await consistent();
    // Settled: a store opening after the timeout finishes or aborts every abandoned transaction.
    await new Promise((r) => setTimeout(r, 1100));
    const late = await api.open({ txnTimeoutMs: 1000 });
    for (let i = 0; i < N; i++) {
      const a = await late.get<Account>('meta', `acct-${i}`);
      await late.commit([{ op: 'put', kind: 'meta', key: `acct-${i}`, value: a?.value, rev: a?.rev ?? -1 }]);
      const f = await late.get('fixed', `flag:acct-${i}`);
      if (f) await late.commit([{ op: 'put', kind: 'fixed', key: `flag:acct-${i}`, value: f.value, rev: f.rev }]);
    }
    await consistent();
    expect(leftovers(api)).toEqual([]);
    expect({ kills, checks }).toEqual({ kills: 12, checks: 14 });
    expect(midCommit).toBeGreaterThanOrEqual(4); // most kills land inside a commit (about 10 of 12 here)
    expect(done).toBeGreaterThanOrEqual(36); // the children really committed between the kills
  });

  test('three nodes allocate through the store while the server fails requests: every address unique, about one write per block', async () => {
    const pools = [{ name: 'k8s-pool', cidrs: ['10.40.0.0/20', 'fd40::/116'], blockSize: 26 }];
    const nodes = await Promise.all(['node-a', 'node-b', 'node-c'].map(async (node) => {
      const shared = await api.open({ txnTimeoutMs: 2000 });
      const disk = await LocalStore.open(mkdtempSync(join(api.dir, `${node}-`)));
      return { shared, ipam: await Ipam.open({ node, shared, nodeStore: disk, pools, syncIntervalMs: 200, leaseTtlMs: 10_000, reserveIdleMs: 1000, ownStores: true }) };
    }));
    const given = new Map<string, string[]>();
    let retries = 0;
    const allocate = async (n: number, i: number): Promise<void> => {
      const node = nodes[n]!;
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await node.ipam.allocate({ pod: { namespace: 'ns', name: `p${n}-${i}` }, containerId: `c${n}-${i}`, ifName: 'eth0', network: 'n', pool: 'k8s-pool' });
          given.set(`c${n}-${i}`, r.addresses.map((a) => a.ip));
          return;
        } catch (e) {
          if (attempt > 50 || (e as { kind?: string }).kind !== 'TryAgainLater') throw e;
          retries++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const perNode = 300;
    const chaos = (async () => {
      for (let k = 0; k < 20; k++) {
        await new Promise((r) => setTimeout(r, 30));
        api.server.failNext(k % 2 ? 500 : 503, { pathIncludes: 'ipamrecords', count: 2 });
      }
    })();
    await Promise.all(nodes.map((_, n) => (async () => {
      for (let i = 0; i < perNode; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => allocate(n, i + j)));
    })()));
    await chaos;
    const all = [...given.values()].flat();
    expect(given.size).toBe(3 * perNode);
    expect(new Set(all).size).toBe(all.length);
    // Witness: the writes the API server answered, not the stores' own counters.
    const writes = api.server.requests.filter((q) => q.method !== 'GET' && q.path.includes('/ipamrecords') && q.status < 300).length;
    const blocks = stored(api).filter((o) => o.spec.kind === 'block');
    // 900 pods x 2 families in /26 (v4) and /122 (v6) blocks: at least 30 blocks; the writes are per block, not per pod.
    expect(blocks.length).toBeGreaterThanOrEqual(30);
    expect(writes / (3 * perNode)).toBeLessThan(0.25); // 0.15 here: block claims and reserve growth, never one per address
    expect(retries).toBeGreaterThan(0); // the faults really hit allocations
    for (const n of nodes) await n.ipam.close();
  });

  test('a dead node\'s registration expires; its blocks are reclaimed and its addresses freed after the grace period', async () => {
    let now = Date.now();
    const clock = (): number => now;
    const pools = [{ name: 'k8s-pool', cidrs: ['10.41.0.0/22'], blockSize: 26 }];
    const open = async (node: string, leaseTtlMs: number) => {
      const shared = await api.open({ clock });
      const disk = await LocalStore.open(mkdtempSync(join(api.dir, `${node}-`)));
      return Ipam.open({ node, shared, nodeStore: disk, pools, syncIntervalMs: 200, leaseTtlMs, reserveIdleMs: 1000, clock, ownStores: true });
    };
    const dead = await open('short-lived', 2000);
    const alive = await open('survivor', 30_000);
    const ips: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await dead.allocate({ pod: { namespace: 'ns', name: `d${i}` }, containerId: `d${i}`, ifName: 'eth0', network: 'n', pool: 'k8s-pool', claim: i === 0 ? 'vm0' : undefined });
      ips.push(...r.addresses.map((a) => a.ip));
    }
    now += 2000; // idle: its unused reserve goes back, so what gets quarantined is exactly what pods held
    await dead.sync();
    await dead.close(); // dies without leaving: its registration stops being renewed
    const witness = await api.open({ clock });
    expect(await witness.get('node', 'short-lived')).toBeDefined();
    now += 2000 + 2000 + 1; // its TTL, then the clock skew allowed
    expect(await witness.get('node', 'short-lived')).toBeUndefined();
    const report = await alive.gc({ pods: [] });
    expect(report.reclaimed.length).toBeGreaterThan(0);
    expect(stored(api).some((o) => o.spec.kind === 'node' && o.spec.key === 'short-lived')).toBe(false); // reclaiming removed the registration
    const quarantined = (await alive.blocks()).flatMap((b) => b.foreign.filter((f) => f.entry.lost !== undefined).map((f) => f.ip));
    expect(quarantined.sort()).toEqual(ips.slice(1).sort()); // the claim's address (d0) is not the node's
    now += 600_001;
    const later = await alive.gc({ pods: [] });
    expect(later.released.filter((c) => c.kind === 'quarantined').flatMap((c) => c.addresses).sort()).toEqual(ips.slice(1).sort());
    expect((await alive.releaseClaim({ namespace: 'ns', name: 'vm0' })).sort()).toEqual(ips.slice(0, 1).sort());
    expect(leftovers(api)).toEqual([]);
    await alive.close({ leave: true });
  });
});

/** The write that commits a transaction. */
function isCommitPoint(q: SeenRequest): boolean {
  const s = spec(q);
  return q.method === 'PUT' && s?.kind === 'txn' && (s.value as { state?: string } | undefined)?.state === 'committed';
}

function spec(q: SeenRequest): { kind?: string; txn?: string; rev?: string; value?: unknown } | undefined {
  return (q.body as { spec?: { kind?: string; txn?: string; rev?: string; value?: unknown } } | undefined)?.spec;
}

let hook: string | undefined;
afterAll(() => {
  if (hook) rmSync(join(hook, '..'), { recursive: true, force: true });
});

function startChild(args: string[]): { exited: Promise<void>; output(): string; kill(): Promise<void> } {
  hook ??= writeTsHook(mkdtempSync(join(tmpdir(), 'pxkstore-hook-')));
  const proc: ChildProcess = spawn(process.execPath, ['-r', hook, join(ROOT, 'test/helpers/ipam/kube-txn-child.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    exited,
    output: () => out,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(proc.pid, 'SIGKILL');
      await exited;
      if (/^error /m.test(out)) throw new Error(`child failed: ${out.slice(-2000)}`);
    },
  };
}

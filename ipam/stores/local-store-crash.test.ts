/**
 * SIGKILL a process in the middle of allocations on the local store, then open the store from another
 * process: it is consistent, retried allocations get the addresses callers were given, and once everything
 * is released nothing is left held.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ipam, openIpam, parseIpamConfig } from '../index';
import { LocalStore } from './local-store';
import type { BlockRecord } from '../model/records';
import { writeTsHook } from '../../test/helpers/ts-child';

const POOLS = [{ name: 'p', cidrs: ['10.20.0.0/22', 'fd20::/118'], blockSize: 28 }];

interface ChildLog {
  done: Map<number, string>;
  started: Set<number>;
  releaseStarted: Set<number>;
  released: Set<number>;
}

function parseLog(text: string): ChildLog {
  const log: ChildLog = { done: new Map(), started: new Set(), releaseStarted: new Set(), released: new Set() };
  for (const line of text.split('\n')) {
    const [what, n, ips] = line.split(' ');
    const i = Number(n);
    if (what === 'start') log.started.add(i);
    else if (what === 'done') log.done.set(i, ips as string);
    else if (what === 'release') log.releaseStarted.add(i);
    else if (what === 'released') log.released.add(i);
    else if (what === 'error') throw new Error(`child failed: ${line}`);
  }
  return log;
}

async function runChildUntil(
  hook: string, dir: string, doneLines: number, probe: () => Promise<void>, child = { script: 'crash-child.ts', args: ['node-1'] },
): Promise<string> {
  const proc: ChildProcess = spawn(process.execPath, ['-r', hook, path.join(__dirname, '../../test/helpers/ipam', child.script), dir, ...child.args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
  });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^done /gm)?.length ?? 0) >= doneLines) resolve();
      });
      proc.on('exit', (code) => reject(new Error(`child exited early (${code}): ${err}${out.slice(-500)}`)));
    });
    await probe();
  } finally {
    if (proc.pid !== undefined && proc.exitCode === null) process.kill(proc.pid, 'SIGKILL');
    await exited;
  }
  return out;
}

describe('local store survives SIGKILL mid-allocation', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-crash-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test.each([40, 150, 400])('killed after %i allocations', async (n) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'run-'));
    const hook = writeTsHook(tmp);
    let clock = Date.now();
    const config = parseIpamConfig({ store: { type: 'local' }, pools: POOLS, syncIntervalMs: 0, reserveIdleMs: 1000, gcGraceMs: 1000 }).config;
    const text = await runChildUntil(hook, dir, n, async () => {
      // While the child lives, nobody else may serve its node from the same store.
      await expect(openIpam({ config, node: 'node-1', stateDir: dir })).rejects.toMatchObject({ kind: 'StoreConflict' });
    });
    const log = parseLog(text);
    expect(log.done.size).toBeGreaterThanOrEqual(n);

    const ipam = await openIpam({ config, node: 'node-1', stateDir: dir, clock: () => clock });
    expect(ipam.warnings).toEqual([]);
    // 1. Every allocation a caller was told about and did not release comes back unchanged on retry.
    for (const [i, ips] of log.done) {
      if (log.releaseStarted.has(i)) continue;
      const r = await ipam.allocate({ pod: { namespace: 'ns', name: `p${i}` }, containerId: `c${i}`, ifName: 'eth0', network: 'n', pool: 'p' });
      expect(r.addresses.map((a) => a.ip).join(',')).toBe(ips);
    }
    // 2. Allocations cut short are retried, releases cut short are repeated (the runtime does both).
    for (const i of log.started) {
      if (log.done.has(i)) continue;
      await ipam.allocate({ pod: { namespace: 'ns', name: `p${i}` }, containerId: `c${i}`, ifName: 'eth0', network: 'n', pool: 'p' });
    }
    for (const i of log.releaseStarted) await ipam.release(`c${i}`);
    const held = ipam.pods().flatMap((p) => p.addresses.map((a) => a.ip));
    expect(new Set(held).size).toBe(held.length);
    const expected = [...log.started].filter((i) => !log.releaseStarted.has(i)).length * 2;
    expect(held).toHaveLength(expected);
    // 3. Release everything: nothing stays held anywhere.
    for (const i of log.started) await ipam.release(`c${i}`);
    clock += 5000;
    await ipam.sync();
    await ipam.close();
    const store = await LocalStore.open(path.join(dir, 'ipam'));
    expect((await store.list('pod')).size).toBe(0);
    for (const [key, b] of await store.list<BlockRecord>('block')) {
      expect({ key, held: b.value.held, foreign: b.value.foreign }).toEqual({ key, held: {}, foreign: {} });
    }
    await store.close();
  });
});

/**
 * D-6: the book's lines are written before an ADD is answered but synced lazily. A crash of the process loses
 * none of them; a crash of the machine may lose those after the last fdatasync, and with them only pods that
 * died in the same crash. Either way no address is handed out twice.
 */
describe('lazily synced book (D-6)', () => {
  const POOLS = [{ name: 'p', cidrs: ['10.20.0.0/22'], blockSize: 28 }]; // as lazy-child.ts
  const COUNT = 40; // claims (synced) at allocations 0, 15 and 31: the book lines of 31..39 are not synced
  let tmp: string;
  let killed: { dir: string; log: string };
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-lazy-'));
    const dir = path.join(tmp, 'killed');
    fs.mkdirSync(dir);
    const log = await runChildUntil(writeTsHook(tmp), dir, COUNT, async () => undefined,
      { script: 'lazy-child.ts', args: ['node-1', 'boot-1', String(COUNT)] });
    killed = { dir, log };
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const answers = (): Map<number, string> => parseLog(killed.log).done;
  const lastSynced = (): number => {
    const sizes = [...killed.log.matchAll(/^synced (\d+)$/gm)].map((m) => Number(m[1]));
    if (sizes.length === 0) throw new Error('the child logged no fdatasync');
    return Math.max(...sizes);
  };
  /** A copy of the killed child's store, as the disk would have it. */
  function copyOf(name: string, cut?: number): string {
    const dir = path.join(tmp, name);
    fs.cpSync(killed.dir, dir, { recursive: true });
    if (cut !== undefined) fs.truncateSync(path.join(dir, 'ipam', 'journal.log'), cut);
    return dir;
  }
  const open = async (dir: string, bootId: string) => {
    const store = await LocalStore.open(path.join(dir, 'ipam'));
    return Ipam.open({ node: 'node-1', shared: store, pools: POOLS, bootId, syncIntervalMs: 0, ownStores: true });
  };
  const alloc = (ipam: Ipam, i: number) =>
    ipam.allocate({ pod: { namespace: 'ns', name: `p${i}` }, containerId: `c${i}`, ifName: 'eth0', network: 'n', pool: 'p' });

  test('the child answered allocations whose lines no fdatasync covered', () => {
    expect(answers().size).toBe(COUNT);
    expect(fs.statSync(path.join(killed.dir, 'ipam', 'journal.log')).size).toBeGreaterThan(lastSynced());
  });

  test('SIGKILL of the process loses nothing: every answer comes back on retry', async () => {
    const ipam = await open(copyOf('process-crash'), 'boot-1');
    expect(ipam.warnings).toEqual([]);
    expect(ipam.pods()).toHaveLength(COUNT);
    for (const [i, ip] of answers()) expect((await alloc(ipam, i)).addresses.map((a) => a.ip).join(',')).toBe(ip);
    await ipam.close();
  });

  test('a power cut loses the unsynced book lines, never the reserve they came from, and no address goes out twice', async () => {
    const dir = copyOf('power-cut', lastSynced());
    const store = await LocalStore.open(path.join(dir, 'ipam'));
    const blocks = await store.list<BlockRecord>('block');
    await store.close();
    const ipam = await open(dir, 'boot-2');
    expect(ipam.warnings).toEqual([]);
    const kept = new Map(ipam.pods().map((p) => [Number(p.name.slice(1)), p.addresses[0]?.ip]));
    const lost = [...answers()].filter(([i]) => !kept.has(i));
    expect(lost.map(([i]) => i)).toEqual([31, 32, 33, 34, 35, 36, 37, 38, 39]);
    for (const [i, ip] of kept) expect(ip).toBe(answers().get(i));
    // 1. Every lost answer was in this node's synced reserve: no other node could have taken it.
    for (const [, ip] of lost) {
      const [key, blk] = [...blocks].find(([k]) => k === `p:${ip.replace(/\.\d+$/, '')}.${Number(ip.split('.')[3]) & ~15}-28`) ?? [];
      expect({ ip, key, owner: blk?.value.owner, held: blk?.value.held[Number(ip.split('.')[3]) & 15] }).toEqual({ ip, key, owner: 'node-1', held: '' });
    }
    // 2. The machine restarted, so those pods are gone; their addresses wait at the back of the cooldown queue.
    const next: string[] = [];
    for (let i = 100; i < 130; i++) next.push((await alloc(ipam, i)).addresses[0]?.ip as string);
    const taken = new Set([...kept.values()]);
    expect(next.filter((ip) => taken.has(ip) || lost.some(([, l]) => l === ip))).toEqual([]);
    expect(new Set(next).size).toBe(next.length);
    await ipam.close();
  });
});

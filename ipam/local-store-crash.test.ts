/**
 * SIGKILL a process in the middle of allocations on the local store, then open the store from another
 * process: it is consistent, retried allocations get the addresses callers were given, and once everything
 * is released nothing is left held.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openIpam } from './index';
import { LocalStore } from './local-store';
import type { BlockRecord } from './records';

const POOLS = [{ name: 'p', cidrs: ['10.20.0.0/22', 'fd20::/118'], blockSize: 28 }];

/** A require hook so a plain `node` child can run our TypeScript (what jest does for us in-process). */
function writeHook(dir: string): string {
  const hook = path.join(dir, 'ts-hook.js');
  fs.writeFileSync(hook, `
const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
const fs = require('fs');
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename, jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
`);
  return hook;
}

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

async function runChildUntil(hook: string, dir: string, doneLines: number, probe: () => Promise<void>): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, ['-r', hook, path.join(__dirname, '../test/helpers/ipam/crash-child.ts'), dir, 'node-1'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_EXTRA_CA_CERTS: '' },
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^done /gm)?.length ?? 0) >= doneLines) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${err}${out.slice(-500)}`)));
    });
    await probe();
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
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
    const hook = writeHook(tmp);
    let clock = Date.now();
    const config = { store: { type: 'local' }, pools: POOLS, syncIntervalMs: 0, reserveIdleMs: 1000, gcGraceMs: 1000 };
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

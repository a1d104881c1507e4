/**
 * Child process for local-store-crash.test.ts (lazily synced book, D-6): serves node `argv[3]` from the
 * local store under `argv[2]` with boot id `argv[4]`, makes `argv[5]` allocations one at a time, then waits
 * to be killed. Nothing syncs the book's lines on a timer (lazySyncMs is a minute), so only the shared
 * writes (block claims) reach the disk. Every fdatasync that succeeds is logged as `synced BYTES` (the
 * journal's size when it was called: what it covers), so the parent can cut the journal to what a power cut
 * would surely have left. Answers are logged as `done I IP` after they returned.
 */
// The module object itself, patched before the store module is loaded: an `import * as fs` makes a copy of
// its functions (and caches it), which would not see the patch.
const fs = require('node:fs') as { -readonly [K in keyof typeof import('node:fs')]: (typeof import('node:fs'))[K] };

const say = (line: string): void => void fs.writeSync(1, `${line}\n`);

const fdatasync = fs.fdatasync;
fs.fdatasync = Object.assign((fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => {
  const size = fs.fstatSync(fd).size;
  fdatasync(fd, (err) => {
    if (!err) say(`synced ${size}`);
    cb(err);
  });
}, { __promisify__: fdatasync.__promisify__ });

const [dir, node, bootId, count] = process.argv.slice(2) as [string, string, string, string];

/** Blocks of 16 (15 in the first), each claimed whole: a synced write every 15-16 allocations and none between. */
const POOLS = [{ name: 'p', cidrs: ['10.20.0.0/22'], blockSize: 28 }];

async function main(): Promise<void> {
  const { LocalStore } = require('../../../ipam/stores/local-store') as typeof import('../../../ipam/stores/local-store');
  const { Ipam } = require('../../../ipam/engine/ipam') as typeof import('../../../ipam/engine/ipam');
  const store = await LocalStore.open(`${dir}/ipam`, { lazySyncMs: 60_000 });
  const ipam = await Ipam.open({ node, shared: store, pools: POOLS, bootId, syncIntervalMs: 0 });
  say('ready');
  for (let i = 0; i < Number(count); i++) {
    const r = await ipam.allocate({ pod: { namespace: 'ns', name: `p${i}` }, containerId: `c${i}`, ifName: 'eth0', network: 'n', pool: 'p' });
    say(`done ${i} ${r.addresses.map((a) => a.ip).join(',')}`);
  }
  say('idle');
  setInterval(() => undefined, 1000);
}

main().catch((e) => {
  say(`error ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});

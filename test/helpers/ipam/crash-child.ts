/**
 * Child process for local-store-crash.test.ts: serves node `argv[3]` from the local store under `argv[2]` and
 * allocates (and now and then releases) in a loop, 8 requests in flight, until it is killed. Every step is
 * logged to stdout with a synchronous write *before* it starts and *after* it returned, so the parent knows
 * exactly what callers were told when the SIGKILL landed.
 */
import * as fs from 'node:fs';
import { openIpam } from '../../../ipam/index';

const [dir, node] = process.argv.slice(2) as [string, string];
const say = (line: string): void => void fs.writeSync(1, `${line}\n`);

async function main(): Promise<void> {
  const ipam = await openIpam({
    config: { store: { type: 'local' }, pools: [{ name: 'p', cidrs: ['10.20.0.0/22', 'fd20::/118'], blockSize: 28 }], syncIntervalMs: 20 },
    node, stateDir: dir,
  });
  say('ready');
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      say(`start ${i}`);
      const r = await ipam.allocate({ pod: { namespace: 'ns', name: `p${i}` }, containerId: `c${i}`, ifName: 'eth0', network: 'n', pool: 'p' });
      say(`done ${i} ${r.addresses.map((a) => a.ip).join(',')}`);
      if (i % 3 === 2) {
        const j = i - 2;
        say(`release ${j}`);
        await ipam.release(`c${j}`);
        say(`released ${j}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

main().catch((e) => {
  say(`error ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});

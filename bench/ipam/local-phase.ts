/**
 * (a) The in-daemon path on the local store: the `Ipam` API called as the daemon calls it (one LocalStore
 * under stateDir, shared and node store at once), one address per allocation, at concurrency 1, 16 and 64.
 * Each level starts from a fresh store, so every level measures the same range of node state (a node with
 * up to `total` pods: far more than any real node runs).
 */
import { join } from 'node:path';
import { LocalStore } from '../../ipam/stores/local-store';
import { Ipam } from '../../ipam/engine/ipam';
import { type ThroughputRow, drive, say, throughputRow } from './drive';

export const BENCH_POOL = { name: 'bench', cidrs: ['10.0.0.0/12'] };

export async function runLocalPhase(dir: string, opts: { total: number; deadlineMs: number; concurrencies: number[] }): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const c of opts.concurrencies) {
    const store = await LocalStore.open(join(dir, `c${c}`));
    const ipam = await Ipam.open({ node: 'bench-local', shared: store, pools: [BENCH_POOL], ownStores: true });
    try {
      const alloc = (tag: string) => async (i: number): Promise<void> => {
        const cid = `${tag}-${i}`;
        await ipam.allocate({ pod: { namespace: 'bench', name: cid }, containerId: cid, ifName: 'eth0', network: 'bench', pool: 'bench' });
      };
      await drive({ total: 200, concurrency: c, deadlineMs: 5000, op: alloc('warm') });
      const before = store.stats();
      const r = await drive({ total: opts.total, concurrency: c, deadlineMs: opts.deadlineMs, op: alloc('local') });
      const after = store.stats();
      const row = throughputRow('local', 1, c, r, after.writes - before.writes);
      if (r.done) row.syncsPerAllocation = ((after.syncs ?? 0) - (before.syncs ?? 0)) / r.done;
      rows.push(row);
      say(`local c=${c}: ${row.allocations} allocations, ${row.perSecond.toFixed(0)}/s, p99 ${row.p99Ms.toFixed(2)} ms`);
    } finally {
      await ipam.close();
    }
  }
  return rows;
}

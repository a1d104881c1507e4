/** A closed-loop load generator shared by the bench/ipam phases: `concurrency` callers, each issuing its next request when the last one returns. */
import type { Ipam } from '../../ipam/engine/ipam';
import { summarize } from '../lib/stats';

export interface DriveResult {
  done: number;
  failed: number;
  elapsedMs: number;
  latenciesMs: number[];
  firstError?: string;
}

/** Run `op(0..total-1)` with `concurrency` callers until all are done or `deadlineMs` has passed. */
export async function drive(opts: { total: number; concurrency: number; deadlineMs: number; op: (i: number) => Promise<void> }): Promise<DriveResult> {
  const { total, concurrency, op } = opts;
  const t0 = performance.now();
  const stopAt = t0 + opts.deadlineMs;
  const latenciesMs: number[] = [];
  const out: DriveResult = { done: 0, failed: 0, elapsedMs: 0, latenciesMs };
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next < total && performance.now() < stopAt) {
      const i = next++;
      const s = performance.now();
      try {
        await op(i);
        latenciesMs.push(performance.now() - s);
      } catch (e) {
        out.failed++;
        out.firstError ??= e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  out.done = latenciesMs.length;
  out.elapsedMs = performance.now() - t0;
  return out;
}

/** One row of the in-daemon tables: throughput and latency of a drive() run. */
export interface ThroughputRow {
  store: 'local' | 'etcd' | 'kubernetes';
  nodes: number;
  concurrency: number;
  allocations: number;
  failed: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Shared-store writes per allocation (etcd transactions; API requests that changed an object; the local store's journal commits). */
  writesPerAllocation: number;
  /** For the local store: fdatasync calls per allocation (lazily synced book lines share them, D-6). */
  syncsPerAllocation?: number;
  firstError?: string;
}

export function throughputRow(store: ThroughputRow['store'], nodes: number, concurrency: number, r: DriveResult, writes: number): ThroughputRow {
  const s = summarize(r.latenciesMs.length ? r.latenciesMs : [NaN]);
  const row: ThroughputRow = {
    store, nodes, concurrency, allocations: r.done, failed: r.failed, seconds: r.elapsedMs / 1000,
    perSecond: r.done / (r.elapsedMs / 1000), p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max,
    writesPerAllocation: r.done ? writes / r.done : NaN,
  };
  if (r.firstError) row.firstError = r.firstError;
  return row;
}

export const say = (line: string): void => void process.stderr.write(`ipam: ${line}\n`);

/**
 * The shared-store phases' measurement: allocations spread round-robin over `nodes` (one address each), a
 * warm-up in which every node claims its first block, then a row per concurrency with the shared-store writes
 * (`writes()`, counted by the caller's witness) per allocation.
 */
export async function rowsAcrossNodes(
  store: ThroughputRow['store'], nodes: readonly Ipam[], writes: () => number, opts: { total: number; deadlineMs: number; concurrencies: number[] }, unit: string,
): Promise<ThroughputRow[]> {
  const alloc = (tag: string) => async (i: number): Promise<void> => {
    const cid = `${tag}-${i}`;
    await (nodes[i % nodes.length] as Ipam).allocate({ pod: { namespace: 'bench', name: cid }, containerId: cid, ifName: 'eth0', network: 'bench', pool: 'bench' });
  };
  await drive({ total: 300, concurrency: 6, deadlineMs: 20000, op: alloc('warm') });
  const rows: ThroughputRow[] = [];
  for (const c of opts.concurrencies) {
    const before = writes();
    const r = await drive({ total: opts.total, concurrency: c, deadlineMs: opts.deadlineMs, op: alloc(`${store}-c${c}`) });
    const row = throughputRow(store, nodes.length, c, r, writes() - before);
    rows.push(row);
    say(`${store} c=${c}: ${row.allocations} allocations, ${row.perSecond.toFixed(0)}/s, p99 ${row.p99Ms.toFixed(2)} ms, ${row.writesPerAllocation.toFixed(3)} ${unit}/allocation`);
  }
  return rows;
}

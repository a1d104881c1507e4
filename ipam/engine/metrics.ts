/**
 * Counters for operators and benchmarks: allocations, releases, how many allocations touched the shared
 * store, an allocation latency histogram (cumulative buckets, Prometheus style), pool utilisation.
 * Plain numbers here; the daemon decides how to expose them (`toPrometheus` is a ready-made text form).
 */
import type { Family } from '../model/address';

/** Upper bounds in milliseconds. */
export const LATENCY_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000] as const;

export interface PoolUsage {
  pool: string;
  family: Family;
  /** Allocatable addresses (decimal string: IPv6 pools overflow a double). */
  capacity: string;
  /** Blocks that exist in the shared store, and how many of them this node owns. */
  blocks: number;
  ownedBlocks: number;
  /** Addresses held in the shared view (owner's held incl. reserve, plus foreign entries). */
  heldShared: number;
  /** Addresses this node has handed out from this pool. */
  allocatedHere: number;
  /** heldShared / capacity, 0..1. */
  utilisation: number;
}

export interface MetricsSnapshot {
  allocations: { ok: number; failed: number; retried: number };
  releases: number;
  /** Addresses handed out from a reserve, without a shared-store write. */
  fastPath: number;
  latency: { bucketsMs: readonly number[]; counts: number[]; count: number; sumMs: number };
  /** Successful writes to the shared store (etcd transactions) and to the node store. */
  sharedWrites: number;
  nodeWrites: number;
  /** Owned blocks the allocator looked into for reserve or room: a few per allocation, whatever the node owns. */
  blocksExamined: number;
  pools: PoolUsage[];
}

export class IpamMetrics {
  readonly allocations = { ok: 0, failed: 0, retried: 0 };
  releases = 0;
  fastPath = 0;
  private readonly counts: number[] = LATENCY_BUCKETS_MS.map(() => 0);
  private count = 0;
  private sumMs = 0;

  observe(ms: number): void {
    this.count++;
    this.sumMs += ms;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= (LATENCY_BUCKETS_MS[i] as number)) (this.counts[i] as number)++;
  }

  snapshot(extra: Pick<MetricsSnapshot, 'sharedWrites' | 'nodeWrites' | 'blocksExamined' | 'pools'>): MetricsSnapshot {
    return {
      allocations: { ...this.allocations },
      releases: this.releases,
      fastPath: this.fastPath,
      latency: { bucketsMs: LATENCY_BUCKETS_MS, counts: [...this.counts], count: this.count, sumMs: this.sumMs },
      ...extra,
    };
  }
}

/** Prometheus text exposition of a snapshot. */
export function toPrometheus(s: MetricsSnapshot, node: string): string {
  const n = `node="${node}"`;
  const lines = [
    '# TYPE plexus_ipam_allocations_total counter',
    `plexus_ipam_allocations_total{${n},result="ok"} ${s.allocations.ok}`,
    `plexus_ipam_allocations_total{${n},result="failed"} ${s.allocations.failed}`,
    `plexus_ipam_allocations_total{${n},result="retried"} ${s.allocations.retried}`,
    '# TYPE plexus_ipam_releases_total counter',
    `plexus_ipam_releases_total{${n}} ${s.releases}`,
    '# TYPE plexus_ipam_fast_path_total counter',
    `plexus_ipam_fast_path_total{${n}} ${s.fastPath}`,
    '# TYPE plexus_ipam_store_writes_total counter',
    `plexus_ipam_store_writes_total{${n},store="shared"} ${s.sharedWrites}`,
    `plexus_ipam_store_writes_total{${n},store="node"} ${s.nodeWrites}`,
    '# TYPE plexus_ipam_blocks_examined_total counter',
    `plexus_ipam_blocks_examined_total{${n}} ${s.blocksExamined}`,
    '# TYPE plexus_ipam_allocation_seconds histogram',
  ];
  s.latency.bucketsMs.forEach((b, i) => lines.push(`plexus_ipam_allocation_seconds_bucket{${n},le="${b / 1000}"} ${s.latency.counts[i]}`));
  lines.push(`plexus_ipam_allocation_seconds_bucket{${n},le="+Inf"} ${s.latency.count}`);
  lines.push(`plexus_ipam_allocation_seconds_sum{${n}} ${s.latency.sumMs / 1000}`);
  lines.push(`plexus_ipam_allocation_seconds_count{${n}} ${s.latency.count}`);
  lines.push('# TYPE plexus_ipam_pool_utilisation gauge');
  for (const p of s.pools) lines.push(`plexus_ipam_pool_utilisation{${n},pool="${p.pool}",family="${p.family}"} ${p.utilisation}`);
  return `${lines.join('\n')}\n`;
}

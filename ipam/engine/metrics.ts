/**
 * Counters for operators and benchmarks: allocations, releases, how many allocations touched the shared
 * store, an allocation latency histogram (cumulative buckets, Prometheus style), pool utilisation.
 * Plain numbers for tests and benchmarks (`snapshot`), and the same series as prom-client metrics on a
 * registry of their own (`ipamRegistry`), which the daemon merges into its /metrics.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Family } from '../../core/address';

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
  /** The same observations for Prometheus (prom-client keeps its own buckets); registered by ipamRegistry. */
  readonly latency = new Histogram({
    name: 'plexus_ipam_allocation_seconds',
    help: 'Time to allocate the addresses of one request',
    labelNames: ['node'],
    buckets: LATENCY_BUCKETS_MS.map((ms) => ms / 1000),
    registers: [],
  });

  constructor(private readonly node: string) {}

  observe(ms: number): void {
    this.count++;
    this.sumMs += ms;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= (LATENCY_BUCKETS_MS[i] as number)) (this.counts[i] as number)++;
    this.latency.observe({ node: this.node }, ms / 1000);
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

/** What a scrape reads besides the plain counters. */
export interface MetricsReader {
  metrics: IpamMetrics;
  writes(): { shared: number; node: number };
  blocksExamined(): number;
  pools(): Promise<PoolUsage[]>;
}

/**
 * The IPAM series on a registry of their own: counters read the plain numbers when scraped (a scrape costs
 * nothing on the allocation path), the latency histogram is observed as allocations happen.
 */
export function ipamRegistry(node: string, read: MetricsReader): Registry {
  const registry = new Registry();
  const registers = [registry];
  const n = { node };
  const m = read.metrics;
  const counter = (name: string, help: string, labelNames: string[], values: () => [Record<string, string>, number][]) =>
    new Counter({
      name, help, labelNames: ['node', ...labelNames], registers,
      collect() {
        this.reset();
        for (const [labels, v] of values()) this.inc({ ...n, ...labels }, v);
      },
    });
  counter('plexus_ipam_allocations_total', 'Allocation requests by result', ['result'], () => [
    [{ result: 'ok' }, m.allocations.ok], [{ result: 'failed' }, m.allocations.failed], [{ result: 'retried' }, m.allocations.retried],
  ]);
  counter('plexus_ipam_releases_total', 'Addresses released', [], () => [[{}, m.releases]]);
  counter('plexus_ipam_fast_path_total', 'Addresses handed out from a reserve without a shared-store write', [], () => [[{}, m.fastPath]]);
  counter('plexus_ipam_store_writes_total', 'Successful store commits', ['store'], () => {
    const w = read.writes();
    return [[{ store: 'shared' }, w.shared], [{ store: 'node' }, w.node]];
  });
  counter('plexus_ipam_blocks_examined_total', 'Owned blocks the allocator looked into', [], () => [[{}, read.blocksExamined()]]);
  registry.registerMetric(m.latency);
  new Gauge({
    name: 'plexus_ipam_pool_utilisation', help: 'Held addresses over capacity, per pool and family', labelNames: ['node', 'pool', 'family'], registers,
    async collect() {
      this.reset();
      for (const p of await read.pools()) this.set({ ...n, pool: p.pool, family: p.family }, p.utilisation);
    },
  });
  return registry;
}

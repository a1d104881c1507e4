/**
 * Test helpers shared by the IPAM unit and property tests: simulated nodes over a shared MemoryStore, each with
 * its own node store ("disk") that survives a crash, and a hand-driven clock.
 */
import { Ipam, type IpamOptions } from '../../../ipam/index';
import { MemoryStore } from '../../../ipam/stores/memory-store';
import type { PoolSpec } from '../../../ipam/model/pool';
import type { Store } from '../../../ipam/stores/store';

export class Clock {
  constructor(public t = 1_700_000_000_000) {}
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface SimNode {
  name: string;
  disk: MemoryStore;
  ipam: Ipam;
  /** Options of this node only (its nodeInfo, for example), kept across crashes. */
  extra: Partial<IpamOptions>;
}

export class Cluster {
  readonly nodes = new Map<string, SimNode>();
  readonly clock = new Clock();

  constructor(
    readonly shared: Store & { expireNode?(node: string): void },
    readonly pools: PoolSpec[],
    readonly opts: Partial<IpamOptions> = {},
  ) {}

  private open(name: string, disk: MemoryStore, extra: Partial<IpamOptions>): Promise<Ipam> {
    return Ipam.open({
      node: name, shared: this.shared, nodeStore: disk, pools: this.pools, clock: this.clock.now,
      syncIntervalMs: 0, gcGraceMs: 60_000, reserveIdleMs: 5_000, ...this.opts, ...extra,
    });
  }

  async add(name: string, extra: Partial<IpamOptions> = {}): Promise<SimNode> {
    const disk = new MemoryStore();
    const n: SimNode = { name, disk, extra, ipam: await this.open(name, disk, extra) };
    this.nodes.set(name, n);
    return n;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** The daemon dies and restarts: memory is gone, its disk (node store) survives, its process is dead. */
  async crash(name: string): Promise<SimNode> {
    const n = this.node(name);
    await n.ipam.close();
    n.disk.expireNode(name);
    n.ipam = await this.open(name, n.disk, n.extra);
    return n;
  }

  /** The node is gone for good: its registration expires, its disk is lost with it. */
  async lose(name: string): Promise<void> {
    const n = this.node(name);
    await n.ipam.close();
    this.shared.expireNode?.(name);
    this.nodes.delete(name);
  }
}

export const pod = (name: string, namespace = 'default'): { namespace: string; name: string } => ({ namespace, name });

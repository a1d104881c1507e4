/**
 * The IPAM service (DESIGN 6): every address a pod gets on every network. Pools are cut into blocks a node
 * claims with one compare-and-swap; stores: `shared` is etcd, or the local store on a single machine;
 * `nodeStore` is always local to the node (on a single machine both are the same LocalStore).
 *
 * Shared-store writes, and why batching them is safe:
 * - All that must be in the shared store before an address is handed out is that nobody else may take it:
 *   the owner's `held` set for the block (the superset invariant, records.ts). The owner grows it by growBy
 *   addresses (more while requests queue) per compare-and-swap, and a block claim carries its first reserve.
 *   Which pod got which address is the node's business: its node store has it written before the caller
 *   hears of it (one journal append shared by concurrent requests), on the disk a few ms later (D-6 in
 *   docs/decisions.md: only a machine crash can lose it, and the pods it describes die with the machine).
 * - So per allocation: 1/growBy writes for growth, plus at most one write per active block per syncInterval
 *   publishing holder names (for conflict messages, operators, and reclaim) and shrinking idle reserves.
 *   With growBy 16 and /26 blocks that is about 0.06-0.08, less under load. Releases of reserve addresses
 *   write nothing shared. Borrowed, specific-in-another-node's-block and fixed (claim, sticky) addresses
 *   cost one write each: they are the exception by design.
 * - Why no address is ever handed out twice: (1) an owner hands out only its `held` addresses, and only while
 *   its registration provably lives (fencing: TTL counted from when the last good keepalive was sent);
 *   (2) nobody else takes a held or foreign address: every such change compares the block's revision;
 *   (3) a dead owner's block is reclaimed in the same transaction as the check that its node record is gone,
 *   and its held addresses are quarantined, not freed: GC frees them after a grace period and a re-check;
 *   (4) a node that comes back re-registers and takes its quarantined addresses back (recovery.ts).
 * - Why none leaks: the node store names every holder; recovery reconciles it with the shared store after
 *   any crash; GC frees what CNI GC and the pod source say is gone, and what lost nodes held.
 * - Accepted limit: a node partitioned for longer than the GC grace period (default 10 min), whose holder
 *   names were not yet published, may see such an address reused elsewhere (as with Calico's GC).
 */
import { randomUUID } from 'node:crypto';
import { PlexusError, context } from '../../core/errors';
import { parseCidr } from '../../core/address';
import { type AddressRequest, allocateAny, allocateFixed, allocateIp } from './allocator';
import type { Engine, EngineOptions } from './engine';
import { Collector, type GcInput, type GcReport } from './gc';
import type { Registry } from 'prom-client';
import { IpamMetrics, type MetricsSnapshot, type PoolUsage, ipamRegistry } from './metrics';
import { NodeBook } from './node-book';
import { type Pool, type PoolSpec, parsePoolList } from '../model/pool';
import type { PodAddress, PodRecord } from '../model/records';
import { recover } from './recovery';
import { releaseAddresses, releaseAttachment, releaseFixed, syncReserve } from './release';
import { SharedBlocks } from './shared-blocks';
import { type Placement, readPlacement } from './placement';
import type { AcquireNodeOptions, NodeLease, Store } from '../stores/store';
import { type AllocateRequest, type Allocation, planFamilies, toAllocation } from './request';
import { type BlockView, heldInRanges, viewBlocks, viewPods, viewPools } from './views';

export interface IpamOptions {
  node: string;
  shared: Store;
  /** The node-local store; defaults to `shared` (single machine). */
  nodeStore?: Store;
  pools: readonly PoolSpec[];
  /** Injected clock (ms) for cooldown timestamps, reserve idleness and GC grace. */
  clock?: () => number;
  /** Addresses added to a block's reserve per shared write (default 16). */
  growBy?: number;
  /** A block idle this long gives its unused reserve back (default 30 s). */
  reserveIdleMs?: number;
  /** A released address is not handed out again for this long while the pool has other room. */
  cooldownMs?: number;
  /** How long something must look unused before GC releases it (default 10 min). */
  gcGraceMs?: number;
  /** How often holder names are published and idle reserves shrink; 0 = only when sync() is called. */
  syncIntervalMs?: number;
  /** TTL of the node's etcd lease (default 30 s). */
  leaseTtlMs?: number;
  /** Close the stores on close() (openIpam created them). */
  ownStores?: boolean;
  /**
   * The kernel's boot id (/proc/sys/kernel/random/boot_id; openIpam reads it). A changed one tells recovery
   * that the machine restarted, so the book may lack its last lazily synced changes (D-6 in docs/decisions.md).
   */
  bootId?: string;
  /** This node's labels, matched against pools' nodeSelector; without them every pool is usable. */
  nodeLabels?: Readonly<Record<string, string>>;
  /**
   * Published in the node's registration in the shared store for other nodes (placement()): opaque strings,
   * e.g. the routed datapath's `{ underlay4, underlay6, vtepMac }`. Every re-registration publishes it again.
   */
  nodeInfo?: Readonly<Record<string, string>>;
}

export class Ipam {
  private readonly metricsState: IpamMetrics;
  /** The IPAM series for the daemon's /metrics (prom-client). */
  readonly registry: Registry;
  private poolMap = new Map<string, Pool>();
  private lease!: NodeLease;
  private localLease!: NodeLease;
  private rejoining: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private engine!: Engine;
  private collector!: Collector;
  private token = '';
  /** Problems found by the last recovery, for operators. */
  warnings: string[] = [];

  private constructor(private readonly opts: IpamOptions) {
    this.metricsState = new IpamMetrics(opts.node);
    this.registry = ipamRegistry(opts.node, {
      metrics: this.metricsState,
      writes: () => ({ shared: opts.shared.stats().writes, node: this.nodeStore.stats().writes }),
      blocksExamined: () => this.engine.blocks.reserve.examined() + this.engine.blocks.room.examined(),
      pools: () => this.pools(),
    });
  }

  static async open(opts: IpamOptions): Promise<Ipam> {
    const ipam = new Ipam(opts);
    await ipam.start();
    return ipam;
  }

  private get nodeStore(): Store {
    return this.opts.nodeStore ?? this.opts.shared;
  }

  private async start(): Promise<void> {
    const { node, shared } = this.opts;
    this.setPools(this.opts.pools);
    // 1. The node store's token names this incarnation of the node; it lives as long as the node's disk.
    this.token = await this.loadToken();
    // 2. One live process per node store; the same token lets a restarted daemon replace its own etcd
    //    registration at once instead of waiting for the lease to run out.
    this.localLease = await this.nodeStore.acquireNode(node, this.registration());
    try {
      this.lease = shared === this.nodeStore ? this.localLease : await shared.acquireNode(node, this.registration());
      await this.startEngine();
    } catch (err) {
      await this.localLease.revoke().catch(() => undefined);
      throw err;
    }
  }

  private async startEngine(): Promise<void> {
    const { node, shared } = this.opts;
    const e: Engine = {
      node, inc: this.token, shared, book: await NodeBook.load(this.nodeStore),
      blocks: new SharedBlocks(shared, node, () => this.poolMap),
      pools: () => this.poolMap, now: this.opts.clock ?? Date.now,
      leaseValid: () => this.lease.valid(), ensureLease: () => this.ensureLease(),
      opts: this.engineOptions(),
    };
    this.engine = e;
    this.collector = new Collector(e);
    // 3. Reconcile the book with the shared store; conservatively if the machine restarted (D-6).
    const boot = await this.nodeStore.get<{ bootId: string }>('meta', 'boot');
    const restarted = this.opts.bootId !== undefined && boot?.value.bootId !== this.opts.bootId;
    this.warnings = await recover(e, { machineRestarted: restarted });
    // Recorded after recovery, synced: a crash during recovery repeats it as a restart. The synced commit
    // also covers the book's lazily written recovery changes.
    if (restarted) await this.nodeStore.commit([{ op: 'put', kind: 'meta', key: 'boot', value: { bootId: this.opts.bootId }, rev: boot?.rev ?? 0 }]);
    const every = this.opts.syncIntervalMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => void this.sync().catch(() => undefined), every);
      this.timer.unref();
    }
  }

  private engineOptions(): EngineOptions {
    return {
      growBy: this.opts.growBy ?? 16, reserveIdleMs: this.opts.reserveIdleMs ?? 30000, graceMs: this.opts.gcGraceMs ?? 600000,
      cooldownMs: this.opts.cooldownMs ?? 30000,
    };
  }

  private async loadToken(): Promise<string> {
    const cur = await this.nodeStore.get<{ token: string }>('meta', 'token');
    if (cur) return cur.value.token;
    const token = randomUUID();
    const res = await this.nodeStore.commit([{ op: 'put', kind: 'meta', key: 'token', value: { token }, rev: 0 }]);
    return res.ok ? token : ((await this.nodeStore.get<{ token: string }>('meta', 'token'))?.value.token ?? token);
  }

  /** What the node registers with: its incarnation token, lease TTL, and the info it publishes. */
  private registration(): AcquireNodeOptions {
    const r: AcquireNodeOptions = { token: this.token };
    if (this.opts.leaseTtlMs !== undefined) r.ttlMs = this.opts.leaseTtlMs;
    if (this.opts.nodeInfo !== undefined) r.info = this.opts.nodeInfo;
    return r;
  }

  /** Re-register after the lease lapsed, then re-check which blocks are still ours. */
  private ensureLease(): Promise<void> {
    if (this.lease.valid()) return Promise.resolve();
    this.rejoining ??= (async () => {
      try {
        const old = this.lease;
        this.lease = await this.opts.shared.acquireNode(this.opts.node, this.registration());
        // The lapsed lease only keeps a keepalive timer now (the registration moved to the new one).
        if (old !== this.localLease) await old.revoke().catch(() => undefined);
        this.warnings = await recover(this.engine);
      } finally {
        this.rejoining = null;
      }
    })();
    return this.rejoining;
  }

  /** Replace the pool definitions (config reload, IPPool manifests). Existing addresses stay valid. */
  setPools(specs: readonly PoolSpec[]): void {
    this.poolMap = new Map(parsePoolList(specs).map((p) => [p.name, p]));
    this.engine?.blocks.resetGeometry();
  }

  /** The pool definitions in force now, in the order they were given. */
  poolSpecs(): PoolSpec[] {
    return [...this.poolMap.values()].map((p) => p.spec);
  }

  /** One pool's definition, or undefined when no pool of that name is configured now. */
  poolSpec(name: string): PoolSpec | undefined {
    return this.poolMap.get(name)?.spec;
  }

  /** What one attachment (or every attachment of a container) holds on this node now, from memory. */
  held(containerId: string, ifName?: string): PodAddress[] {
    return this.engine.book.addressesOf(containerId, ifName).map((a) => ({ ...a.addr }));
  }

  /** Addresses for one attachment on one pool. Idempotent per (containerId, ifName, pool). */
  async allocate(req: AllocateRequest): Promise<Allocation> {
    const [one] = await this.allocateMany([req]);
    return one as Allocation;
  }

  /** Addresses for several attachments (a pod's networks) at once: all or nothing, one durable commit. */
  async allocateMany(reqs: readonly AllocateRequest[]): Promise<Allocation[]> {
    const t0 = performance.now();
    const e = this.engine;
    const fresh: { podKey: string; addr: PodAddress }[] = [];
    const cids = [...new Set(reqs.map((r) => r.containerId))].sort();
    try {
      const out = await this.withContainers(cids, async () => {
        const res: Allocation[] = [];
        for (const req of reqs) {
          const plan = planFamilies(e, req, this.poolMap, this.opts.nodeLabels);
          for (const step of plan.missing) {
            const ar: AddressRequest = { pod: req.pod, containerId: req.containerId, ifName: req.ifName, network: req.network, pool: plan.pool };
            const addr = step.ip ? await allocateIp(e, ar, step.ip)
              : plan.fixedKey ? await allocateFixed(e, ar, step.family, plan.fixedKey)
              : await allocateAny(e, ar, step.family);
            fresh.push({ podKey: plan.podKey, addr });
            if (addr.via === 'own') this.metricsState.fastPath++;
          }
          if (plan.missing.length === 0) this.metricsState.allocations.retried++;
          e.book.markServed(req.containerId, req.ifName);
          res.push(toAllocation(e, req, plan.pool));
        }
        await e.book.persist();
        return res;
      });
      this.metricsState.allocations.ok += reqs.length;
      this.metricsState.observe(performance.now() - t0);
      return out;
    } catch (err) {
      this.metricsState.allocations.failed += reqs.length;
      // Undo (STYLE 2): give back what this call handed out; fixed addresses only detach (S38).
      await releaseAddresses(e, fresh).catch(() => undefined);
      const what = reqs.map((r) => `${r.network}/${r.ifName}`).join(', ');
      throw context(err, `failed to allocate addresses for ${reqs[0]?.pod.namespace}/${reqs[0]?.pod.name} (${what})`);
    }
  }

  private async withContainers<T>(cids: string[], fn: () => Promise<T>): Promise<T> {
    const [first, ...rest] = cids;
    if (first === undefined) return fn();
    return this.engine.blocks.withLock(`ctr:${first}`, () => this.withContainers(rest, fn));
  }

  /** Release the addresses of one attachment, or of all attachments of a container. Idempotent (DEL). */
  async release(containerId: string, ifName?: string): Promise<{ ip: string; pool: string; network: string; ifName: string }[]> {
    try {
      const out = await this.engine.blocks.withLock(`ctr:${containerId}`, () => releaseAttachment(this.engine, containerId, ifName));
      this.metricsState.releases += out.length;
      return out.map((a) => ({ ip: a.ip, pool: a.pool, network: a.network, ifName: a.ifName }));
    } catch (err) {
      throw context(err, `failed to release addresses of container ${containerId}${ifName ? ` ${ifName}` : ''}`);
    }
  }

  /** Free an IPAMClaim's addresses for good: only when the claim itself is deleted (S38). */
  releaseClaim(claim: { namespace: string; name: string }): Promise<string[]> {
    return releaseFixed(this.engine, `claim:${claim.namespace}/${claim.name}`);
  }

  /** Free a sticky pod's addresses for good (its StatefulSet scaled down); GC does this for gone pods. */
  releaseSticky(pod: { namespace: string; name: string }): Promise<string[]> {
    return releaseFixed(this.engine, `sticky:${pod.namespace}/${pod.name}`);
  }

  /** Release what `input` says is gone, after the grace period; see gc.ts. */
  async gc(input: GcInput = {}): Promise<GcReport> {
    const servedBefore = this.engine.book.servedNow; // the caller's view of what is live is from now
    await this.ensureLease();
    return this.collector.run(input, servedBefore);
  }

  /** Publish holder names and shrink idle reserves now (also runs every syncIntervalMs). Re-registers a lapsed node. */
  async sync(): Promise<number> {
    await this.ensureLease();
    return syncReserve(this.engine);
  }

  pools(): Promise<PoolUsage[]> {
    return viewPools(this.engine);
  }
  blocks(): Promise<BlockView[]> {
    return viewBlocks(this.engine);
  }
  pods(): PodRecord[] {
    return viewPods(this.engine);
  }

  /** Node-local state another component keeps beside the node's IPAM state (plexus-ipam's implicit pools). */
  async readNodeMeta<T>(key: string): Promise<T | undefined> {
    return (await this.nodeStore.get<T>('meta', `x:${key}`))?.value;
  }

  /** Replace such state; durable when it resolves. */
  async writeNodeMeta(key: string, value: unknown): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.nodeStore.get('meta', `x:${key}`);
      if ((await this.nodeStore.commit([{ op: 'put', kind: 'meta', key: `x:${key}`, value, rev: cur?.rev ?? 0 }])).ok) return;
    }
    throw new PlexusError('StoreConflict', `node IPAM state ${key} kept changing`);
  }

  /** Addresses held inside `cidrs` by pool, over the whole shared store (configured pools or not). */
  heldIn(cidrs: readonly string[]): Promise<Map<string, number>> {
    return heldInRanges(this.engine, cidrs.map((c) => parseCidr(c)));
  }

  /** Which node owns which block, borrowed addresses, and every node's published info (placement.ts). */
  placement(): Promise<Placement> {
    return readPlacement(this.opts.shared);
  }

  async metrics(): Promise<MetricsSnapshot> {
    const b = this.engine.blocks;
    return this.metricsState.snapshot({
      sharedWrites: this.opts.shared.stats().writes, nodeWrites: this.nodeStore.stats().writes, pools: await this.pools(),
      blocksExamined: b.reserve.examined() + b.room.examined(),
    });
  }

  /** Prometheus text of the IPAM series (the daemon merges `registry` into its own instead). */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stop. `leave: true` also ends the node's registration so other nodes may reclaim its blocks at once. */
  async close(opts: { leave?: boolean } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.engine.blocks.refilling.values());
    await this.engine.book.persist().catch(() => undefined);
    if (opts.leave) await this.lease.revoke();
    // The node store registration only says "a live process serves this node": closing ends it, as exit would.
    await this.localLease.revoke();
    if (this.opts.ownStores) {
      await this.opts.shared.close();
      if (this.nodeStore !== this.opts.shared) await this.nodeStore.close();
    }
  }
}

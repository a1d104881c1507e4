/**
 * The IPAM library's public surface: the Ipam service (service.ts), its stores, and `openIpam`, which
 * builds it from the daemon config's `ipam` section.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PlexusError, context } from '../meta-plugin/cni/errors';
import { EtcdStore } from './etcd-store';
import { LocalStore } from './local-store';
import { type IpamConfig, parseIpamConfig } from './pool-schema';
import { Ipam } from './service';

export { Ipam, type IpamOptions } from './service';
export type { Family } from './address';
export type { Allocation, AllocatedAddress, AllocateRequest } from './request';
export type { GcCandidate, GcInput, GcReport } from './gc';
export type { MetricsSnapshot, PoolUsage } from './metrics';
export type { BlockView } from './views';
export type { PlacedAddress, PlacedBlock, PlacedNode, Placement } from './placement';
export type { PoolSpec } from './pool';
export type { PodAddress, PodRecord } from './records';
export { type IpamConfig, IPAM_CONFIG_SCHEMA, IPPOOL_MANIFEST_SCHEMA, POOL_SCHEMA, parseIpamConfig, poolSpecFromManifest } from './pool-schema';
export type { Store } from './store';
export { MemoryStore } from './memory-store';
export { LocalStore } from './local-store';
export { EtcdStore } from './etcd-store';

/** The running kernel's boot id; undefined where there is none (then recovery never assumes a restart). */
function readBootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Build the IPAM service from the daemon config's `ipam` section (`ipam.store`, `ipam.pools`, tuning).
 * `{type: local}` keeps everything in one local store under `<stateDir>/ipam`; `{type: etcd}` shares blocks
 * through etcd and keeps the node's own book in `<stateDir>/ipam-node`.
 */
export async function openIpam(args: {
  config: unknown;
  node: string;
  stateDir: string;
  clock?: () => number;
  nodeLabels?: Readonly<Record<string, string>>;
  /** Published in the node's registration (IpamOptions.nodeInfo). */
  nodeInfo?: Readonly<Record<string, string>>;
  /** Default: the running kernel's boot id (IpamOptions.bootId). */
  bootId?: string;
}): Promise<Ipam> {
  const { config } = parseIpamConfig(args.config);
  const c: IpamConfig = config;
  const store = c.store ?? { type: 'local' };
  const local = store.type === 'local';
  // The node store (pod records, cooldown queues) is always this node's own. A local store with an explicit
  // `dir` may be shared by several nodes' daemons on one machine (hack/cluster.ts), so it is only the shared
  // store then; without `dir` one local store under stateDir is both.
  const sharedDir = local && store.dir !== undefined ? store.dir : undefined;
  const nodeStore = await LocalStore.open(local && sharedDir === undefined ? path.join(args.stateDir, 'ipam') : path.join(args.stateDir, 'ipam-node'));
  const shared = store.type === 'etcd'
    ? new EtcdStore({ endpoints: store.endpoints, prefix: store.prefix })
    : sharedDir !== undefined ? await LocalStore.open(sharedDir) : nodeStore;
  try {
    return await Ipam.open({
      node: args.node, shared, nodeStore, pools: c.pools ?? [], clock: args.clock, nodeLabels: args.nodeLabels, nodeInfo: args.nodeInfo, bootId: args.bootId ?? readBootId(),
      growBy: c.growBy, syncIntervalMs: c.syncIntervalMs, reserveIdleMs: c.reserveIdleMs, cooldownMs: c.cooldownMs,
      gcGraceMs: c.gcGraceMs, leaseTtlMs: c.leaseTtlMs, ownStores: true,
    });
  } catch (err) {
    await shared.close().catch(() => undefined);
    if (shared !== nodeStore) await nodeStore.close();
    throw err instanceof PlexusError ? err : context(err, 'failed to open the IPAM service');
  }
}

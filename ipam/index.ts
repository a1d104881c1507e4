/**
 * The IPAM library's public surface: the Ipam service (service.ts), its stores, and `openIpam`, which
 * builds it from the daemon config's `ipam` section.
 */
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
export type { PoolSpec } from './pool';
export type { PodAddress, PodRecord } from './records';
export { type IpamConfig, IPAM_CONFIG_SCHEMA, IPPOOL_MANIFEST_SCHEMA, POOL_SCHEMA, parseIpamConfig, poolSpecFromManifest } from './pool-schema';
export type { Store } from './store';
export { MemoryStore } from './memory-store';
export { LocalStore } from './local-store';
export { EtcdStore } from './etcd-store';

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
}): Promise<Ipam> {
  const { config } = parseIpamConfig(args.config);
  const c: IpamConfig = config;
  const store = c.store ?? { type: 'local' };
  const local = store.type === 'local';
  const nodeStore = await LocalStore.open(local ? (store.dir ?? path.join(args.stateDir, 'ipam')) : path.join(args.stateDir, 'ipam-node'));
  const shared = store.type === 'etcd' ? new EtcdStore({ endpoints: store.endpoints, prefix: store.prefix }) : nodeStore;
  try {
    return await Ipam.open({
      node: args.node, shared, nodeStore, pools: c.pools ?? [], clock: args.clock, nodeLabels: args.nodeLabels,
      growBy: c.growBy, syncIntervalMs: c.syncIntervalMs, reserveIdleMs: c.reserveIdleMs, cooldownMs: c.cooldownMs,
      gcGraceMs: c.gcGraceMs, leaseTtlMs: c.leaseTtlMs, ownStores: true,
    });
  } catch (err) {
    await shared.close().catch(() => undefined);
    if (shared !== nodeStore) await nodeStore.close();
    throw err instanceof PlexusError ? err : context(err, 'failed to open the IPAM service');
  }
}

/**
 * The IPAM library's public face, the only file other folders import (hack/lint.js checks it). Four rooms
 * behind it: `model/` (pools, records, the config schema: pure data; addresses are core/address.ts), `stores/` (the store contract
 * and its local, etcd and in-memory implementations), `engine/` (the Ipam service: allocation, release,
 * recovery, GC, placement, views) and `cni/` (`plexus-ipam`, the CNI IPAM plugin face, and the implicit
 * pools that networks' inline ranges define). `openIpam` builds the service from the daemon config's `ipam`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PlexusError, context } from '../core/errors';
import { EtcdStore } from './stores/etcd-store';
import { LocalStore } from './stores/local-store';
import { type KubeApi, KubeStore } from './stores/kube-store';
import type { IpamConfig } from './model/pool-schema';
import { Ipam } from './engine/ipam';
import type { Store } from './stores/store';

export { Ipam, type IpamOptions } from './engine/ipam';
export type { Family } from '../core/address';
export type { Allocation, AllocatedAddress, AllocateRequest } from './engine/request';
export type { GcCandidate, GcInput, GcReport } from './engine/gc';
export type { MetricsSnapshot, PoolUsage } from './engine/metrics';
export type { BlockView } from './engine/views';
export type { PlacedAddress, PlacedBlock, PlacedNode, Placement } from './engine/placement';
export type { PoolSpec } from './model/pool';
export type { PodAddress, PodRecord } from './model/records';
export { type IpamConfig, IPAM_CONFIG_SCHEMA, IPPOOL_MANIFEST_SCHEMA, POOL_SCHEMA, parseIpamConfig, poolSpecFromManifest } from './model/pool-schema';
export type { Store } from './stores/store';
export { MemoryStore } from './stores/memory-store';
export { LocalStore } from './stores/local-store';
export { EtcdStore } from './stores/etcd-store';
export { type KubeApi, KubeStore } from './stores/kube-store';
export { IPAM_PLUGIN_TYPE, IpamPlugin, NO_POD_NAMESPACE } from './cni/plugin';
export { inlinePoolOf } from './cni/ranges';
export { parseCniIpamConfig } from './cni/schema';
export { ImplicitPools } from './cni/implicit-pools';

function kubeApiOf(api: KubeApi | undefined): KubeApi {
  if (!api) throw new PlexusError('Internal', 'ipam.store: type kubernetes needs the daemon\'s API client');
  return api;
}

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
 * `{type: local}` keeps everything in one local store under `<stateDir>/ipam`; `{type: etcd}` and
 * `{type: kubernetes}` share blocks through etcd or the API server (`kubeApi`, the daemon's client) and keep
 * the node's own book in `<stateDir>/ipam-node`.
 */
export async function openIpam(args: {
  /** The daemon config's `ipam` section, parsed once (parseIpamConfig) when the daemon config was. */
  config: IpamConfig;
  node: string;
  stateDir: string;
  clock?: () => number;
  nodeLabels?: Readonly<Record<string, string>>;
  /** Published in the node's registration (IpamOptions.nodeInfo). */
  nodeInfo?: Readonly<Record<string, string>>;
  /** Default: the running kernel's boot id (IpamOptions.bootId). */
  bootId?: string;
  /** The API client for `store: {type: kubernetes}`. */
  kubeApi?: KubeApi;
}): Promise<Ipam> {
  const c = args.config;
  const store = c.store ?? { type: 'local' };
  const local = store.type === 'local';
  // The node store (pod records, cooldown queues) is always this node's own. A local store with an explicit
  // `dir` may be shared by several nodes' daemons on one machine (hack/cluster/), so it is only the shared
  // store then; without `dir` one local store under stateDir is both.
  const sharedDir = local && store.dir !== undefined ? store.dir : undefined;
  const nodeStore = await LocalStore.open(local && sharedDir === undefined ? path.join(args.stateDir, 'ipam') : path.join(args.stateDir, 'ipam-node'));
  let shared: Store;
  try {
    shared = store.type === 'etcd'
      ? new EtcdStore({ endpoints: store.endpoints, prefix: store.prefix })
      : store.type === 'kubernetes'
        ? await KubeStore.open({ api: kubeApiOf(args.kubeApi), txnTimeoutMs: store.txnTimeoutMs, clock: args.clock })
        : sharedDir !== undefined ? await LocalStore.open(sharedDir) : nodeStore;
  } catch (err) {
    await nodeStore.close();
    throw err;
  }
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

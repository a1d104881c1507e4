/**
 * What each node of a local cluster runs: the cluster network's conflist in its confDir and its plexusd
 * config, both generated from the cluster's options.
 */
import { dirname, join } from 'node:path';
import type { PoolSpec } from '../../ipam';
import { REPO_ROOT } from './process';
import type { ClusterNode, ClusterOptions } from './types';

export const CNI_BIN_DIR = '/usr/lib/cni';
export const CLUSTER_NETWORK = 'k8s-pod-network';
const POOL_NAME = 'pods';

/** The pool every node allocates pod addresses from (one shared local IPAM store). */
export function clusterPool(opts: ClusterOptions): PoolSpec {
  if (opts.pool) return opts.pool;
  // /122 is the v6 block with as many addresses as a v4 /26 (and the v6 default of ipam/model/pool.ts).
  const pool: PoolSpec = { name: POOL_NAME, cidrs: ['10.244.0.0/16', 'fd00:244::/56'], blockSize: { v4: 26, v6: 122 } };
  // ptp puts the gateway on every host-side veth (/32, /128) and routes the pod's defaults through it.
  if ((opts.datapath ?? 'routed') === 'ptp') return { ...pool, gateway: ['10.244.0.1', 'fd00:244::1'], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] };
  return pool;
}

export function clusterConflist(opts: ClusterOptions, node: ClusterNode): Record<string, unknown> {
  const ipam = { type: 'plexus-ipam', pool: clusterPool(opts).name, socketPath: node.socket };
  if ((opts.datapath ?? 'routed') === 'routed') {
    return { cniVersion: '1.1.0', name: CLUSTER_NETWORK, plugins: [{ type: 'plexus-routed', ipam }] };
  }
  // Debian's ptp (plugins 1.1.1) speaks CNI up to 1.0.0.
  return { cniVersion: '1.0.0', name: CLUSTER_NETWORK, plugins: [{ type: 'ptp', mtu: 1500, ipam }] };
}

export function daemonConfig(opts: ClusterOptions, node: ClusterNode, manifestDir: string, ipamDir: string): Record<string, unknown> {
  const config: Record<string, unknown> = {
    socketPath: node.socket,
    stateDir: node.stateDir,
    // bin/ holds plexus-ipam and plexus-routed, the names the forwarder acts under.
    binDirs: [join(REPO_ROOT, 'bin'), CNI_BIN_DIR],
    confDir: node.confDir,
    clusterNetwork: CLUSTER_NETWORK,
    nodeName: node.netns,
    deviceInfoDir: join(node.dir, 'devinfo'),
    logLevel: opts.logLevel ?? 'info',
    // The nodes share the pods' network-status beside the manifests: policy peers on other nodes by labels.
    source: { type: 'file', dir: manifestDir, rescanSeconds: 1, statusDir: join(dirname(manifestDir), 'network-status') },
    ipam: { store: { type: 'local', dir: ipamDir }, pools: [clusterPool(opts)] },
  };
  if ((opts.datapath ?? 'routed') === 'routed') {
    config['routed'] = { mode: opts.mode ?? 'native', underlay: 'eth0', ebpf: opts.ebpf ?? true, pinDir: node.pinDir };
  }
  return { ...config, ...opts.daemon, ...opts.nodeDaemon?.(node) };
}

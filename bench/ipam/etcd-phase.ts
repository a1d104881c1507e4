/**
 * (b) The in-daemon path on etcd: a 3-member etcd cluster on loopback started here, and three `Ipam`
 * instances as three nodes (each its own etcd client and local node store, as three daemons would have),
 * driven together at a total concurrency of 16 and 64. Writes per allocation come from the stores' counters.
 *
 * main.ts loads this file through its own esbuild bundle with etcd3 left external: etcd3 reads its .proto
 * files relative to its package directory, which a bundle would move.
 */
import { join } from 'node:path';
import { EtcdStore } from '../../ipam/stores/etcd-store';
import { LocalStore } from '../../ipam/stores/local-store';
import { Ipam } from '../../ipam/engine/ipam';
import { EtcdCluster } from '../../hack/cluster/etcd';
import { type ThroughputRow, rowsAcrossNodes, say } from './drive';
import { BENCH_POOL } from './local-phase';

export async function runEtcdPhase(dir: string, opts: { total: number; deadlineMs: number; concurrencies: number[] }): Promise<ThroughputRow[]> {
  say('etcd: starting a 3-member cluster on 127.0.0.1');
  const cluster = await EtcdCluster.start(3);
  const nodes: { ipam: Ipam; shared: EtcdStore }[] = [];
  const rows: ThroughputRow[] = [];
  try {
    for (let n = 0; n < 3; n++) {
      const shared = new EtcdStore({ endpoints: cluster.endpoints, prefix: '/plexus-bench/ipam' });
      const nodeStore = await LocalStore.open(join(dir, `etcd-node-${n}`));
      nodes.push({ shared, ipam: await Ipam.open({ node: `node-${n}`, shared, nodeStore, pools: [BENCH_POOL], ownStores: true }) });
    }
    const writes = (): number => nodes.reduce((sum, n) => sum + n.shared.stats().writes, 0);
    // Warm-up (in rowsAcrossNodes) also opens every node's gRPC channels.
    rows.push(...(await rowsAcrossNodes('etcd', nodes.map((n) => n.ipam), writes, opts, 'etcd writes')));
  } finally {
    for (const n of nodes) await n.ipam.close({ leave: true }).catch(() => undefined);
    await cluster.stop();
  }
  return rows;
}

/**
 * (b2) The in-daemon path on the Kubernetes store: the test API server (hack/kube-api) in this process with
 * crds/plexus-ipamrecord.yaml applied, and three `Ipam` instances as three nodes (each its own API client and
 * local node store), driven together at a total concurrency of 16 and 64. Writes per allocation are counted by
 * the server (requests that changed an IPAMRecord), not by the stores. The server shares this process's event
 * loop with the nodes, so allocations/s is a floor, not what a real API server would give.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { KubeApiServer } from '../../hack/kube-api';
import { REPO_ROOT } from '../../hack/cluster/process';
import { KubeClient } from '../../meta-plugin/source/kube/client';
import { KubeStore } from '../../ipam/stores/kube-store';
import { LocalStore } from '../../ipam/stores/local-store';
import { Ipam } from '../../ipam/engine/ipam';
import { type ThroughputRow, rowsAcrossNodes } from './drive';
import { BENCH_POOL } from './local-phase';

export async function runKubePhase(dir: string, opts: { total: number; deadlineMs: number; concurrencies: number[] }): Promise<ThroughputRow[]> {
  const server = new KubeApiServer();
  await server.start();
  server.apply(yaml.load(readFileSync(join(REPO_ROOT, 'crds/plexus-ipamrecord.yaml'), 'utf8')) as Parameters<KubeApiServer['apply']>[0]);
  mkdirSync(dir, { recursive: true });
  const kubeconfig = server.writeKubeconfig(join(dir, 'kubeconfig'));
  const nodes: Ipam[] = [];
  const rows: ThroughputRow[] = [];
  try {
    for (let n = 0; n < 3; n++) {
      const shared = await KubeStore.open({ api: new KubeClient(kubeconfig, 10_000) });
      const nodeStore = await LocalStore.open(join(dir, `kube-node-${n}`));
      nodes.push(await Ipam.open({ node: `node-${n}`, shared, nodeStore, pools: [BENCH_POOL], ownStores: true }));
    }
    const writes = (): number => server.requests.filter((q) => q.method !== 'GET' && q.path.includes('/ipamrecords') && q.status > 0 && q.status < 300).length;
    rows.push(...(await rowsAcrossNodes('kubernetes', nodes, writes, opts, 'API writes')));
  } finally {
    for (const n of nodes) await n.close({ leave: true }).catch(() => undefined);
    await server.stop();
  }
  return rows;
}

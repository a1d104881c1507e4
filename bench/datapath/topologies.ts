/**
 * The one registry of topologies (STYLE 3: no module registers itself on import). To add one, write
 * bench/datapath/topo-<name>.ts exporting a `TopologyFactory` and add it to TOPOLOGIES; it is then measured by
 * default and selectable with DATAPATH_TOPOLOGIES=<name>,...
 */
import { join } from 'node:path';
import { bridgePlugin, ptpPlugin } from './topo-cni-plugin';
import { routedEbpf, routedEbpfCross, routedNoEbpf, routedNoEbpfCross, routedVxlanCross } from './topo-plexus-routed';
import { rawNodeVeth } from './topo-raw-node-veth';
import { rawNodeVxlan } from './topo-raw-node-vxlan';
import { rawVeth } from './topo-raw-veth';
import type { Topology, TopologyFactory, TopologyKind } from './topology';

export const TOPOLOGIES: TopologyFactory[] = [
  rawVeth,
  routedEbpf,
  routedNoEbpf,
  bridgePlugin,
  ptpPlugin,
  rawNodeVeth,
  routedEbpfCross,
  routedNoEbpfCross,
  rawNodeVxlan,
  routedVxlanCross,
];

/** What each kind's ratios are relative to: the limit of that kind of path. */
export const LIMIT: Record<TopologyKind, string> = { 'same-node': 'raw-veth', 'cross-node': 'raw-node-veth' };
/** The same-node throughput goal also compares with this. */
export const BRIDGE = 'bridge-plugin';

/**
 * Instantiates every registered topology (cheap: factories touch nothing) and returns the wanted ones in the
 * wanted order; `wanted` is a comma-separated list of names, all of them when empty.
 */
export function selectTopologies(wanted: string | undefined, runPrefix: string, tmpDir: string): Topology[] {
  const all = TOPOLOGIES.map((factory, i) => factory({ prefix: `${runPrefix}-t${i}`, tmpDir: join(tmpDir, `t${i}`) }));
  const names = all.map((t) => t.name);
  const dupes = names.filter((n, i) => names.indexOf(n) !== i);
  if (dupes.length) throw new Error(`topology names must be unique: ${dupes.join(', ')}`);
  const list = [...new Set((wanted ?? '').split(',').map((s) => s.trim()).filter(Boolean))];
  if (list.length === 0) return all;
  return list.map((name) => {
    const t = all.find((x) => x.name === name);
    if (!t) throw new Error(`unknown topology '${name}' in DATAPATH_TOPOLOGIES (known: ${names.join(', ')})`);
    return t;
  });
}

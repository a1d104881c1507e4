/**
 * Two pods on one node attached by a CNI plugin, run in the node netns as a runtime runs it (env + config on
 * stdin, host-local IPAM with its dataDir in the topology's tmpDir), DEL at teardown. The Debian reference
 * plugins bridge and ptp are the same-node baselines; `cniPluginTopology` also serves any other plugin binary.
 */
import { join } from 'node:path';
import { Scratch } from '../lib/netns';
import { attachWithPlugin } from './build';
import type { TopologyFactory } from './topology';

export const REFERENCE_PLUGINS = '/usr/lib/cni';

export interface CniPluginTopology {
  name: string;
  description: string;
  baseline: boolean;
  /** Default: Debian's containernetworking-plugins. */
  binDir?: string;
  /** The network config, given the topology's private directory (for IPAM state). */
  conf(tmpDir: string): Record<string, unknown>;
}

export function cniPluginTopology(spec: CniPluginTopology): TopologyFactory {
  return (ctx) => {
    const scratch = new Scratch(ctx.prefix);
    return {
      name: spec.name,
      kind: 'same-node',
      baseline: spec.baseline,
      description: spec.description,
      async setup() {
        const node = await scratch.netns('node');
        const client = await scratch.netns('pod-a');
        const server = await scratch.netns('pod-b');
        const call = { node, binDir: spec.binDir ?? REFERENCE_PLUGINS, conf: spec.conf(ctx.tmpDir), ifName: 'eth0' };
        await attachWithPlugin(scratch, { ...call, pod: client });
        const serverIp = await attachWithPlugin(scratch, { ...call, pod: server });
        return { client, server, serverIp };
      },
      teardown: () => scratch.teardown(),
    };
  };
}

const hostLocal = (tmpDir: string, subnet: string) => ({
  type: 'host-local',
  dataDir: join(tmpDir, 'host-local'),
  ranges: [[{ subnet }]],
  routes: [{ dst: '0.0.0.0/0' }],
});

export const bridgePlugin = cniPluginTopology({
  name: 'bridge-plugin',
  description: 'Debian bridge plugin: pod veths on a Linux bridge (cni0, gateway) in a node netns',
  baseline: true,
  conf: (tmpDir) => ({ cniVersion: '1.0.0', name: 'bench-bridge', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, ipam: hostLocal(tmpDir, '10.211.0.0/24') }),
});

export const ptpPlugin = cniPluginTopology({
  name: 'ptp-plugin',
  description: 'Debian ptp plugin: pod veths to a node netns that routes between them',
  baseline: true,
  conf: (tmpDir) => ({ cniVersion: '1.0.0', name: 'bench-ptp', type: 'ptp', ipMasq: false, ipam: hostLocal(tmpDir, '10.212.0.0/24') }),
});

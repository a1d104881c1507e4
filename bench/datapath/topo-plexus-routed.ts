/**
 * plexus-routed, measured as it runs: a cluster from hack/cluster/ (nodes as netns on an underlay bridge,
 * one plexusd each, pods attached through bin/plexus), two pods on one node or one pod on each of two nodes.
 * With eBPF the same-node path is from_pod's bpf_redirect_peer; without it, the kernel's forwarding over the
 * same /32 routes. Across nodes the underlay is the same veth-bridge-veth as raw-node-veth's.
 */
import { createHash } from 'node:crypto';
import { Cluster, type RoutedMode } from '../../hack/cluster';
import type { Topology, TopologyFactory } from './topology';

interface Variant {
  name: string;
  ebpf: boolean;
  crossNode: boolean;
  mode: RoutedMode;
  description: string;
  likeForLike?: string;
}

function routedTopology(v: Variant): TopologyFactory {
  return (ctx) => {
    // Cluster prefixes are [a-z][a-z0-9]{0,15}: derive one from the run's unique prefix.
    const prefix = `plxb${createHash('sha256').update(ctx.prefix).digest('hex').slice(0, 8)}`;
    let cluster: Cluster | undefined;
    const t: Topology = {
      name: v.name,
      kind: v.crossNode ? 'cross-node' : 'same-node',
      baseline: false,
      ...(v.likeForLike ? { likeForLike: v.likeForLike } : {}),
      description: v.description,
      async setup() {
        cluster = new Cluster({ prefix, nodes: v.crossNode ? 2 : 1, datapath: 'routed', mode: v.mode, ebpf: v.ebpf, logLevel: 'warn' });
        await cluster.up();
        const client = await cluster.addPod('n1', { name: 'client' });
        const server = await cluster.addPod(v.crossNode ? 'n2' : 'n1', { name: 'server' });
        // Other nodes' blocks are routed within routeSyncMs of the claim.
        for (let i = 0; i < 50 && !cluster.ping(client.netns, server.ipv4!, 1); i++) await new Promise((r) => setTimeout(r, 100));
        return { client: client.netns, server: server.netns, serverIp: server.ipv4! };
      },
      async teardown() {
        await cluster?.destroy();
      },
    };
    return t;
  };
}

export const routedEbpf = routedTopology({
  name: 'plexus-routed-ebpf', ebpf: true, crossNode: false, mode: 'native',
  description: 'plexus-routed: veth, from_pod (bpf_redirect_peer), veth',
});
export const routedNoEbpf = routedTopology({
  name: 'plexus-routed-noebpf', ebpf: false, crossNode: false, mode: 'native',
  description: 'plexus-routed with ebpf: false: veth, kernel forwarding over /32 routes, veth',
});
export const routedEbpfCross = routedTopology({
  name: 'plexus-routed-ebpf-x', ebpf: true, crossNode: true, mode: 'native',
  description: 'plexus-routed native mode, two nodes: from_pod (fib lookup + redirect) to the underlay, kernel routing in',
});
export const routedNoEbpfCross = routedTopology({
  name: 'plexus-routed-noebpf-x', ebpf: false, crossNode: true, mode: 'native',
  description: 'plexus-routed native mode without eBPF, two nodes: kernel forwarding both ways',
});
export const routedVxlanCross = routedTopology({
  name: 'plexus-routed-vxlan-x', ebpf: true, crossNode: true, mode: 'vxlan', likeForLike: 'raw-node-vxlan',
  description: 'plexus-routed vxlan mode, two nodes: from_pod, VXLAN (MTU 1450) over the underlay',
});

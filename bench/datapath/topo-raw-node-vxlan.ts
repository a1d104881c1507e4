/**
 * raw-node-vxlan, the cross-node limit of any overlay: raw-node-veth's two nodes, each with a plain kernel
 * VXLAN device (VNI 42, unicast to the other node, MTU 1450 as plexus-routed sets it), measured node to
 * node through the tunnel. What plexus-routed's `mode: vxlan` costs beyond this is Plexus's; the rest is
 * encapsulation.
 */
import { Scratch, ip } from '../lib/netns';
import { createUnderlay } from './build';
import type { TopologyFactory } from './topology';

export const rawNodeVxlan: TopologyFactory = (ctx) => {
  const scratch = new Scratch(ctx.prefix);
  return {
    name: 'raw-node-vxlan',
    kind: 'cross-node',
    baseline: true,
    description: 'node netns to node netns through a plain VXLAN device on each, over raw-node-veth\'s underlay',
    async setup() {
      const nodes = [
        { netns: await scratch.netns('node1'), under: '10.220.0.1', over: '10.221.0.1' },
        { netns: await scratch.netns('node2'), under: '10.220.0.2', over: '10.221.0.2' },
      ] as const;
      await createUnderlay(scratch, nodes.map((n) => ({ netns: n.netns, cidr: `${n.under}/24` })));
      for (const [i, n] of nodes.entries()) {
        const peer = nodes[1 - i]!;
        await ip('-n', n.netns, 'link', 'add', 'vx0', 'mtu', '1450', 'type', 'vxlan', 'id', '42', 'local', n.under, 'remote', peer.under, 'dstport', '4789', 'dev', 'eth0');
        await ip('-n', n.netns, 'addr', 'add', `${n.over}/24`, 'dev', 'vx0');
        await ip('-n', n.netns, 'link', 'set', 'vx0', 'up');
      }
      return { client: nodes[0].netns, server: nodes[1].netns, serverIp: nodes[1].over };
    },
    teardown: () => scratch.teardown(),
  };
};

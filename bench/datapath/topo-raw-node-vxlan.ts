/**
 * raw-node-vxlan, the cross-node limit of any overlay: raw-node-veth's two nodes, each with a plain kernel
 * VXLAN device (VNI 42, unicast to the other node, MTU 1450 as plexus-routed sets it), measured node to
 * node through the tunnel. What plexus-routed's `mode: vxlan` costs beyond this is Plexus's; the rest is
 * encapsulation.
 */
import { Scratch, ip } from '../lib/netns';
import { twoNodesOnUnderlay } from './build';
import type { TopologyFactory } from './topology';

export const rawNodeVxlan: TopologyFactory = (ctx) => {
  const scratch = new Scratch(ctx.prefix);
  return {
    name: 'raw-node-vxlan',
    kind: 'cross-node',
    baseline: true,
    description: 'node netns to node netns through a plain VXLAN device on each, over raw-node-veth\'s underlay',
    async setup() {
      const nodes = await twoNodesOnUnderlay(scratch);
      const overlay = (i: number): string => `10.221.0.${i + 1}`;
      for (const [i, n] of nodes.entries()) {
        const peer = nodes[1 - i]!;
        await ip('-n', n.netns, 'link', 'add', 'vx0', 'mtu', '1450', 'type', 'vxlan', 'id', '42', 'local', n.ip, 'remote', peer.ip, 'dstport', '4789', 'dev', 'eth0');
        await ip('-n', n.netns, 'addr', 'add', `${overlay(i)}/24`, 'dev', 'vx0');
        await ip('-n', n.netns, 'link', 'set', 'vx0', 'up');
      }
      return { client: nodes[0].netns, server: nodes[1].netns, serverIp: overlay(1) };
    },
    teardown: () => scratch.teardown(),
  };
};

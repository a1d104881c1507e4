/**
 * raw-node-veth, the cross-node limit: two node netns on the underlay (each a veth to a Linux bridge in a third
 * netns), measured node to node. Pod-to-pod across nodes cannot beat this path, which it always includes.
 */
import { Scratch } from '../lib/netns';
import { twoNodesOnUnderlay } from './build';
import type { TopologyFactory } from './topology';

export const rawNodeVeth: TopologyFactory = (ctx) => {
  const scratch = new Scratch(ctx.prefix);
  return {
    name: 'raw-node-veth',
    kind: 'cross-node',
    baseline: true,
    description: 'node netns to node netns over the underlay: veth, Linux bridge (own netns), veth',
    async setup() {
      const [node1, node2] = await twoNodesOnUnderlay(scratch);
      return { client: node1.netns, server: node2.netns, serverIp: node2.ip };
    },
    teardown: () => scratch.teardown(),
  };
};

/**
 * raw-node-veth, the cross-node limit: two node netns on the underlay (each a veth to a Linux bridge in a third
 * netns), measured node to node. Pod-to-pod across nodes cannot beat this path, which it always includes.
 */
import { Scratch } from '../lib/netns';
import { createUnderlay } from './build';
import type { TopologyFactory } from './topology';

export const rawNodeVeth: TopologyFactory = (ctx) => {
  const scratch = new Scratch(ctx.prefix);
  return {
    name: 'raw-node-veth',
    kind: 'cross-node',
    baseline: true,
    description: 'node netns to node netns over the underlay: veth, Linux bridge (own netns), veth',
    async setup() {
      const node1 = await scratch.netns('node1');
      const node2 = await scratch.netns('node2');
      await createUnderlay(scratch, [
        { netns: node1, cidr: '10.220.0.1/24' },
        { netns: node2, cidr: '10.220.0.2/24' },
      ]);
      return { client: node1, server: node2, serverIp: '10.220.0.2' };
    },
    teardown: () => scratch.teardown(),
  };
};

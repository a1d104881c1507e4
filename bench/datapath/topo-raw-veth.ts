/** raw-veth, the same-node limit: two pods joined by one veth pair and nothing else (no node, no routing). */
import { Scratch } from '../lib/netns';
import { joinByVeth } from './build';
import type { TopologyFactory } from './topology';

export const rawVeth: TopologyFactory = (ctx) => {
  const scratch = new Scratch(ctx.prefix);
  return {
    name: 'raw-veth',
    kind: 'same-node',
    baseline: true,
    description: 'two pod netns joined by one veth pair, /24 addresses',
    async setup() {
      const client = await scratch.netns('pod-a');
      const server = await scratch.netns('pod-b');
      await joinByVeth({ netns: client, ifName: 'eth0', cidr: '10.210.0.1/24' }, { netns: server, ifName: 'eth0', cidr: '10.210.0.2/24' });
      return { client, server, serverIp: '10.210.0.2' };
    },
    teardown: () => scratch.teardown(),
  };
};

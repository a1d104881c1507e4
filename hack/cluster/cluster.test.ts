/**
 * Regression (a routed-cluster flake by prefix hash): the underlay used to be fd00:X::/64 with X derived from
 * the prefix, so X = 244 put every node's eth0 inside the default pod pool fd00:244::/56 and IPv6 routes to
 * the other node's blocks failed. No underlay index may overlap the default pool, in either family.
 */
import { Cluster } from './cluster';

test('no underlay index puts a node address inside the default pod pool (fd00:244::/56, 10.244.0.0/16)', () => {
  for (let x = 1; x <= 254; x++) {
    const c = new Cluster({ prefix: 'plxu', underlayIndex: x, nodes: 2, rootDir: '/tmp/plxu' });
    for (const node of c.nodes) expect([x, node.ipv6.startsWith('fd00:'), node.ipv4.startsWith('10.')]).toEqual([x, false, false]);
  }
});

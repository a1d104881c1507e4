/**
 * NodeRoutes against a real netns, driven by a placement the test changes: routes (and in vxlan mode the
 * neighbour and FDB entries) appear when another node claims a block and go when it gives the block back;
 * routes plexus-routed did not write are never touched. Witnesses: `ip route`, `ip neigh`, `bridge fdb`.
 */
import pino from 'pino';
import { NodeRoutes, type Placement } from '../../delegates/routed/node-routes';
import { Netlink } from '../../kernel';
import { rand, run } from '../helpers/plexus-harness';

const log = pino({ level: 'silent' });

function placement(blocks: Placement['blocks']): Placement {
  return {
    blocks,
    borrowed: [],
    nodes: {
      self: { info: { underlay4: '192.168.55.1', underlay6: 'fd00:55::1', vtepMac: '02:00:00:00:55:01' }, alive: true },
      other: { info: { underlay4: '192.168.55.2', underlay6: 'fd00:55::2', vtepMac: '02:00:00:00:55:02' }, alive: true },
    },
  };
}

const json = (ns: string, args: string[]): any[] => JSON.parse(run('ip', ['-n', ns, '-j', ...args]).stdout || '[]');

describe.each(['native', 'vxlan'] as const)('node routes in %s mode', (mode) => {
  const ns = `plxt-${rand()}-routes`;
  let nl: Netlink;
  let current = placement([]);

  beforeAll(async () => {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    run('ip', ['-n', ns, 'addr', 'add', '192.168.55.1/24', 'dev', 'eth0']);
    run('ip', ['-n', ns, 'addr', 'add', 'fd00:55::1/64', 'dev', 'eth0', 'nodad']);
    for (const l of ['eth0', 'eth0p']) run('ip', ['-n', ns, 'link', 'set', l, 'up']);
    run('ip', ['-n', ns, 'link', 'add', 'plexus.vxlan', 'type', 'vxlan', 'id', '4096', 'dstport', '4789', 'local', '192.168.55.1', 'dev', 'eth0', 'nolearning']);
    run('ip', ['-n', ns, 'link', 'set', 'plexus.vxlan', 'up']);
    // A route somebody else wrote, through the same device: must survive every sync.
    run('ip', ['-n', ns, 'route', 'add', '10.250.0.0/24', 'via', '192.168.55.9', 'dev', 'eth0']);
    nl = await Netlink.open(`/var/run/netns/${ns}`);
  });

  afterAll(() => {
    nl?.close();
    run('ip', ['netns', 'del', ns], { allowFail: true });
  });

  const routes = (): NodeRoutes => {
    const index = (name: string): number => json(ns, ['link', 'show', name])[0].ifindex;
    return new NodeRoutes(nl, { placement: async () => current }, {
      self: 'self', mode, underlayIndex: index('eth0'), ...(mode === 'vxlan' ? { vxlanIndex: index('plexus.vxlan') } : {}), intervalMs: 1000,
    }, log);
  };

  test('a claim appears, a release disappears, foreign routes stay', async () => {
    const r = routes();
    current = placement([
      { cidr: '10.244.1.0/26', pool: 'pods', family: 4, node: 'other' },
      { cidr: 'fd00:244::100/122', pool: 'pods', family: 6, node: 'other' },
      { cidr: '10.244.2.0/26', pool: 'pods', family: 4, node: 'self' },
    ]);
    await r.sync();
    const v4 = json(ns, ['route', 'show', 'proto', '180']);
    const v6 = json(ns, ['-6', 'route', 'show', 'proto', '180']);
    expect(v4.map((x) => x.dst)).toEqual(['10.244.1.0/26']);
    expect(v6.map((x) => x.dst)).toEqual(['fd00:244::100/122']);
    if (mode === 'native') {
      expect(v4[0]).toMatchObject({ gateway: '192.168.55.2', dev: 'eth0' });
      expect(v6[0]).toMatchObject({ gateway: 'fd00:55::2', dev: 'eth0' });
    } else {
      expect(v4[0]).toMatchObject({ gateway: '10.244.1.0', dev: 'plexus.vxlan', flags: ['onlink'] });
      expect(json(ns, ['neigh', 'show', 'dev', 'plexus.vxlan']).map((n) => [n.dst, n.lladdr])).toEqual(
        expect.arrayContaining([['10.244.1.0', '02:00:00:00:55:02'], ['fd00:244::100', '02:00:00:00:55:02']]),
      );
      expect(run('ip', ['netns', 'exec', ns, 'bridge', 'fdb', 'show', 'dev', 'plexus.vxlan']).stdout).toContain('02:00:00:00:55:02 dst 192.168.55.2 self permanent');
    }
    await r.sync();
    expect(r.lastChanges).toBe(0); // nothing to do the second time

    current = placement([{ cidr: '10.244.2.0/26', pool: 'pods', family: 4, node: 'self' }]);
    await r.sync();
    expect(json(ns, ['route', 'show', 'proto', '180'])).toEqual([]);
    expect(json(ns, ['-6', 'route', 'show', 'proto', '180'])).toEqual([]);
    expect(json(ns, ['route', 'show', '10.250.0.0/24'])).toHaveLength(1);
    if (mode === 'vxlan') {
      expect(json(ns, ['neigh', 'show', 'dev', 'plexus.vxlan']).filter((n) => (n.state ?? []).includes('PERMANENT'))).toEqual([]);
      expect(run('ip', ['netns', 'exec', ns, 'bridge', 'fdb', 'show', 'dev', 'plexus.vxlan']).stdout).not.toContain('02:00:00:00:55:02');
    }
  });

  test('a node whose registration lapses (its daemon restarting) keeps its routes', async () => {
    const r = routes();
    current = placement([{ cidr: '10.244.3.0/26', pool: 'pods', family: 4, node: 'other' }]);
    await r.sync();
    current = { ...current, nodes: { self: current.nodes['self']!, other: { info: {}, alive: false } } };
    await r.sync();
    expect(json(ns, ['route', 'show', 'proto', '180']).map((x) => x.dst)).toEqual(['10.244.3.0/26']);
    current = placement([]);
    await r.sync();
  });
});

/** The pure half of node routing: which routes, neighbours and FDB entries a placement asks for. */
import { plan, type Placement } from './node-routes';
import { RTPROT_PLEXUS } from './options';

const placement: Placement = {
  blocks: [
    { cidr: '10.244.0.0/26', pool: 'pods', family: 4, node: 'n1' },
    { cidr: '10.244.0.64/26', pool: 'pods', family: 4, node: 'n2' },
    { cidr: 'fd00:244::40/122', pool: 'pods', family: 6, node: 'n2' },
    { cidr: '10.244.0.128/26', pool: 'pods', family: 4, node: 'n3' },
  ],
  borrowed: [
    { ip: '10.244.0.70', family: 4, node: 'n1' }, // ours, inside n2's block: nothing to route here
    { ip: '10.244.0.5', family: 4, node: 'n2' }, // n2 borrowed from our block
  ],
  nodes: {
    n1: { info: { underlay4: '192.168.1.1', underlay6: 'fd00:1::1', vtepMac: '02:00:00:00:00:01' }, alive: true },
    n2: { info: { underlay4: '192.168.1.2', underlay6: 'fd00:1::2', vtepMac: '02:00:00:00:00:02' }, alive: true },
    n3: { info: { underlay4: '192.168.1.3' }, alive: false },
  },
};

describe('node routes plan', () => {
  test('native: other nodes\' blocks and borrowed addresses via their underlay address; nothing for our own', () => {
    const warnings: string[] = [];
    const want = plan(placement, { self: 'n1', mode: 'native', underlayIndex: 2 }, (w) => warnings.push(w));
    expect([...want.routes.values()]).toEqual([
      { dst: '10.244.0.64/26', gateway: '192.168.1.2', oifIndex: 2, protocol: RTPROT_PLEXUS },
      { dst: 'fd00:244::40/122', gateway: 'fd00:1::2', oifIndex: 2, protocol: RTPROT_PLEXUS },
      { dst: '10.244.0.128/26', gateway: '192.168.1.3', oifIndex: 2, protocol: RTPROT_PLEXUS },
      { dst: '10.244.0.5/32', gateway: '192.168.1.2', oifIndex: 2, protocol: RTPROT_PLEXUS },
    ]);
    expect(want.neighbours.size + want.fdb.size).toBe(0);
    expect(warnings).toEqual([]);
  });

  test('vxlan: onlink via the block\'s first address, a neighbour for it, one FDB entry per remote VTEP', () => {
    const warnings: string[] = [];
    const want = plan(placement, { self: 'n1', mode: 'vxlan', underlayIndex: 2, vxlanIndex: 9 }, (w) => warnings.push(w));
    expect(want.routes.get('10.244.0.64/26')).toEqual({ dst: '10.244.0.64/26', gateway: '10.244.0.64', oifIndex: 9, onlink: true, protocol: RTPROT_PLEXUS });
    expect(want.routes.get('fd00:244::40/122')).toMatchObject({ gateway: 'fd00:244::40', onlink: true });
    expect(want.routes.get('10.244.0.5/32')).toMatchObject({ gateway: '10.244.0.5', oifIndex: 9 });
    expect(want.neighbours.get('10.244.0.64')).toBe('02:00:00:00:00:02');
    expect([...want.fdb]).toEqual([['02:00:00:00:00:02', '192.168.1.2']]);
    expect(warnings).toEqual(['node n3 has published no VTEP: 10.244.0.128/26 is not routed']);
  });

  test('a node without an address of the block\'s family is skipped with a warning', () => {
    const warnings: string[] = [];
    const p: Placement = { ...placement, blocks: [{ cidr: 'fd00:244::80/122', pool: 'pods', family: 6, node: 'n3' }], borrowed: [] };
    expect(plan(p, { self: 'n1', mode: 'native', underlayIndex: 2 }, (w) => warnings.push(w)).routes.size).toBe(0);
    expect(warnings).toEqual(['node n3 has no IPv6 underlay address: fd00:244::80/122 is not routed']);
  });
});

/**
 * Ipam.placement(): what the routed datapath reads to route between nodes. Two nodes on one shared store,
 * in memory and on the local store, as two daemons would share it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Cluster, pod } from '../../test/helpers/ipam/ipam-helpers';
import { LocalStore, MemoryStore, type Placement } from '../index';
import type { Store } from '../stores/store';

const BLUE = { name: 'blue', cidrs: ['10.0.0.0/24', 'fd00::/120'], gateway: ['10.0.0.1', 'fd00::1'] };
const TINY = { name: 'tiny', cidrs: ['10.9.0.0/28'], blockSize: 30 }; // blocks of 4: .1-.3, then .4-.7, ...
const INFO_A = { underlay4: '192.168.200.1', underlay6: 'fd00:200::1', vtepMac: '02:00:00:00:00:0a' };
const INFO_B = { underlay4: '192.168.200.2' };

const req = (name: string, cid: string, extra: Record<string, unknown> = {}) =>
  ({ pod: pod(name), containerId: cid, ifName: 'net1', network: 'blue-net', pool: 'blue', ...extra });

const owners = (p: Placement): string[] => p.blocks.map((b) => `${b.cidr} ${b.pool} v${b.family} ${b.node}`);

describe.each([
  ['MemoryStore', async () => ({ store: new MemoryStore() as Store, done: async () => undefined })],
  ['LocalStore', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-placement-'));
    const store = await LocalStore.open(dir);
    return { store: store as Store, done: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    } };
  }],
])('placement on a shared %s', (_name, make) => {
  let cluster: Cluster;
  let done: () => Promise<void>;
  beforeEach(async () => {
    const h = await make();
    done = h.done;
    cluster = new Cluster(h.store, [BLUE, TINY]);
    await cluster.add('a', { nodeInfo: INFO_A });
    await cluster.add('b', { nodeInfo: INFO_B });
  });
  afterEach(async () => {
    for (const n of cluster.nodes.values()) await n.ipam.close();
    await done();
  });
  const ipam = (n: string) => cluster.node(n).ipam;

  test('both nodes\' claims show up, with the right node, on either node; nodes publish their info', async () => {
    await ipam('a').allocate(req('p1', 'c1'));
    await ipam('b').allocate(req('p2', 'c2'));
    for (const reader of ['a', 'b']) {
      const p = await ipam(reader).placement();
      expect(owners(p)).toEqual(['10.0.0.0/26 blue v4 a', '10.0.0.64/26 blue v4 b', 'fd00::/122 blue v6 a', 'fd00::40/122 blue v6 b']);
      expect(p.borrowed).toEqual([]);
      expect(p.nodes).toEqual({ a: { info: INFO_A, alive: true }, b: { info: INFO_B, alive: true } });
    }
  });

  test('an address held in another node\'s block shows up as borrowed by its holder; the owner\'s own do not', async () => {
    await ipam('a').allocate(req('p1', 'c1'));
    await ipam('b').allocate(req('p2', 'c2', { ip: ['10.0.0.60'] }));
    await ipam('a').allocate(req('p3', 'c3', { ip: ['10.0.0.40'] })); // a's own block, outside its reserve
    const p = await ipam('a').placement();
    expect(p.borrowed).toEqual([{ ip: '10.0.0.60', family: 4, node: 'b' }]);
    expect(owners(p)).toEqual(['10.0.0.0/26 blue v4 a', 'fd00::/122 blue v6 a']);
    await ipam('b').release('c2');
    expect((await ipam('a').placement()).borrowed).toEqual([]);
  });

  test('a parked sticky address is not placed; attached again elsewhere, it is', async () => {
    await ipam('a').allocate(req('p1', 'c1', { family: 'v4' }));
    const first = await ipam('b').allocate(req('web-0', 'c2', { family: 'v4', sticky: true }));
    const ip = first.addresses[0]?.ip as string;
    await ipam('b').release('c2');
    expect((await ipam('a').placement()).borrowed).toEqual([]);
    const again = await ipam('a').allocate(req('web-0', 'c3', { family: 'v4', sticky: true }));
    expect(again.addresses[0]?.ip).toBe(ip);
    // It lives in b's block and a holds it now.
    expect((await ipam('b').placement()).borrowed).toEqual([{ ip, family: 4, node: 'a' }]);
  });

  test('a block given back by GC disappears', async () => {
    for (let i = 0; i < 4; i++) await ipam('a').allocate(req(`t${i}`, `t${i}`, { pool: 'tiny' }));
    expect(owners(await ipam('b').placement())).toEqual(['10.9.0.0/30 tiny v4 a', '10.9.0.4/30 tiny v4 a']);
    await ipam('a').release('t3'); // the only address of the second block
    await ipam('a').gc();
    cluster.clock.advance(61_000);
    expect((await ipam('a').gc()).released.map((c) => c.kind)).toEqual(['block']);
    expect(owners(await ipam('b').placement())).toEqual(['10.9.0.0/30 tiny v4 a']);
  });

  test('a node that left is named by its blocks but not alive; a lapsed registration publishes its info again', async () => {
    await ipam('a').allocate(req('p1', 'c1', { family: 'v4' }));
    await ipam('b').allocate(req('p2', 'c2', { family: 'v4' }));
    await ipam('b').close({ leave: true });
    cluster.nodes.delete('b');
    const p = await ipam('a').placement();
    expect(owners(p)).toEqual(['10.0.0.0/26 blue v4 a', '10.0.0.64/26 blue v4 b']);
    expect(p.nodes).toEqual({ a: { info: INFO_A, alive: true }, b: { info: {}, alive: false } });
  });
});

test('re-registration after a lapsed lease keeps publishing the node info', async () => {
  const shared = new MemoryStore();
  const cluster = new Cluster(shared, [BLUE]);
  await cluster.add('a', { nodeInfo: INFO_A });
  shared.expireNode('a');
  expect((await cluster.node('a').ipam.placement()).nodes).toEqual({});
  await cluster.node('a').ipam.sync(); // notices the lapsed registration and registers again
  expect((await cluster.node('a').ipam.placement()).nodes).toEqual({ a: { info: INFO_A, alive: true } });
  await cluster.node('a').ipam.close();
});

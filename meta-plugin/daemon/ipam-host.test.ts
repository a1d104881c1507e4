/**
 * The daemon's IPAM service over a fake source: implicit pools in force before the first request, garbage
 * collection from the source's pods, StatefulSet pods' sticky addresses.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { type CniCommand, parseRequest } from '../../cni/request';
import type { NadObject, PodObject } from '../planner/types';
import type { Source } from '../source/source';
import { parseDaemonConfig } from './config';
import { IpamHost, ownedByStatefulSet } from './ipam-host';
import { expectEventually } from '../../test/helpers/eventually';

const log = pino({ level: 'silent' });
const NETNS = '/var/run/netns/ipam-host-test';

class FakeSource implements Source {
  pods = new Map<string, PodObject>();
  nads: NadObject[] = [];
  private readonly listeners: (() => void)[] = [];
  /** Set to false to play a source that cannot list NADs (the Source interface does not require it). */
  canList = true;
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  ready(): boolean {
    return true;
  }
  getPod(namespace: string, name: string): PodObject | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }
  async podForAdd(ref: { namespace: string; name: string }): Promise<PodObject | undefined> {
    return this.getPod(ref.namespace, ref.name);
  }
  event(): void {}
  async claimStatus(): Promise<void> {}
  getNad(namespace: string, name: string): NadObject | undefined {
    return this.nads.find((n) => n.namespace === namespace && n.name === name);
  }
  listNads(): readonly NadObject[] {
    return this.canList ? this.nads : [];
  }
  listPods(): readonly PodObject[] {
    return [...this.pods.values()];
  }
  /** IPAMClaims (names in `default`); undefined: not listed yet. */
  claims: string[] | undefined = [];
  otherObjects(kind: string): readonly Record<string, unknown>[] {
    return kind === 'IPAMClaim' ? (this.claims ?? []).map((name) => ({ kind, metadata: { namespace: 'default', name } })) : [];
  }
  listed(kind: string): boolean {
    return kind !== 'IPAMClaim' || this.claims !== undefined;
  }
  peersListed(): boolean {
    return true;
  }
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
  changed(): void {
    for (const l of this.listeners) l();
  }
  async publishStatus(): Promise<void> {}
  peers(): [] {
    return [];
  }
  describe(): Record<string, unknown> {
    return { type: 'fake' };
  }
  getStatus(): undefined {
    return undefined;
  }
  addPod(name: string, extra: Partial<PodObject> & Record<string, unknown> = {}): void {
    this.pods.set(`default/${name}`, { namespace: 'default', name, annotations: {}, ...extra });
  }
}

const nad = (name: string, ipam: Record<string, unknown>): NadObject => ({
  namespace: 'default', name, annotations: {},
  config: JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'macvlan', master: 'eth0', ipam: { type: 'plexus-ipam', ...ipam } }] }),
});

let dir: string;
let clock: number;
let services: IpamHost[];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ipam-host-'));
  clock = 1_700_000_000_000;
  services = [];
});
afterEach(async () => {
  for (const s of services) await s.close().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(source: FakeSource, ipam: Record<string, unknown> = {}): Promise<IpamHost> {
  const config = parseDaemonConfig({
    clusterNetwork: 'cluster', stateDir: dir, nodeName: 'n1',
    ipam: { pools: [{ name: 'blue', cidrs: ['10.50.0.0/24'] }], syncIntervalMs: 0, gcGraceMs: 1000, gcIntervalSeconds: 0, ...ipam },
  });
  const s = await IpamHost.open(config, source, log, { clock: () => clock });
  services.push(s);
  return s;
}

async function cni(s: IpamHost, command: CniCommand, network: string, ipam: Record<string, unknown>, c: { cid: string; pod?: string }): Promise<string> {
  const env = {
    CNI_COMMAND: command, CNI_CONTAINERID: c.cid, CNI_NETNS: NETNS, CNI_IFNAME: 'net1', CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: c.pod === undefined ? '' : `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${c.pod}`,
  };
  const conf = { cniVersion: '1.0.0', name: network, type: 'macvlan', ipam: { type: 'plexus-ipam', ...ipam } };
  const out = await s.plugin(log).handle(parseRequest(env, JSON.stringify(conf), { isNetns: (p) => p === NETNS }));
  return out === undefined ? '' : JSON.stringify(out);
}
const ipOf = (out: string): string => JSON.parse(out).ips[0].address;

describe('implicit pools at start', () => {
  test("the pools the source's NADs imply are in force before the first request; identical ranges share one", async () => {
    const source = new FakeSource();
    source.nads = [nad('storage', { range: '10.81.0.0/24' }), nad('storage-b', { range: '10.81.0.0/24' }), nad('data', { pool: 'blue' })];
    const s = await open(source);
    const implicit = s.ipam.poolSpecs().filter((p) => p.name.startsWith('cni-'));
    expect(implicit.map((p) => p.cidrs)).toEqual([['10.81.0.0/24']]);
  });

  test('a NAD whose range overlaps another differently is reported, not fatal; its ADD gets the error', async () => {
    const source = new FakeSource();
    source.nads = [nad('first', { range: '10.81.0.0/24' }), nad('second', { range: '10.81.0.0/25' })];
    const s = await open(source);
    expect(s.ipam.poolSpecs().filter((p) => p.name.startsWith('cni-'))).toHaveLength(1);
    await expect(cni(s, 'ADD', 'second', { range: '10.81.0.0/25' }, { cid: 'c1', pod: 'p1' })).rejects.toMatchObject({
      kind: 'InvalidConfig', message: expect.stringMatching(/ipam\.range 10\.81\.0\.0\/25 of network "second" overlaps the range of network "first"/),
    });
  });

  test('after a restart, implicit pools registered before it are in force again, whatever the source lists', async () => {
    const source = new FakeSource();
    source.canList = false;
    let s = await open(source);
    const ip = ipOf(await cni(s, 'ADD', 'storage', { range: '10.81.0.0/24' }, { cid: 'c1', pod: 'p1' }));
    const name = s.ipam.poolSpecs().find((p) => p.name.startsWith('cni-'))?.name;
    await s.close();
    services = [];
    s = await open(source);
    expect(s.ipam.poolSpec(name as string)?.cidrs).toEqual(['10.81.0.0/24']);
    expect((await s.ipam.pools()).map((p) => p.pool)).toContain(name);
    expect(ipOf(await cni(s, 'ADD', 'storage', { range: '10.81.0.0/24' }, { cid: 'c1', pod: 'p1' }))).toBe(ip);
  });
});

describe('garbage collection from the source', () => {
  const alloc = (s: IpamHost, name: string, cid: string, namespace = 'default') =>
    s.ipam.allocate({ pod: { namespace, name }, containerId: cid, ifName: 'net1', network: 'blue-net', pool: 'blue' });
  const holders = (s: IpamHost): string[] => s.ipam.pods().map((p) => `${p.namespace}/${p.name}`).sort();

  test('a pod the source stops listing loses its addresses after the grace period; others never do this way', async () => {
    const source = new FakeSource();
    source.addPod('web');
    source.addPod('young');
    const s = await open(source);
    await alloc(s, 'web', 'c1');
    await alloc(s, 'ghost', 'c2'); // never listed: a container without a manifest
    await alloc(s, '8f3a', 'c3', '_cni'); // a pod-less CNI call
    expect((await s.gcFromSource())?.waiting).toEqual([]); // a tick while web runs: the source lists it
    source.pods.delete('default/web');
    expect((await s.gcFromSource())?.waiting.map((c) => c.pod)).toEqual(['default/web']);
    clock += 999;
    expect((await s.gcFromSource())?.released).toEqual([]);
    // A pod ADDed now and unlisted soon after: its record is younger than the grace, it waits its own.
    await alloc(s, 'young', 'c4');
    source.changed();
    source.pods.delete('default/young');
    clock += 1;
    expect((await s.gcFromSource())?.released.map((c) => c.pod)).toEqual(['default/web']);
    expect(holders(s)).toEqual(['_cni/8f3a', 'default/ghost', 'default/young']);
    clock += 1000;
    expect((await s.gcFromSource())?.released.map((c) => c.pod)).toEqual(['default/young']);
    clock += 60_000;
    await s.gcFromSource();
    expect(holders(s)).toEqual(['_cni/8f3a', 'default/ghost']);
  });

  test('a pod listed again before the grace period ends keeps its addresses (re-check right before release)', async () => {
    const source = new FakeSource();
    source.addPod('web');
    const s = await open(source);
    await alloc(s, 'web', 'c1');
    source.changed(); // any change of the source's view notes which pods it lists
    source.pods.delete('default/web');
    expect((await s.gcFromSource())?.waiting.map((c) => c.pod)).toEqual(['default/web']);
    clock += 1000;
    source.addPod('web');
    expect((await s.gcFromSource())?.released).toEqual([]);
    expect(holders(s)).toEqual(['default/web']);
  });

  test('a pod the source never listed is never released this way', async () => {
    const source = new FakeSource();
    const s = await open(source);
    await alloc(s, 'web', 'c1');
    await s.gcFromSource();
    clock += 10_000;
    await s.gcFromSource();
    expect(holders(s)).toEqual(['default/web']);
  });

  test('gcIntervalSeconds runs it on a timer', async () => {
    const source = new FakeSource();
    source.addPod('web');
    const s = await open(source, { gcIntervalSeconds: 0.05, gcGraceMs: 0 });
    await alloc(s, 'web', 'c1');
    source.changed();
    source.pods.delete('default/web');
    for (let i = 0; i < 100 && holders(s).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(holders(s)).toEqual([]);
  });
});

describe('StatefulSet pods', () => {
  test('ownerReferences kind StatefulSet: the same name gets its address back after DEL and ADD with a new sandbox', async () => {
    const source = new FakeSource();
    source.addPod('db-0', { ownerReferences: [{ kind: 'StatefulSet', name: 'db' }] });
    source.addPod('web-x', { ownerReferences: [{ kind: 'ReplicaSet', name: 'web' }] });
    const s = await open(source);
    const range = { range: '10.81.0.0/24' };
    const first = ipOf(await cni(s, 'ADD', 'storage', range, { cid: 'c1', pod: 'db-0' }));
    const other = ipOf(await cni(s, 'ADD', 'storage', range, { cid: 'c2', pod: 'web-x' }));
    await cni(s, 'DEL', 'storage', range, { cid: 'c1', pod: 'db-0' });
    await cni(s, 'DEL', 'storage', range, { cid: 'c2', pod: 'web-x' });
    expect(ipOf(await cni(s, 'ADD', 'storage', range, { cid: 'c3', pod: 'web-x' }))).not.toBe(other);
    expect(ipOf(await cni(s, 'ADD', 'storage', range, { cid: 'c4', pod: 'db-0' }))).toBe(first);
    expect(s.ipam.held('c4')[0]?.fixed).toBe('sticky:default/db-0');
  });

  test.each([
    [undefined, false],
    [{ namespace: 'default', name: 'p', annotations: {} }, false],
    [{ namespace: 'default', name: 'p', annotations: {}, ownerReferences: [{ kind: 'StatefulSet', name: 's' }] }, true],
    [{ namespace: 'default', name: 'p', annotations: {}, ownerReferences: 'StatefulSet' }, false],
  ])('ownedByStatefulSet(%j) is %s', (pod, want) => {
    expect(ownedByStatefulSet(pod as PodObject | undefined)).toBe(want);
  });
});

describe('IPAMClaims (S38)', () => {
  const claimed = async (s: IpamHost) => (await s.ipam.blocks()).flatMap((b) => b.foreign.filter((f) => f.entry.fixed === 'claim:default/vm0').map((f) => f.ip));

  test('a claim deleted while plexusd was down is released once the claims are listed after the restart, not before', async () => {
    const source = new FakeSource();
    source.claims = ['vm0'];
    let s = await open(source);
    s.noteClaims();
    const a = await s.ipam.allocate({ pod: { namespace: 'default', name: 'vm0-launcher' }, containerId: 'c1', ifName: 'net1', network: 'blue-net', pool: 'blue', claim: 'vm0' });
    await s.ipam.release('c1'); // the pod goes; its claim keeps the address
    expect(await claimed(s)).toEqual([a.addresses[0]?.ip]);
    await s.close();
    services = services.filter((x) => x !== s);
    // Restarted: the claims are not listed yet, then the list comes without vm0 (deleted meanwhile).
    source.claims = undefined;
    s = await open(source);
    s.noteClaims();
    expect(await claimed(s)).toEqual([a.addresses[0]?.ip]);
    source.claims = [];
    source.changed();
    await expectEventually(async () => expect(await claimed(s)).toEqual([]));
  });

  test('a claim never seen as an object is not released by its absence', async () => {
    const source = new FakeSource();
    const s = await open(source);
    await s.ipam.allocate({ pod: { namespace: 'default', name: 'vm0-launcher' }, containerId: 'c1', ifName: 'net1', network: 'blue-net', pool: 'blue', claim: 'vm0' });
    source.changed();
    await new Promise((r) => setTimeout(r, 100));
    expect((await claimed(s)).length).toBe(1);
  });
});

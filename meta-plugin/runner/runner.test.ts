import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PluginCall } from '../../delegates/contract';
import { FakeRegistry, silentLog } from '../../test/helpers/fake-registry';
import { PlexusError } from '../../core/errors';
import type { CniRequest } from '../../cni/request';
import type { ContainerId, IfName, NetnsPath } from '../../cni/ids';
import type { Plan, PlannedAttachment } from '../planner/types';
import type { NetworkConfList } from '../../cni/network-config';
import type { DefaultRouteOps } from './default-route';
import { RecordStore } from './sandbox-records';
import { Runner } from './runner';

const NS = '/var/run/netns/pod-1';
const POD = { namespace: 'team', name: 'web-0' };
// Each network's delegate type, interface, and the addresses its result reports.
const NETS = {
  cluster: { ifName: 'eth0', address: '10.0.0.2/24', gw: '10.0.0.1', statusName: 'cluster' },
  a: { ifName: 'net1', address: '10.1.0.2/24', gw: '10.1.0.1', statusName: 'team/net-a' },
  b: { ifName: 'net2', address: 'fd00:2::2/64', gw: 'fd00:2::1', statusName: 'team/net-b' },
} as const;
type Net = keyof typeof NETS;

let stateDir: string;
let registry: FakeRegistry;
let records: RecordStore;
let routeCalls: [string, string, string[]][];
let routeFault: Error | undefined;
let links: Set<string>;
let faults: Set<string>;
let runner: Runner;

/** A delegate that prints a 1.1.0 result for ADD and fails for `TYPE COMMAND` entries in `faults`. */
function delegate(call: PluginCall, type: string): unknown {
  if (faults.has(`${type} ${call.command}`)) throw new PlexusError('TryAgainLater', `${type} ${call.command} broke`);
  if (call.command !== 'ADD') return undefined;
  const n = NETS[type as Net];
  return {
    cniVersion: '1.1.0',
    interfaces: [{ name: call.env.ifName, mac: '02:00:00:00:00:01', sandbox: call.env.netns }],
    ips: [{ address: n.address, gateway: n.gw, interface: 0 }],
    routes: type === 'cluster' ? [{ dst: '0.0.0.0/0', gw: n.gw }, { dst: '10.96.0.0/12' }] : [],
  };
}

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'plexus-runner-'));
  registry = new FakeRegistry();
  for (const t of Object.keys(NETS)) registry.on(t, delegate);
  records = new RecordStore(stateDir);
  routeCalls = [];
  routeFault = undefined;
  links = new Set(Object.values(NETS).map((n) => n.ifName));
  faults = new Set();
  const routes: DefaultRouteOps = {
    setDefaultRoute: async (ns, ifName, gws) => {
      if (routeFault) throw routeFault;
      routeCalls.push([ns, ifName, gws]);
    },
  };
  runner = new Runner({
    records,
    registry,
    binDirs: ['/opt/plexus/bin'],
    delegateTimeoutMs: 1000,
    routes,
    linkExists: async (_ns, ifName) => links.has(ifName),
    deviceInfoDir: join(stateDir, 'devinfo'),
  });
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

function conf(type: Net, cniVersion = '1.1.0'): NetworkConfList {
  return { cniVersion, name: `${type}-net`, single: true, plugins: [{ type }] };
}
function attachment(type: Net, index: number, over: Partial<PlannedAttachment> = {}): PlannedAttachment {
  const n = NETS[type];
  const att: PlannedAttachment = { index, origin: index === 0 ? 'cluster' : 'annotation', statusName: n.statusName, isDefault: index === 0, ifName: n.ifName as IfName, conf: conf(type), runtimeConfig: {} };
  if (index > 0) att.nad = { namespace: 'team', name: n.statusName.split('/')[1]! };
  return { ...att, ...over };
}
const plan = (...attachments: PlannedAttachment[]): Plan => ({ attachments, warnings: [] });
const PLAN = () => plan(attachment('cluster', 0), attachment('a', 1), attachment('b', 2));

function request(command: CniRequest['command'], over: Partial<CniRequest> = {}): CniRequest {
  return {
    command,
    containerId: 'c1' as ContainerId,
    ifName: 'eth0' as IfName,
    netns: NS as NetnsPath,
    argsRaw: 'K8S_POD_NAMESPACE=team;K8S_POD_NAME=web-0',
    args: {},
    path: ['/opt/cni/bin'],
    config: {},
    cniVersion: '1.0.0',
    podRef: POD,
    ...over,
  };
}
const add = (p: Plan = PLAN(), over: Partial<CniRequest> = {}) => runner.add(request('ADD', over), p, silentLog);
const rejection = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (e: PlexusError) => e);

describe('ADD', () => {
  test.each<CniRequest['cniVersion']>(['0.3.1', '0.4.0', '1.0.0', '1.1.0'])('records every attachment and returns the cluster result in %s', async (v) => {
    const { result, record } = await add(PLAN(), { cniVersion: v });
    expect(registry.trace()).toEqual(['cluster ADD', 'a ADD', 'b ADD']);
    const ip = { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0, ...(v.startsWith('0.') ? { version: '4' } : {}) };
    expect(result).toEqual({
      cniVersion: v,
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: NS }],
      ips: [ip],
      routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '10.96.0.0/12' }],
    });
    const onDisk = records.get('c1' as ContainerId, 'eth0' as IfName)!;
    expect(onDisk).toEqual(record);
    expect(onDisk).toMatchObject({ kind: 'plexusSandboxV1', containerId: 'c1', ifName: 'eth0', netns: NS, pod: POD, cniVersion: v });
    expect(onDisk.attachments.map((a) => [a.statusName, a.ifName, a.state])).toEqual([
      ['cluster', 'eth0', 'added'],
      ['team/net-a', 'net1', 'added'],
      ['team/net-b', 'net2', 'added'],
    ]);
    expect(onDisk.status!.map((s) => [s.name, s.interface, s.ips, s.default])).toEqual([
      ['cluster', 'eth0', ['10.0.0.2'], true],
      ['team/net-a', 'net1', ['10.1.0.2'], false],
      ['team/net-b', 'net2', ['fd00:2::2'], false],
    ]);
    expect(onDisk.status![0]!['default-route']).toEqual(['10.0.0.1']);
    expect(routeCalls).toEqual([]);
  });

  test('each delegate gets the sandbox env, its own ifName, and binDirs before CNI_PATH', async () => {
    await add();
    expect(registry.calls.map((c) => c.env)).toEqual(
      (['cluster', 'a', 'b'] as Net[]).map((t) => ({ containerId: 'c1', netns: NS, ifName: NETS[t].ifName, args: request('ADD').argsRaw, path: ['/opt/plexus/bin', '/opt/cni/bin'] })),
    );
  });
});

describe('S32: an ADD failure undoes earlier attachments in reverse and removes the record', () => {
  test.each<[Net, string[]]>([
    ['cluster', ['cluster ADD', 'cluster DEL']],
    ['a', ['cluster ADD', 'a ADD', 'a DEL', 'cluster DEL']],
    ['b', ['cluster ADD', 'a ADD', 'b ADD', 'b DEL', 'a DEL', 'cluster DEL']],
  ])('ADD of %s fails', async (failing, trace) => {
    faults.add(`${failing} ADD`);
    const err = await rejection(add());
    const n = NETS[failing];
    expect(err).toMatchObject({ kind: 'TryAgainLater', cniCode: 11 });
    expect(err.message).toContain(`failed to add network "${n.statusName}" (${n.ifName}) for pod team/web-0`);
    expect(registry.trace()).toEqual(trace);
    // Undone attachments get DEL with the result they printed (CNI 2.2 prevResult).
    for (const c of registry.calls.filter((x) => x.command === 'DEL' && x.type !== failing)) {
      expect(c.config['prevResult']).toMatchObject({ ips: [{ address: NETS[c.type as Net].address }] });
    }
    expect(records.get('c1' as ContainerId, 'eth0' as IfName)).toBeUndefined();
  });

  test('an added attachment whose undo fails is kept in the record for DEL', async () => {
    faults.add('b ADD').add('b DEL').add('a DEL');
    await rejection(add());
    const rec = records.get('c1' as ContainerId, 'eth0' as IfName)!;
    expect(rec.attachments.map((a) => [a.statusName, a.state])).toEqual([['team/net-a', 'added']]);
  });

  test('a default-route failure undoes everything', async () => {
    routeFault = new Error('ENODEV');
    const err = await rejection(add(plan(attachment('cluster', 0), attachment('a', 1, { defaultRoute: [] }))));
    expect(err).toMatchObject({ kind: 'Internal', message: expect.stringContaining('failed to finish ADD for pod team/web-0: ENODEV') });
    expect(registry.trace()).toEqual(['cluster ADD', 'a ADD', 'a DEL', 'cluster DEL']);
    expect(records.list()).toEqual([]);
  });
});

describe('S33: DEL tears everything down in reverse, past failures', () => {
  test('one failing attachment: the others go, DeleteIncomplete names it, a second DEL retries only it', async () => {
    await add();
    registry.calls.length = 0;
    faults.add('a DEL');
    const err = await rejection(runner.del(request('DEL'), silentLog));
    expect(err).toMatchObject({ kind: 'DeleteIncomplete', cniCode: 107 });
    expect(err.message).toBe('failed to delete 1 attachment(s) of pod team/web-0: team/net-a (net1): network "a-net": a DEL broke');
    expect(registry.trace()).toEqual(['b DEL', 'a DEL', 'cluster DEL']);
    expect(records.get('c1' as ContainerId, 'eth0' as IfName)!.attachments.map((a) => a.statusName)).toEqual(['team/net-a']);

    registry.calls.length = 0;
    faults.clear();
    const rec = await runner.del(request('DEL', { netns: '' }), silentLog);
    expect(rec!.attachments.map((a) => a.statusName)).toEqual(['team/net-a']);
    expect(registry.trace()).toEqual(['a DEL']);
    expect(registry.calls[0]!.env.netns).toBe('');
    expect(registry.calls[0]!.config['prevResult']).toMatchObject({ ips: [{ address: '10.1.0.2/24' }] });
    expect(records.get('c1' as ContainerId, 'eth0' as IfName)).toBeUndefined();

    registry.calls.length = 0;
    expect(await runner.del(request('DEL'), silentLog)).toBeUndefined();
    expect(registry.calls).toEqual([]);
  });
});

describe('CHECK', () => {
  test('passes when every interface exists and every delegate agrees', async () => {
    await add();
    registry.calls.length = 0;
    await runner.check(request('CHECK'), silentLog);
    expect(registry.trace()).toEqual(['cluster CHECK', 'a CHECK', 'b CHECK']);
  });

  test('aggregates problems, naming each network and interface', async () => {
    await add();
    links.delete('net1');
    faults.add('b CHECK');
    const err = await rejection(runner.check(request('CHECK'), silentLog));
    expect(err).toMatchObject({ kind: 'CheckFailed', cniCode: 108 });
    expect(err.message).toBe(
      `CHECK failed for pod team/web-0: team/net-a (net1): interface net1 is missing from ${NS}; team/net-b (net2): network "b-net": b CHECK broke`,
    );
  });

  test('an attachment whose ADD never completed fails CHECK', async () => {
    await add();
    const rec = records.get('c1' as ContainerId, 'eth0' as IfName)!;
    rec.attachments[2]!.state = 'adding';
    records.put(rec);
    await expect(runner.check(request('CHECK'), silentLog)).rejects.toThrow('team/net-b (net2): ADD did not complete');
  });

  test('no record: unknown container (code 3)', async () => {
    await expect(runner.check(request('CHECK'), silentLog)).rejects.toMatchObject({ kind: 'UnknownContainer', cniCode: 3 });
  });
});

describe('GC (CNI 2.1)', () => {
  const gcPlan = () => plan(attachment('cluster', 0), attachment('a', 1));
  test('removes records not in the valid list, then GCs each network with what remains', async () => {
    await add(gcPlan(), { containerId: 'keep' as ContainerId });
    await add(gcPlan(), { containerId: 'stale' as ContainerId });
    registry.calls.length = 0;
    const extra = { ...conf('b'), name: 'unused-net' };
    await runner.gc([{ containerID: 'keep', ifname: 'eth0' }], [extra], ['/opt/cni/bin'], silentLog);
    expect(records.list().map((r) => r.containerId)).toEqual(['keep']);
    expect(registry.trace()).toEqual(['a DEL', 'cluster DEL', 'b GC', 'cluster GC', 'a GC']);
    const [del] = registry.calls;
    expect(del!.env).toMatchObject({ containerId: 'stale', netns: '' }); // the recorded netns is no netns here
    const gcs = registry.calls.filter((c) => c.command === 'GC').map((c) => [c.config['name'], c.config['cni.dev/valid-attachments']]);
    expect(gcs).toEqual([
      ['unused-net', []],
      ['cluster-net', [{ containerID: 'keep', ifname: 'eth0' }]],
      ['a-net', [{ containerID: 'keep', ifname: 'net1' }]],
    ]);
  });

  test('continues past errors and reports them all', async () => {
    await add(gcPlan(), { containerId: 'stale' as ContainerId });
    faults.add('a DEL').add('cluster GC');
    const err = await rejection(runner.gc([], [conf('cluster')], [], silentLog));
    expect(err).toMatchObject({ kind: 'DelegateFailed' });
    expect(err.message).toMatch(/^GC finished with errors: failed to delete 1 attachment\(s\) of pod team\/web-0: .*a DEL broke; network "cluster-net": cluster GC broke$/);
    expect(records.list()[0]!.attachments.map((a) => a.statusName)).toEqual(['team/net-a']);
  });
});

describe('S19: default-route', () => {
  test.each<[string, string[], string[]]>([
    ['requested gateways', ['10.1.0.254'], ['10.1.0.254']],
    ['empty: the attachment result gateways', [], ['10.1.0.1']],
  ])('%s: routes set through that interface, results and status rewritten', async (_title, requested, gws) => {
    const { result, record } = await add(plan(attachment('cluster', 0), attachment('a', 1, { defaultRoute: requested }), attachment('b', 2)));
    expect(routeCalls).toEqual([[NS, 'net1', gws]]);
    // The cluster result loses its default route (and so does the answer to the runtime); net-a gains them.
    expect(result.routes).toEqual([{ dst: '10.96.0.0/12' }]);
    expect((record.attachments[1]!.result as { routes: unknown[] }).routes).toEqual(gws.map((gw) => ({ dst: '0.0.0.0/0', gw })));
    expect((record.attachments[2]!.result as { routes: unknown[] }).routes).toEqual([]);
    expect(record.status!.map((s) => s['default-route'])).toEqual([undefined, gws, undefined]);
    expect(records.get('c1' as ContainerId, 'eth0' as IfName)).toEqual(record);
  });
});

describe('STATUS (CNI 2.1): forwarded to the cluster network', () => {
  test.each<[string, () => void, number | null]>([
    ['ready', () => undefined, null],
    ['a plugin missing: not available (50)', () => registry.remove('cluster'), 50],
    ['a plugin failing with 11: not available (50)', () => faults.add('cluster STATUS'), 50],
  ])('%s', async (_title, arrange, code) => {
    arrange();
    const run = runner.status(conf('cluster'), [], silentLog);
    if (code === null) await expect(run).resolves.toBeUndefined();
    else await expect(run).rejects.toMatchObject({ cniCode: code });
  });
});

describe('the attachment watcher (MultiNetworkPolicy)', () => {
  let told: string[];
  const watched = () => new Runner({
    records, registry, binDirs: [], delegateTimeoutMs: 1000, linkExists: async () => true, deviceInfoDir: join(stateDir, 'devinfo'),
    routes: { setDefaultRoute: async () => undefined } as unknown as DefaultRouteOps,
    watcher: {
      attached: async (i) => void told.push(`attached ${i.network} ${i.ifName} ${i.ips.join(',')} ${i.pod?.name}`),
      detaching: async (i) => void told.push(`detaching ${i.network} ${i.ifName}`),
    },
  });
  beforeEach(() => {
    told = [];
  });

  test('is told of each secondary attachment after its ADD, before each DEL, never of the cluster network', async () => {
    const r = watched();
    await r.add(request('ADD'), PLAN(), silentLog);
    expect(told).toEqual(['attached team/net-a net1 10.1.0.2 web-0', 'attached team/net-b net2 fd00:2::2 web-0']);
    expect(r.podInterfaces().map((i) => i.id)).toEqual(['c1@net1', 'c1@net2']);
    told = [];
    await r.del(request('DEL'), silentLog);
    expect(told).toEqual(['detaching team/net-b net2', 'detaching team/net-a net1']);
  });

  test('a DEL that fails gives the interface back to the watcher (it stays, and so must its policy)', async () => {
    const r = watched();
    await r.add(request('ADD'), PLAN(), silentLog);
    told = [];
    faults.add('a DEL');
    await rejection(r.del(request('DEL'), silentLog));
    expect(told).toEqual(['detaching team/net-b net2', 'detaching team/net-a net1', 'attached team/net-a net1 10.1.0.2 web-0']);
  });

  test('a failure of the watcher fails the ADD, which rolls back', async () => {
    const r = new Runner({
      records, registry, binDirs: [], delegateTimeoutMs: 1000, linkExists: async () => true, deviceInfoDir: join(stateDir, 'devinfo'),
      routes: { setDefaultRoute: async () => undefined } as unknown as DefaultRouteOps,
      watcher: { attached: async () => { throw new PlexusError('TryAgainLater', 'no hook'); }, detaching: async () => undefined },
    });
    expect(await rejection(r.add(request('ADD'), PLAN(), silentLog))).toMatchObject({ message: expect.stringContaining('no hook') });
    expect(registry.trace()).toEqual(['cluster ADD', 'a ADD', 'a DEL', 'cluster DEL']);
    expect(records.get('c1' as ContainerId, 'eth0' as IfName)).toBeUndefined();
  });
});

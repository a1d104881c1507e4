import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CniResult } from '../../cni/result';
import pino from 'pino';
import { PlexusError, type ErrorKind } from '../../core/errors';
import { type CniCommand, type Env, parseRequest } from '../../cni/request';
import { IpamPlugin, NO_POD_NAMESPACE } from './plugin';
import { cidrsCovering, inlinePoolOf } from './ranges';
import type { CniIpamSection } from './schema';
import { implicitPoolSpec } from './implicit-pools';
import { POOL_NAME_SCHEMA } from '../model/pool-schema';
import { Ipam, MemoryStore } from '../index';
import type { PoolSpec } from '../model/pool';

const NETNS = '/var/run/netns/ipam-test';
const BLUE: PoolSpec = { name: 'blue', cidrs: ['10.50.0.0/16'], gateway: '10.50.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.50.0.1' }] };
const DUAL: PoolSpec = { name: 'dual', cidrs: ['10.51.0.0/24', 'fd51::/120'], gateway: ['10.51.0.1', 'fd51::1'] };

let ipam: Ipam;
let plugin: IpamPlugin;

beforeEach(async () => {
  ipam = await Ipam.open({ node: 'n1', shared: new MemoryStore(), pools: [BLUE, DUAL], syncIntervalMs: 0, gcGraceMs: 0 });
  plugin = new IpamPlugin(ipam, { log: pino({ level: 'silent' }) });
});
afterEach(() => ipam.close());

interface Call {
  cid?: string;
  ifName?: string;
  /** `K8S_POD_NAME`; null: no pod in CNI_ARGS. */
  pod?: string | null;
  version?: string;
  extra?: Record<string, unknown>;
  network?: string;
}

const netConf = (ipamSection: unknown, c: Call = {}): Record<string, unknown> => ({
  cniVersion: c.version ?? '1.1.0', name: c.network ?? 'macnet', type: 'macvlan', master: 'eth0', ipam: ipamSection, ...c.extra,
});

function request(command: CniCommand, conf: Record<string, unknown>, c: Call = {}) {
  const pod = c.pod === undefined ? 'web-0' : c.pod;
  const env: Env = {
    CNI_COMMAND: command, CNI_CONTAINERID: c.cid ?? 'c1', CNI_NETNS: NETNS, CNI_IFNAME: c.ifName ?? 'net1',
    CNI_ARGS: pod === null ? '' : `IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=${pod}`, CNI_PATH: '/opt/cni/bin',
  };
  return parseRequest(env, JSON.stringify(conf), { isNetns: (p) => p === NETNS });
}

async function run(command: CniCommand, ipamSection: unknown, c: Call = {}): Promise<any> {
  const out = await plugin.handle(request(command, netConf(ipamSection, c), c));
  return out === undefined ? '' : JSON.parse(JSON.stringify(out)); // as the runtime would read it
}

const add = (ipamSection: unknown, c: Call = {}) => run('ADD', ipamSection, c);

async function failure(p: Promise<unknown>): Promise<PlexusError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PlexusError) return e;
    throw e;
  }
  throw new Error('expected a PlexusError');
}

const T = { type: 'plexus-ipam' };
const addresses = (r: { ips: { address: string }[] }) => r.ips.map((i) => i.address);

describe('ADD: each config style', () => {
  test.each<[string, Record<string, unknown>, object]>([
    ['pool: NAME', { pool: 'blue' }, { ips: [{ address: '10.50.0.2/16', gateway: '10.50.0.1' }], routes: [{ dst: '0.0.0.0/0', gw: '10.50.0.1' }] }],
    ['host-local ranges: gateway defaults to the first address', { ranges: [[{ subnet: '10.60.0.0/24' }]] }, { ips: [{ address: '10.60.0.2/24', gateway: '10.60.0.1' }] }],
    [
      'host-local ranges with rangeStart, rangeEnd, gateway, routes and dataDir',
      { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.100', rangeEnd: '10.60.0.110', gateway: '10.60.0.254' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/var/lib/cni/networks' },
      { ips: [{ address: '10.60.0.100/24', gateway: '10.60.0.254' }], routes: [{ dst: '0.0.0.0/0' }] },
    ],
    ['host-local: a gateway inside the range is skipped', { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.5', gateway: '10.60.0.5' }]] }, { ips: [{ address: '10.60.0.6/24', gateway: '10.60.0.5' }] }],
    ['Whereabouts range: no gateway unless given', { range: '10.70.0.0/24' }, { ips: [{ address: '10.70.0.1/24' }] }],
    [
      'Whereabouts range_start, range_end, exclude, gateway, routes',
      { range: '10.70.0.0/24', range_start: '10.70.0.10', range_end: '10.70.0.20', exclude: ['10.70.0.8/30', '10.70.0.12'], gateway: '10.70.0.1', routes: [{ dst: '192.168.0.0/16', gw: '10.70.0.1' }] },
      { ips: [{ address: '10.70.0.13/24', gateway: '10.70.0.1' }], routes: [{ dst: '192.168.0.0/16', gw: '10.70.0.1' }] },
    ],
    ['Whereabouts "first-last/len"', { range: '10.71.0.10-10.71.0.12/24' }, { ips: [{ address: '10.71.0.10/24' }] }],
    ['Whereabouts range with host bits is masked', { range: '10.72.0.5/24' }, { ips: [{ address: '10.72.0.1/24' }] }],
    ['Whereabouts-only keys are ignored', { range: '10.73.0.0/24', etcd_host: 'x', log_file: '/tmp/w.log', kubernetes: { kubeconfig: '/k' } }, { ips: [{ address: '10.73.0.1/24' }] }],
    ['Whereabouts IPv6 range', { range: 'fd73::/64', range_start: 'fd73::10' }, { ips: [{ address: 'fd73::10/64' }] }],
    [
      'dns from the ipam section',
      { pool: 'blue', dns: { nameservers: ['10.50.0.53'], search: ['svc.local'] } },
      { ips: [{ address: '10.50.0.2/16', gateway: '10.50.0.1' }], routes: [{ dst: '0.0.0.0/0', gw: '10.50.0.1' }], dns: { nameservers: ['10.50.0.53'], search: ['svc.local'] } },
    ],
    [
      "the network's route replaces the pool's for the same destination",
      { pool: 'blue', routes: [{ dst: '0.0.0.0/0', gw: '10.50.0.254', priority: 10 }] },
      { ips: [{ address: '10.50.0.2/16', gateway: '10.50.0.1' }], routes: [{ dst: '0.0.0.0/0', gw: '10.50.0.254', priority: 10 }] },
    ],
  ])('%s', async (_name, section, want) => {
    expect(await add({ ...T, ...section })).toEqual({ cniVersion: '1.1.0', ...want });
  });

  test('dns from the top-level config when the ipam section has none', async () => {
    const r = await add({ ...T, pool: 'blue' }, { extra: { dns: { nameservers: ['1.1.1.1'] } } });
    expect(r.dns).toEqual({ nameservers: ['1.1.1.1'] });
  });

  test('a retried ADD gets the same addresses', async () => {
    const a = await add({ ...T, range: '10.70.0.0/24' });
    expect(await add({ ...T, range: '10.70.0.0/24' })).toEqual(a);
  });

  test('several ranges on one subnet: only their addresses, then a pool-exhausted error', async () => {
    const section = { ...T, ranges: [[{ subnet: '10.62.0.0/24', rangeStart: '10.62.0.10', rangeEnd: '10.62.0.11' }, { subnet: '10.62.0.0/24', rangeStart: '10.62.0.20', rangeEnd: '10.62.0.21' }]] };
    const got: string[] = [];
    for (const cid of ['a1', 'a2', 'a3', 'a4']) got.push(...addresses(await add(section, { cid, pod: cid })));
    expect(got.sort()).toEqual(['10.62.0.10/24', '10.62.0.11/24', '10.62.0.20/24', '10.62.0.21/24']);
    const err = await failure(add(section, { cid: 'a5', pod: 'a5' }));
    expect(err.kind).toBe('PoolExhausted');
  });

  test('several subnets in one range set: each address carries the gateway of its own range', async () => {
    const section = { ...T, ranges: [[{ subnet: '10.63.0.0/30' }, { subnet: '10.63.1.0/30' }]] };
    const a = await add(section, { cid: 'a1', pod: 'a1' });
    const b = await add(section, { cid: 'a2', pod: 'a2' });
    expect([...a.ips, ...b.ips]).toEqual([{ address: '10.63.0.2/30', gateway: '10.63.0.1' }, { address: '10.63.1.2/30', gateway: '10.63.1.1' }]);
  });

  test('no pod in CNI_ARGS: recorded under a placeholder pod named by the container', async () => {
    await add({ ...T, pool: 'blue' }, { pod: null, cid: 'podless' });
    expect(ipam.pods().map((p) => [p.namespace, p.name])).toEqual([[NO_POD_NAMESPACE, 'podless']]);
  });

  test('the pod and network are recorded with the address', async () => {
    await add({ ...T, pool: 'blue' }, { network: 'blue-net' });
    expect(ipam.pods()).toMatchObject([{ namespace: 'team', name: 'web-0', addresses: [{ ip: '10.50.0.2', network: 'blue-net', containerId: 'c1', ifName: 'net1' }] }]);
  });
});

// host-local style ranges are a migration path ("change only `type`"): the witness for what they must answer
// is Debian's host-local itself, run on the same ranges, not rows written here by hand.
describe('host-local ranges answer what host-local answers', () => {
  const HOST_LOCAL = '/usr/lib/cni/host-local';
  function hostLocal(section: Record<string, unknown>): { ips: { address: string; gateway?: string }[]; routes?: unknown[] } {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-hl-'));
    try {
      const conf = { cniVersion: '1.0.0', name: 'macnet', type: 'macvlan', ipam: { ...section, type: 'host-local', dataDir } };
      const out = execFileSync(HOST_LOCAL, [], {
        input: JSON.stringify(conf), encoding: 'utf8',
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: NETNS, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni' },
      });
      return JSON.parse(out);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  test.each<[string, Record<string, unknown>]>([
    ['one range: the gateway defaults to the first address', { ranges: [[{ subnet: '10.60.0.0/24' }]] }],
    ['rangeStart, rangeEnd, gateway and routes', { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.100', rangeEnd: '10.60.0.110', gateway: '10.60.0.254' }]], routes: [{ dst: '0.0.0.0/0' }] }],
    ['a gateway inside the range is skipped', { ranges: [[{ subnet: '10.60.0.0/24', rangeStart: '10.60.0.5', gateway: '10.60.0.5' }]] }],
    ['one range set per family', { ranges: [[{ subnet: '10.64.0.0/24' }], [{ subnet: 'fd64::/64', rangeStart: 'fd64::100' }]] }],
  ])('%s', async (_name, section) => {
    const want = hostLocal(section);
    const got = await add({ ...T, ...section });
    expect(got.ips.map((i: { address: string; gateway?: string }) => ({ address: i.address, gateway: i.gateway }))).toEqual(
      want.ips.map((i) => ({ address: i.address, gateway: i.gateway })),
    );
    expect(got.routes ?? []).toEqual(want.routes ?? []);
  });
});

describe('ADD: dual stack', () => {
  test.each<[string, Record<string, unknown>, object[]]>([
    ['host-local: one range set per family', { ranges: [[{ subnet: '10.64.0.0/24' }], [{ subnet: 'fd64::/64', rangeStart: 'fd64::100' }]] }, [{ address: '10.64.0.2/24', gateway: '10.64.0.1' }, { address: 'fd64::100/64', gateway: 'fd64::1' }]],
    ['Whereabouts ipRanges', { ipRanges: [{ range: '10.65.0.0/24' }, { range: 'fd65::/120', exclude: ['fd65::1/128'] }] }, [{ address: '10.65.0.1/24' }, { address: 'fd65::2/120' }]],
    ['Whereabouts range plus ipRanges, gateway per family', { range: 'fd66::/120', ipRanges: [{ range: '10.66.0.0/24' }], gateway: 'fd66::1' }, [{ address: '10.66.0.1/24' }, { address: 'fd66::2/120', gateway: 'fd66::1' }]],
    ['a dual-stack configured pool', { pool: 'dual' }, [{ address: '10.51.0.2/24', gateway: '10.51.0.1' }, { address: 'fd51::2/120', gateway: 'fd51::1' }]],
  ])('%s', async (_name, section, ips) => {
    expect((await add({ ...T, ...section })).ips).toEqual(ips);
  });

  test('routes are given only for the families handed out', async () => {
    const r = await add({ ...T, range: '10.67.0.0/24', routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] });
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }]);
  });
});

describe('ADD: runtimeConfig', () => {
  test.each<[string, Record<string, unknown>, Record<string, unknown>, string[]]>([
    ['runtimeConfig.ips without prefix', { pool: 'blue' }, { runtimeConfig: { ips: ['10.50.3.3'] } }, ['10.50.3.3/16']],
    ['runtimeConfig.ips with the pool prefix', { range: '10.70.0.0/24' }, { runtimeConfig: { ips: ['10.70.0.77/24'] } }, ['10.70.0.77/24']],
    ['runtimeConfig.ips for both families', { pool: 'dual' }, { runtimeConfig: { ips: ['fd51::9', '10.51.0.9'] } }, ['10.51.0.9/24', 'fd51::9/120']],
    ['args.cni.ips (the args convention)', { pool: 'blue' }, { args: { cni: { ips: ['10.50.4.4'] } } }, ['10.50.4.4/16']],
  ])('%s', async (_name, section, extra, want) => {
    expect(addresses(await add({ ...T, ...section }, { extra }))).toEqual(want);
  });

  test('an address another attachment holds is the library AddressConflict error', async () => {
    await add({ ...T, pool: 'blue' }, { extra: { runtimeConfig: { ips: ['10.50.3.3'] } } });
    const err = await failure(add({ ...T, pool: 'blue' }, { cid: 'c2', pod: 'web-1', extra: { runtimeConfig: { ips: ['10.50.3.3'] } } }));
    expect([err.kind, err.cniCode]).toEqual(['AddressConflict', 114]);
    expect(err.message).toMatch(/10\.50\.3\.3/);
  });

  test('ipamClaimReference (S21): the address stays with the claim across pods', async () => {
    const claim = { runtimeConfig: { ipamClaimReference: 'web-0.macnet.net1' } };
    const first = addresses(await add({ ...T, range: '10.70.0.0/24' }, { extra: claim }));
    expect(ipam.pods()[0]?.addresses[0]?.fixed).toBe('claim:team/web-0.macnet.net1');
    await run('DEL', { ...T, range: '10.70.0.0/24' });
    await add({ ...T, range: '10.70.0.0/24' }, { cid: 'other', pod: 'filler' }); // would take the freed address otherwise
    expect(addresses(await add({ ...T, range: '10.70.0.0/24' }, { cid: 'c2', pod: 'web-0-again', extra: claim }))).toEqual(first);
  });
});

describe('DEL', () => {
  test('releases, and a second DEL succeeds with nothing held', async () => {
    await add({ ...T, pool: 'blue' });
    expect(await run('DEL', { ...T, pool: 'blue' })).toBe('');
    expect(ipam.held('c1', 'net1')).toEqual([]);
    expect(await run('DEL', { ...T, pool: 'blue' })).toBe('');
  });

  test.each<[string, unknown]>([
    ['never added', { ...T, pool: 'blue' }],
    ['a config that is no longer valid', { ...T, ranges: 'garbage' }],
    ['no ipam section at all', undefined],
  ])('succeeds for an attachment %s', async (_name, section) => {
    expect(await run('DEL', section, { cid: 'ghost' })).toBe('');
  });

  test('releases only the named interface of the container', async () => {
    await add({ ...T, pool: 'blue' }, { ifName: 'net1' });
    await add({ ...T, pool: 'blue' }, { ifName: 'net2', network: 'blue2' });
    await run('DEL', { ...T, pool: 'blue' }, { ifName: 'net1' });
    expect(ipam.held('c1').map((a) => a.ifName)).toEqual(['net2']);
  });
});

describe('CHECK', () => {
  const section = { ...T, ranges: [[{ subnet: '10.60.0.0/24' }]] };

  test.each(['0.4.0', '1.0.0', '1.1.0'])('passes with the cached ADD result as prevResult (%s)', async (version) => {
    const prevResult = await add(section, { version });
    expect(await run('CHECK', section, { version, extra: { prevResult } })).toBe('');
  });

  test('passes without a prevResult when the attachment holds its addresses', async () => {
    await add(section);
    expect(await run('CHECK', section)).toBe('');
  });

  test.each<[string, (prev: any) => object | undefined, RegExp]>([
    ['prevResult lists another address', (p) => ({ ...p, ips: [{ address: '10.60.0.99/24' }] }), /prevResult lists 10\.60\.0\.99\/24 but the attachment holds 10\.60\.0\.2\/24/],
    ['prevResult lists an extra address', (p) => ({ ...p, ips: [...p.ips, { address: 'fd00::2/64' }] }), /prevResult lists/],
  ])('fails when %s', async (_name, mutate, msg) => {
    const prev = await add(section);
    const err = await failure(run('CHECK', section, { extra: { prevResult: mutate(prev) } }));
    expect([err.kind, err.cniCode]).toEqual(['CheckFailed', 108]);
    expect(err.message).toMatch(msg);
  });

  test('fails when the attachment holds no address', async () => {
    const err = await failure(run('CHECK', section, { cid: 'never' }));
    expect([err.kind, err.cniCode]).toEqual(['CheckFailed', 108]);
    expect(err.message).toMatch(/attachment never\/net1 of network "macnet" holds no address/);
  });

  test('fails after DEL', async () => {
    const prevResult = await add(section);
    await run('DEL', section);
    expect((await failure(run('CHECK', section, { extra: { prevResult } }))).kind).toBe('CheckFailed');
  });

  test('fails when the network now allocates from another pool', async () => {
    await add({ ...T, pool: 'blue' });
    const err = await failure(run('CHECK', section));
    expect(err.message).toMatch(/holds 10\.50\.0\.2 of pool blue, but the network allocates from pool cni-10\.60\.0\.0-24-[0-9a-f]{10}$/);
  });
});

describe('GC', () => {
  const section = { ...T, range: '10.70.0.0/24' };
  const gc = (valid: unknown, network = 'macnet') => run('GC', section, { network, extra: { 'cni.dev/valid-attachments': valid } });

  test("releases this network's attachments that are not valid, and nothing of other networks", async () => {
    await add(section, { cid: 'keep', pod: 'p1' });
    await add(section, { cid: 'gone', pod: 'p2' });
    await add({ ...T, pool: 'blue' }, { cid: 'other', pod: 'p3', network: 'blue-net' });
    expect(await gc([{ containerID: 'keep', ifname: 'net1' }])).toBe('');
    expect(ipam.pods().flatMap((p) => p.addresses.map((a) => a.containerId)).sort()).toEqual(['keep', 'other']);
  });

  test('the legacy cni.dev/attachments key is read too', async () => {
    await add(section, { cid: 'keep', pod: 'p1' });
    await run('GC', section, { extra: { 'cni.dev/attachments': [{ containerID: 'keep', ifname: 'net1' }] } });
    expect(ipam.held('keep')).toHaveLength(1);
  });

  test('an empty list releases every attachment of the network', async () => {
    await add(section, { cid: 'a', pod: 'p1' });
    await gc([]);
    expect(ipam.pods()).toEqual([]);
  });

  test('waits for the grace period before releasing', async () => {
    const graced = await Ipam.open({ node: 'n2', shared: new MemoryStore(), pools: [BLUE], syncIntervalMs: 0 });
    try {
      const p = new IpamPlugin(graced, { log: pino({ level: 'silent' }) });
      await p.handle(request('ADD', netConf({ ...T, pool: 'blue' })));
      await p.handle(request('GC', netConf({ ...T, pool: 'blue' }, { extra: { 'cni.dev/valid-attachments': [] } })));
      expect(graced.held('c1')).toHaveLength(1);
    } finally {
      await graced.close();
    }
  });
});

describe('result shapes per CNI version (IPAM results: no interfaces, no ips[].interface)', () => {
  test.each([
    ['0.3.0', true],
    ['0.3.1', true],
    ['0.4.0', true],
    ['1.0.0', false],
    ['1.1.0', false],
  ])('%s', async (version, legacy) => {
    const r = await add({ ...T, pool: 'dual', routes: [{ dst: '0.0.0.0/0', gw: '10.51.0.1' }] }, { version });
    expect(r).toEqual({
      cniVersion: version,
      ips: [
        { address: '10.51.0.2/24', gateway: '10.51.0.1', ...(legacy ? { version: '4' } : {}) },
        { address: 'fd51::2/120', gateway: 'fd51::1', ...(legacy ? { version: '6' } : {}) },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.51.0.1' }],
    });
  });

  test('STATUS and VERSION', async () => {
    expect(await run('STATUS', { ...T, pool: 'blue' })).toBe('');
    expect(await run('VERSION', { ...T, pool: 'blue' })).toMatchObject({ supportedVersions: expect.arrayContaining(['0.4.0', '1.1.0']) });
  });
});

describe('bad input: a PlexusError with its code, naming the field', () => {
  const conf = (section: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ...netConf(section), ...extra });
  test.each<[string, Record<string, unknown>, ErrorKind, RegExp, Call?]>([
    ['no ipam section', conf(undefined), 'InvalidConfig', /plexus-ipam: ipam is required/],
    ['no ipam.type', conf({ pool: 'blue' }), 'InvalidConfig', /ipam\.type is required/],
    ['no name', { cniVersion: '1.1.0', type: 'macvlan', ipam: { ...T, pool: 'blue' } }, 'InvalidConfig', /plexus-ipam: name is required/],
    ['socketPath not absolute', conf({ ...T, pool: 'blue', socketPath: 'run/plexus.sock' }), 'InvalidConfig', /plexus-ipam: ipam\.socketPath must match pattern/],
    ['no address source', conf({ ...T }), 'InvalidConfig', /plexus-ipam: ipam needs one of "pool".*"ranges".*"range"/],
    ['unknown pool', conf({ ...T, pool: 'nope' }), 'InvalidConfig', /ipam\.pool "nope" is not a configured pool \(configured: blue, dual\)/],
    ['pool and ranges', conf({ ...T, pool: 'blue', ranges: [[{ subnet: '10.0.0.0/24' }]] }), 'InvalidConfig', /ipam\.ranges cannot be combined with ipam\.pool/],
    ['pool and range', conf({ ...T, pool: 'blue', range: '10.0.0.0/24' }), 'InvalidConfig', /ipam\.range cannot be combined with ipam\.pool/],
    ['ranges and range', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24' }]], range: '10.1.0.0/24' }), 'InvalidConfig', /ipam\.range cannot be combined with ipam\.ranges/],
    ['pool with a gateway', conf({ ...T, pool: 'blue', gateway: '10.50.0.1' }), 'InvalidConfig', /ipam\.gateway cannot be combined with ipam\.pool: the pool defines it/],
    ['ranges with range_start', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24' }]], range_start: '10.0.0.5' }), 'InvalidConfig', /ipam\.range_start cannot be combined with ipam\.ranges/],
    ['ipRanges with a top-level range_end', conf({ ...T, ipRanges: [{ range: '10.0.0.0/24' }], range_end: '10.0.0.5' }), 'InvalidConfig', /ipam\.range_end cannot be combined with ipam\.ipRanges/],
    ['ranges is not a list', conf({ ...T, ranges: 'garbage' }), 'InvalidConfig', /ipam\.ranges must be array/],
    ['a range set is empty', conf({ ...T, ranges: [[]] }), 'InvalidConfig', /ipam\.ranges\[0\] must NOT have fewer than 1 items/],
    ['a range without subnet', conf({ ...T, ranges: [[{ rangeStart: '10.0.0.1' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.subnet is required/],
    ['bad subnet CIDR', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/33' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.subnet "10\.0\.0\.0\/33" is not a valid CIDR/],
    ['subnet with host bits', conf({ ...T, ranges: [[{ subnet: '10.0.0.5/24' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.subnet "10\.0\.0\.5\/24" has host bits set \(did you mean 10\.0\.0\.0\/24\?\)/],
    ['rangeStart outside the subnet', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.rangeStart 10\.0\.1\.5 is outside the subnet 10\.0\.0\.0\/24/],
    ['rangeEnd not an address', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.x' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.rangeEnd "10\.0\.0\.x" is not a valid/],
    ['rangeStart after rangeEnd', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.3' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.rangeStart 10\.0\.0\.9 is after the range end 10\.0\.0\.3/],
    ['gateway of the other family', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24', gateway: 'fd00::1' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.gateway fd00::1 is not an v4 address/],
    ['mixed families in one range set', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[1\]\.subnet is v6 but the range set ipam\.ranges\[0\] is v4/],
    ['two range sets of one family', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] }), 'InvalidConfig', /ipam\.ranges\[1\] is a second v4 range set \(ipam\.ranges\[0\] is one\)/],
    ['overlapping subnets in one set', conf({ ...T, ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/16' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.subnet 10\.0\.0\.0\/24 overlaps 10\.0\.0\.0\/16 \(ipam\.ranges\[0\]\[1\]\.subnet\)/],
    ['bad Whereabouts range', conf({ ...T, range: 'not-a-cidr' }), 'InvalidConfig', /ipam\.range "not-a-cidr" is not a valid/],
    ['range_start outside the range', conf({ ...T, range: '10.0.0.0/24', range_start: '10.9.0.1' }), 'InvalidConfig', /ipam\.range_start 10\.9\.0\.1 is outside the subnet 10\.0\.0\.0\/24/],
    ['"first-last/len" with range_start', conf({ ...T, range: '10.0.0.5-10.0.0.9/24', range_start: '10.0.0.6' }), 'InvalidConfig', /ipam\.range_start cannot be combined with a range that has its own first and last/],
    ['"first-last/len" with the last outside', conf({ ...T, range: '10.0.0.5-10.0.1.9/24' }), 'InvalidConfig', /ipam\.range 10\.0\.1\.9 is outside the subnet 10\.0\.0\.0\/24/],
    ['bad exclude', conf({ ...T, range: '10.0.0.0/24', exclude: ['10.0.0.0/40'] }), 'InvalidConfig', /ipam\.exclude\[0\] "10\.0\.0\.0\/40" is not a valid CIDR/],
    ['gateway of a family no range has', conf({ ...T, range: '10.0.0.0/24', gateway: 'fd00::1' }), 'InvalidConfig', /ipam\.gateway fd00::1 is of a family none of the ranges has/],
    ['two ipRanges of one family', conf({ ...T, ipRanges: [{ range: '10.0.0.0/24' }, { range: '10.1.0.0/24' }] }), 'InvalidConfig', /ipam\.ipRanges\[1\]\.range is a second v4 range/],
    ['route dst not a CIDR', conf({ ...T, pool: 'blue', routes: [{ dst: 'default' }] }), 'InvalidConfig', /ipam\.routes\[0\]\.dst "default" is not a valid CIDR/],
    ['route without dst', conf({ ...T, pool: 'blue', routes: [{ gw: '10.50.0.1' }] }), 'InvalidConfig', /ipam\.routes\[0\]\.dst is required/],
    ['route gw of another family', conf({ ...T, pool: 'blue', routes: [{ dst: '0.0.0.0/0', gw: 'fd00::1' }] }), 'InvalidConfig', /ipam\.routes\[0\]\.gw fd00::1 is not of the family of dst/],
    ['dns nameservers not a list', conf({ ...T, pool: 'blue', dns: { nameservers: '1.1.1.1' } }), 'InvalidConfig', /ipam\.dns\.nameservers must be array/],
    ['runtimeConfig.ips not a list', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: '10.50.0.9' } }), 'InvalidConfig', /runtimeConfig\.ips must be array/],
    ['runtimeConfig.ips not an address', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: ['10.50.0.x'] } }), 'InvalidConfig', /runtimeConfig\.ips\[0\] "10\.50\.0\.x" is not a valid/],
    ['runtimeConfig.ips outside the pool', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: ['10.9.0.9'] } }), 'InvalidConfig', /runtimeConfig\.ips\[0\] 10\.9\.0\.9 is not in pool blue \(10\.50\.0\.0\/16\)/],
    ['runtimeConfig.ips with the wrong prefix', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: ['10.50.0.9/24'] } }), 'InvalidConfig', /runtimeConfig\.ips\[0\] 10\.50\.0\.9\/24 has prefix length \/24 but pool blue gives \/16/],
    ['runtimeConfig.ips, two of one family', conf({ ...T, pool: 'dual' }, { runtimeConfig: { ips: ['10.51.0.9', '10.51.0.10'] } }), 'InvalidConfig', /runtimeConfig\.ips\[1\] is a second v4 address/],
    ['runtimeConfig.ips a gateway', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: ['10.50.0.1'] } }), 'AddressConflict', /10\.50\.0\.1 in pool blue is excluded, a gateway/],
    ['claim together with ips (S21)', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ips: ['10.50.0.9'], ipamClaimReference: 'c' } }), 'InvalidConfig', /runtimeConfig\.ipamClaimReference cannot be combined with runtimeConfig\.ips \(S21\)/],
    ['claim name invalid', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ipamClaimReference: 'Web_0' } }), 'InvalidConfig', /runtimeConfig\.ipamClaimReference "Web_0" is not a valid IPAMClaim name/],
    ['claim without a pod', conf({ ...T, pool: 'blue' }, { runtimeConfig: { ipamClaimReference: 'web-0' } }), 'InvalidEnv', /runtimeConfig\.ipamClaimReference needs the pod \(K8S_POD_NAMESPACE/, { pod: null }],
    ['inline range overlapping a configured pool', conf({ ...T, range: '10.50.1.0/24' }), 'InvalidConfig', /ipam\.range 10\.50\.1\.0\/24 of network "macnet" overlaps configured pool "blue" \(10\.50\.0\.0\/16\)/],
    ['host-local range overlapping a configured pool', conf({ ...T, ranges: [[{ subnet: '10.51.0.0/16' }]] }), 'InvalidConfig', /ipam\.ranges\[0\]\[0\]\.subnet 10\.51\.0\.0\/16 of network "macnet" overlaps configured pool "dual"/],
  ])('%s', async (_name, config, kind, msg, call = {}) => {
    const err = await failure(plugin.handle(request('ADD', config, call)));
    expect(err.kind).toBe(kind);
    expect(err.cniCode).toBe({ InvalidConfig: 7, InvalidEnv: 4, AddressConflict: 114 }[kind as string]);
    expect(err.message).toMatch(msg);
    expect(ipam.pods()).toEqual([]);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['valid-attachments not a list', { 'cni.dev/valid-attachments': 'x' }, /cni\.dev\/valid-attachments must be a list/],
    ['an entry without containerID', { 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] }, /cni\.dev\/valid-attachments\[0\]\.containerID must be a non-empty string/],
    ['an entry without ifname', { 'cni.dev/valid-attachments': [{ containerID: 'c1' }] }, /cni\.dev\/valid-attachments\[0\]\.ifname must be a non-empty string/],
  ])('GC: %s', async (_name, extra, msg) => {
    const err = await failure(run('GC', { ...T, pool: 'blue' }, { extra }));
    expect([err.kind, err.cniCode]).toEqual(['InvalidConfig', 7]);
    expect(err.message).toMatch(msg);
  });

  test('CHECK: an unparsable prevResult address names the field', async () => {
    await add({ ...T, pool: 'blue' });
    const err = await failure(run('CHECK', { ...T, pool: 'blue' }, { extra: { prevResult: { cniVersion: '1.1.0', ips: [{ address: 'junk' }] } } }));
    expect(err.message).toMatch(/prevResult\.ips\[0\]\.address "junk"/);
  });
});

describe('implicit pools', () => {
  const W = (range: string, more: object = {}) => ({ ...T, range, ...more });
  const poolOf = (section: object): string => implicitPoolSpec(inlinePoolOf(section as CniIpamSection) as NonNullable<ReturnType<typeof inlinePoolOf>>).name;
  const P70 = poolOf(W('10.70.0.0/24'));

  test('registered next to the configured pools, named after its ranges', async () => {
    await add(W('10.70.0.0/24'));
    expect(P70).toMatch(/^cni-10\.70\.0\.0-24-[0-9a-f]{10}$/);
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', 'dual', P70]);
    expect(ipam.poolSpec(P70)).toEqual({ name: P70, cidrs: ['10.70.0.0/24'] });
  });

  test('the name depends on the definition only, in any order, and is a valid pool name for IPv6 too', () => {
    const dual = { ...T, ipRanges: [{ range: '10.70.0.0/24' }, { range: 'fd70::/64' }] };
    const swapped = { ...T, ipRanges: [{ range: 'fd70::/64' }, { range: '10.70.0.0/24' }] };
    expect(poolOf(swapped)).toBe(poolOf(dual));
    expect(poolOf({ ...T, range: 'fd70::/64' })).toMatch(new RegExp(POOL_NAME_SCHEMA.pattern));
    expect(poolOf(W('10.70.0.0/24', { exclude: ['10.70.0.9/32'] }))).not.toBe(P70);
    expect(poolOf(W('10.70.0.0/24', { range_start: '10.70.0.9' }))).not.toBe(P70);
    expect(poolOf({ ...T, ranges: [[{ subnet: '10.70.0.0/24' }]] })).not.toBe(P70); // host-local keeps .1 as the gateway
  });

  test('the same definition again reuses the pool, in any style that defines it', async () => {
    await add(W('10.70.0.0/24'));
    const spec = ipam.poolSpec(P70);
    await add({ ...T, ipRanges: [{ range: '10.70.0.0/24' }] }, { cid: 'c3', pod: 'p3' });
    await add(W('10.70.0.0/24'), { cid: 'c4', pod: 'p4' });
    expect(ipam.poolSpec(P70)).toBe(spec);
    expect(ipam.poolSpecs()).toHaveLength(3);
  });

  test('two networks with identical ranges share one pool: no address is handed out twice (Whereabouts habit)', async () => {
    const range = W('10.70.0.0/29'); // .1 to .6
    const got = await Promise.all(Array.from({ length: 6 }, (_, i) =>
      add(range, { network: i % 2 ? 'first' : 'second', cid: `c${i}`, pod: `p${i}` })));
    const ips = got.flatMap(addresses);
    expect(new Set(ips).size).toBe(6);
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', 'dual', poolOf(range)]);
    expect(new Set(ipam.pods().flatMap((p) => p.addresses.map((a) => `${a.pool} ${a.network}`)))).toEqual(
      new Set([`${poolOf(range)} first`, `${poolOf(range)} second`]));
    const err = await failure(add(range, { network: 'third', cid: 'c9', pod: 'p9' }));
    expect([err.kind, err.message]).toEqual(['PoolExhausted', expect.stringContaining(`pool ${poolOf(range)} has no free IPv4 address`)]);
    // A DEL on one network frees the address for the other.
    await run('DEL', range, { network: 'first', cid: 'c1' });
    expect(addresses(await add(range, { network: 'second', cid: 'c9', pod: 'p9' }))).toHaveLength(1);
  });

  test.each([
    ['a narrower range', W('10.70.0.0/25'), /ipam\.range 10\.70\.0\.0\/25 of network "second" overlaps the range of network "first" \(implicit pool cni-10\.70\.0\.0-24-[0-9a-f]{10}, 10\.70\.0\.0\/24\): networks share addresses only when their ranges are identical/],
    ['other range bounds', W('10.70.0.0/24', { range_start: '10.70.0.100' }), /ipam\.range 10\.70\.0\.0\/24 of network "second" overlaps the range of network "first"/],
    ['host-local ranges', { ...T, ranges: [[{ subnet: '10.70.0.0/16' }]] }, /ipam\.ranges\[0\]\[0\]\.subnet 10\.70\.0\.0\/16 of network "second" overlaps the range of network "first"/],
  ])("another network's overlapping but different range is refused, naming both networks and the field: %s", async (_name, other, want) => {
    await add(W('10.70.0.0/24'), { network: 'first' });
    const err = await failure(add(other, { network: 'second', cid: 'c2', pod: 'p2' }));
    expect([err.kind, err.cniCode]).toEqual(['InvalidConfig', 7]);
    expect(err.message).toMatch(want);
    expect(ipam.poolSpecs()).toHaveLength(3);
  });

  test('an overlapping new definition while addresses are allocated is refused, naming the network and the field', async () => {
    await add(W('10.70.0.0/24'));
    const err = await failure(add(W('10.70.0.0/23'), { cid: 'c2', pod: 'p2' }));
    expect([err.kind, err.cniCode]).toEqual(['InvalidConfig', 7]);
    expect(err.message).toMatch(/ipam\.range of network "macnet" changed \(10\.70\.0\.0\/24 -> 10\.70\.0\.0\/23\) while 1 addresses of its implicit pool cni-10\.70\.0\.0-24-[0-9a-f]{10} are allocated/);
    expect(ipam.poolSpec(P70)?.cidrs).toEqual(['10.70.0.0/24']);
  });

  test('a changed range_start names range_start', async () => {
    await add(W('10.70.0.0/24', { range_start: '10.70.0.10' }));
    const err = await failure(add(W('10.70.0.0/24', { range_start: '10.70.0.20' }), { cid: 'c2', pod: 'p2' }));
    expect(err.message).toMatch(/ipam\.range_start of network "macnet" changed \(10\.70\.0\.10 -> 10\.70\.0\.20\)/);
  });

  test('a new definition that overlaps nothing takes effect at once; the old pool stays while it holds addresses', async () => {
    await add(W('10.70.0.0/24'));
    expect(addresses(await add(W('10.71.0.0/24'), { cid: 'c2', pod: 'p2' }))).toEqual(['10.71.0.1/24']);
    const P71 = poolOf(W('10.71.0.0/24'));
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', 'dual', P70, P71]);
    await run('DEL', W('10.70.0.0/24'));
    await add(W('10.72.0.0/24'), { cid: 'c3', pod: 'p3' });
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', 'dual', P71, poolOf(W('10.72.0.0/24'))]);
  });

  test('an overlapping new definition once nothing is allocated replaces the pool', async () => {
    await add(W('10.70.0.0/24'));
    await run('DEL', W('10.70.0.0/24'));
    expect(addresses(await add(W('10.70.0.0/23'), { cid: 'c2', pod: 'p2' }))).toEqual(['10.70.0.1/23']);
    expect(ipam.poolSpec(P70)).toBeUndefined();
    expect(ipam.poolSpec(poolOf(W('10.70.0.0/23')))?.cidrs).toEqual(['10.70.0.0/23']);
    expect(ipam.poolSpec('blue')).toBeDefined();
  });

  test('a configured pool with the implicit name is never replaced', async () => {
    ipam.setPools([BLUE, { name: P70, cidrs: ['10.80.0.0/24'] }]);
    const err = await failure(add(W('10.70.0.0/24')));
    expect(err.message).toMatch(/"macnet": its implicit pool name cni-10\.70\.0\.0-24-[0-9a-f]{10} is taken by a configured pool/);
  });

  test('implicitPools() lists them, so a reload that keeps them leaves them in force', async () => {
    await add(W('10.70.0.0/24'));
    expect(plugin.implicitPools()).toEqual([{ name: P70, cidrs: ['10.70.0.0/24'] }]);
    ipam.setPools([BLUE, ...plugin.implicitPools()]);
    const spec = ipam.poolSpec(P70);
    await add(W('10.70.0.0/24'), { cid: 'c2', pod: 'p2' });
    expect(ipam.poolSpec(P70)).toBe(spec);
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', P70]);
  });

  test('after a reload dropped it, the next ADD registers it again; DEL works meanwhile', async () => {
    await add(W('10.70.0.0/24'));
    ipam.setPools([BLUE, DUAL]);
    expect(await run('DEL', W('10.70.0.0/24'))).toBe('');
    expect(addresses(await add(W('10.70.0.0/24'), { cid: 'c2', pod: 'p2' }))).toHaveLength(1);
    expect(ipam.poolSpecs().map((p) => p.name)).toEqual(['blue', 'dual', P70]);
  });

  test('after a restart (old definition unknown), addresses still held inside a new definition refuse it', async () => {
    await add(W('10.70.0.0/24'));
    const fresh = new IpamPlugin(ipam, { log: pino({ level: 'silent' }) });
    ipam.setPools([BLUE, DUAL]);
    const err = await failure(fresh.handle(request('ADD', netConf(W('10.70.0.0/23')), { cid: 'c2', pod: 'p2' })));
    expect(err.message).toMatch(/ipam\.range of network "macnet" \(10\.70\.0\.0\/23\) overlaps 1 addresses still held in pool cni-10\.70\.0\.0-24-[0-9a-f]{10} \(an earlier definition/);
    // One that overlaps nothing held is fine.
    expect((await fresh.handle(request('ADD', netConf(W('10.71.0.0/24')), { cid: 'c3', pod: 'p3' })) as CniResult).ips).toHaveLength(1);
  });

  test('concurrent first ADDs of a new network register once and get distinct addresses', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => add(W('10.70.0.0/24'), { cid: `k${i}`, pod: `p${i}` })));
    expect(new Set(all.flatMap(addresses)).size).toBe(8);
    expect(ipam.poolSpecs().filter((p) => p.name === P70)).toHaveLength(1);
  });
});

describe('cidrsCovering', () => {
  test.each<[bigint, bigint, string[]]>([
    [0x0a000000n, 0x0a0000ffn, ['10.0.0.0/24']],
    [0x0a00000cn, 0x0a000013n, ['10.0.0.12/30', '10.0.0.16/30']],
    [0x0a000001n, 0x0a000006n, ['10.0.0.1/32', '10.0.0.2/31', '10.0.0.4/31', '10.0.0.6/32']],
  ])('%s..%s', (lo, hi, want) => {
    expect(cidrsCovering('v4', { lo, hi })).toEqual(want);
  });
});

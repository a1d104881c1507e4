import { PlexusError } from '../core/errors';
import type { NetworkConfList, PluginConf } from '../cni/network-config';
import { FakeRegistry, silentLog } from '../test/helpers/fake-registry';
import {
  addNetwork,
  checkNetwork,
  delNetwork,
  filterRuntimeConfig,
  gcNetwork,
  negotiateVersion,
  pluginConfig,
  statusNetwork,
  type NetworkCall,
} from './conflist';
import type { DelegateEnv } from './contract';

const ENV: DelegateEnv = { containerId: 'c1', netns: '/var/run/netns/x', ifName: 'net1', args: 'K8S_POD_NAME=p', path: ['/opt/cni/bin'] };
const RUNTIME = { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }], bandwidth: { ingressRate: 1 }, ips: ['10.0.0.9/24'] };

function list(cniVersion: string, types: string[], over: Partial<NetworkConfList> = {}): NetworkConfList {
  return { cniVersion, name: 'net-a', single: false, plugins: types.map((type) => ({ type, capabilities: { portMappings: true } })), ...over };
}
function setup(conf: NetworkConfList, runtimeConfig: Record<string, unknown> = RUNTIME) {
  const registry = new FakeRegistry();
  const call: NetworkCall = { conf, runtimeConfig, env: ENV, timeoutMs: 1000, log: silentLog, registry };
  return { registry, call };
}
const fail = (kind: 'DelegateFailed' | 'TryAgainLater') => () => {
  throw new PlexusError(kind, 'plugin said no');
};

describe('pluginConfig (libcni buildOneConfig, CNI spec 2.2 "Plugin object")', () => {
  const conf = list('1.0.0', []);
  test.each<[string, PluginConf, Record<string, unknown>, Record<string, unknown>]>([
    [
      'injects name and cniVersion over the plugin\'s own, keeps unknown keys',
      { type: 'macvlan', name: 'other', cniVersion: '0.3.1', master: 'eth0', ipam: { type: 'plexus-ipam' } },
      {},
      { type: 'macvlan', name: 'net-a', cniVersion: '1.0.0', master: 'eth0', ipam: { type: 'plexus-ipam' } },
    ],
    [
      'runtimeConfig keeps only declared capabilities',
      { type: 'portmap', capabilities: { portMappings: true, bandwidth: false } },
      RUNTIME,
      { type: 'portmap', capabilities: { portMappings: true, bandwidth: false }, name: 'net-a', cniVersion: '1.0.0', runtimeConfig: { portMappings: RUNTIME.portMappings } },
    ],
    ['no capabilities: no runtimeConfig key at all', { type: 'tuning' }, RUNTIME, { type: 'tuning', name: 'net-a', cniVersion: '1.0.0' }],
    [
      'a static runtimeConfig in the plugin stays when no declared capability applies (libcni)',
      { type: 'tuning', runtimeConfig: { mac: 'x' } },
      RUNTIME,
      { type: 'tuning', name: 'net-a', cniVersion: '1.0.0', runtimeConfig: { mac: 'x' } },
    ],
  ])('%s', (_title, plugin, rc, expected) => {
    const out = pluginConfig(conf, plugin, rc);
    expect(out).toEqual(expected);
    if (!('runtimeConfig' in expected)) expect(out).not.toHaveProperty('runtimeConfig');
  });

  test('extra keys (prevResult) are added last', () => {
    expect(pluginConfig(conf, { type: 'tuning' }, {}, { prevResult: { cniVersion: '1.0.0' } })['prevResult']).toEqual({ cniVersion: '1.0.0' });
  });

  test("filterRuntimeConfig adds the capabilities a built-in takes implicitly (plexus-sriov's CNIDeviceInfoFile)", () => {
    const rc = { CNIDeviceInfoFile: '/run/d.json', deviceID: '0000:af:06.0', mac: '02:00:00:00:00:01' };
    expect(filterRuntimeConfig({ type: 'plexus-sriov' }, rc, ['CNIDeviceInfoFile', 'deviceID'])).toEqual({ CNIDeviceInfoFile: '/run/d.json', deviceID: '0000:af:06.0' });
    expect(filterRuntimeConfig({ type: 'sriov' }, rc)).toEqual({});
  });

  test('filterRuntimeConfig drops undefined values and undeclared keys', () => {
    const plugin = { type: 'x', capabilities: { ips: true, mac: true } };
    expect(filterRuntimeConfig(plugin, { ips: ['1.2.3.4/32'], mac: undefined, portMappings: [] })).toEqual({ ips: ['1.2.3.4/32'] });
  });
});

describe('ADD', () => {
  test('chains prevResult through the list and returns the last result', async () => {
    const { registry, call } = setup(list('1.0.0', ['a', 'b', 'c']));
    registry.on('c', (c) => ({ ...(c.config['prevResult'] as object), from: 'c' }));
    const out = await addNetwork(call);
    expect(registry.trace()).toEqual(['a ADD', 'b ADD', 'c ADD']);
    const [a, b, c] = registry.calls;
    expect(a!.config).not.toHaveProperty('prevResult');
    expect(b!.config['prevResult']).toMatchObject({ dns: { nameservers: ['dns-of-a'] } });
    expect(c!.config['prevResult']).toMatchObject({ dns: { nameservers: ['dns-of-b'] } });
    expect(out).toMatchObject({ dns: { nameservers: ['dns-of-b'] }, from: 'c' });
    expect(registry.calls.every((r) => r.env === ENV)).toBe(true);
    expect(a!.config['runtimeConfig']).toEqual({ portMappings: RUNTIME.portMappings });
  });

  test('a plugin that prints no result fails the ADD', async () => {
    const { registry, call } = setup(list('1.0.0', ['a', 'b']));
    registry.on('a', () => undefined);
    await expect(addNetwork(call)).rejects.toMatchObject({ kind: 'DelegateFailed', message: expect.stringContaining('"a" ADD printed no result') });
    expect(registry.trace()).toEqual(['a ADD']);
  });
});

describe('DEL: reverse order, prevResult only for lists >= 0.4.0 (CNI spec 2.4)', () => {
  const PREV = { cniVersion: 'x', ips: [] };
  test.each([
    ['0.3.0', false],
    ['0.3.1', false],
    ['0.4.0', true],
    ['1.0.0', true],
    ['1.1.0', true],
  ])('%s: prevResult passed = %s', async (v, withPrev) => {
    const { registry, call } = setup(list(v, ['a', 'b', 'c']));
    await delNetwork(call, PREV);
    expect(registry.trace()).toEqual(['c DEL', 'b DEL', 'a DEL']);
    for (const c of registry.calls) {
      if (withPrev) expect(c.config['prevResult']).toEqual(PREV);
      else expect(c.config).not.toHaveProperty('prevResult');
      expect(c.config['cniVersion']).toBe(v);
    }
  });

  test('no recorded result: DEL still runs, without prevResult', async () => {
    const { registry, call } = setup(list('1.1.0', ['a']));
    await delNetwork(call, undefined);
    expect(registry.calls[0]!.config).not.toHaveProperty('prevResult');
  });
});

describe('CHECK (added in 0.4.0; skipped with disableCheck)', () => {
  test.each<[string, string, boolean | undefined, boolean]>([
    ['0.3.1 list: skipped', '0.3.1', undefined, false],
    ['0.4.0 list: runs', '0.4.0', undefined, true],
    ['1.1.0 list: runs', '1.1.0', undefined, true],
    ['1.1.0 list with disableCheck: skipped', '1.1.0', true, false],
    ['1.1.0 list with disableCheck false: runs', '1.1.0', false, true],
  ])('%s', async (_title, v, disableCheck, runs) => {
    const { registry, call } = setup(list(v, ['a', 'b'], disableCheck === undefined ? {} : { disableCheck }));
    await checkNetwork(call, { cniVersion: v });
    expect(registry.trace()).toEqual(runs ? ['a CHECK', 'b CHECK'] : []);
    for (const c of registry.calls) expect(c.config['prevResult']).toEqual({ cniVersion: v });
  });
});

describe('GC and STATUS (1.1.0 only)', () => {
  const VALID = [{ containerID: 'c1', ifname: 'net1' }];
  test.each<[string, string, boolean | undefined, boolean]>([
    ['GC on a 1.0.0 list: skipped', '1.0.0', undefined, false],
    ['GC on a 1.1.0 list: runs with cni.dev/valid-attachments', '1.1.0', undefined, true],
    ['GC on a 1.1.0 list with disableGC: skipped', '1.1.0', true, false],
  ])('%s', async (_title, v, disableGC, runs) => {
    const { registry, call } = setup(list(v, ['a', 'b'], disableGC === undefined ? {} : { disableGC }));
    await gcNetwork(call, VALID);
    expect(registry.trace()).toEqual(runs ? ['a GC', 'b GC'] : []);
    for (const c of registry.calls) {
      expect(c.config['cni.dev/valid-attachments']).toEqual(VALID);
      expect(c.config['cni.dev/attachments']).toEqual(VALID); // the legacy key libcni also sends
      expect(c.config).not.toHaveProperty('runtimeConfig');
    }
  });

  test.each([
    ['1.0.0', false],
    ['1.1.0', true],
  ])('STATUS on a %s list: runs = %s', async (v, runs) => {
    const { registry, call } = setup(list(v, ['a', 'b']));
    await statusNetwork(call);
    expect(registry.trace()).toEqual(runs ? ['a STATUS', 'b STATUS'] : []);
    for (const c of registry.calls) expect(c.config).toEqual({ type: c.type, capabilities: { portMappings: true }, name: 'net-a', cniVersion: v });
  });
});

describe('the first error stops the list (libcni), keeping its kind', () => {
  test.each<[string, (call: NetworkCall) => Promise<unknown>, string[]]>([
    ['ADD', (c) => addNetwork(c), ['a ADD', 'b ADD']],
    ['DEL', (c) => delNetwork(c, {}), ['c DEL', 'b DEL']],
    ['CHECK', (c) => checkNetwork(c, {}), ['a CHECK', 'b CHECK']],
    ['GC', (c) => gcNetwork(c, []), ['a GC', 'b GC']],
    ['STATUS', (c) => statusNetwork(c), ['a STATUS', 'b STATUS']],
  ])('%s', async (_cmd, run, trace) => {
    const { registry, call } = setup(list('1.1.0', ['a', 'b', 'c']));
    registry.on('b', fail('TryAgainLater'));
    const err = await run(call).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'TryAgainLater', cniCode: 11, message: 'network "net-a": plugin said no' });
    expect(registry.trace()).toEqual(trace);
  });
});

describe('negotiateVersion: highest version every plugin supports, asked with VERSION', () => {
  test.each<[string, string, Record<string, string[] | undefined>, string]>([
    ['all support everything', '1.1.0', { a: ['0.4.0', '1.0.0', '1.1.0'], b: ['1.0.0', '1.1.0'] }, '1.1.0'],
    ['one plugin is older', '1.1.0', { a: ['0.3.1', '0.4.0', '1.0.0'], b: ['0.4.0', '1.0.0', '1.1.0'] }, '1.0.0'],
    ['never above the list version', '0.4.0', { a: ['0.4.0', '1.0.0', '1.1.0'], b: ['1.1.0', '0.3.1', '0.4.0'] }, '0.4.0'],
    ['versions Plexus does not speak are ignored', '1.1.0', { a: ['0.2.0', '0.3.1', '2.0.0'], b: ['0.3.1'] }, '0.3.1'],
    ['nothing in common: keep the list version', '1.1.0', { a: ['0.3.1'], b: ['1.0.0'] }, '1.1.0'],
    ['a plugin answering nonsense: keep the list version', '1.0.0', { a: ['1.0.0'], b: undefined }, '1.0.0'],
  ])('%s (list %s)', async (_title, v, answers, expected) => {
    const { registry, call } = setup(list(v, Object.keys(answers)));
    for (const [type, supportedVersions] of Object.entries(answers)) {
      registry.on(type, () => (supportedVersions ? { cniVersion: '1.1.0', supportedVersions } : { nonsense: true }));
    }
    expect(await negotiateVersion(call, new Map())).toBe(expected);
    expect(registry.calls.map((c) => [c.command, c.config])).toEqual(Object.keys(answers).map(() => ['VERSION', { cniVersion: v }]));
  });

  test('answers are cached per type', async () => {
    const { registry, call } = setup(list('1.1.0', ['a', 'b', 'a']));
    registry.on('b', () => ({ supportedVersions: ['0.4.0', '1.0.0'] }));
    const cache = new Map<string, string[]>();
    expect(await negotiateVersion(call, cache)).toBe('1.0.0');
    expect(await negotiateVersion(call, cache)).toBe('1.0.0');
    expect(registry.trace()).toEqual(['a VERSION', 'b VERSION']);
    expect(cache.get('b')).toEqual(['0.4.0', '1.0.0']);
  });
});

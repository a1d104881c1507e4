import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlexusError } from '../../core/errors';
import { loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from './config';

const MIN = { clusterNetwork: 'cluster-net' };

function problem(raw: unknown): string {
  try {
    parseDaemonConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(PlexusError);
    expect(e).toMatchObject({ kind: 'InvalidConfig', cniCode: 7 });
    return (e as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

test('defaults are applied from the schema, nodeName from the host', () => {
  const expected: DaemonConfig = {
    clusterNetwork: 'cluster-net',
    socketPath: '/run/plexus/plexus.sock',
    stateDir: '/var/lib/plexus',
    binDirs: ['/opt/cni/bin', '/usr/lib/cni'],
    confDir: '/etc/cni/net.d',
    multusNamespace: 'kube-system',
    defaultNetworks: [],
    systemNamespaces: ['kube-system'],
    namespaceIsolation: false,
    globalNamespaces: ['default', 'kube-system'],
    nodeName: hostname(),
    deviceInfoDir: '/var/run/k8s.cni.cncf.io/devinfo',
    logLevel: 'info',
    source: { type: 'file', dir: '/etc/plexus/manifests', rescanSeconds: 2 },
    ipam: {},
    policy: { enforce: true, flowBuffer: 10000 },
    limits: { maxConcurrentRequests: 16, delegateTimeoutSeconds: 60, shutdownGraceSeconds: 30 },
    prestartDelegates: true,
  };
  expect(parseDaemonConfig(MIN)).toEqual(expected);
});

test.each<[string, object, Partial<Record<keyof DaemonConfig, unknown>>]>([
  // Regression: the source default sat inside oneOf, where ajv applies none, so rescanSeconds was undefined.
  ['a partial source gets its rescanSeconds default', { source: { type: 'file', dir: '/m' } }, { source: { type: 'file', dir: '/m', rescanSeconds: 2 } }],
  ['a partial limits block gets the other limits', { limits: { maxConcurrentRequests: 2 } }, { limits: { maxConcurrentRequests: 2, delegateTimeoutSeconds: 60, shutdownGraceSeconds: 30 } }],
  ['given values win over defaults', { nodeName: 'node-7', logLevel: 'debug', binDirs: ['/x'] }, { nodeName: 'node-7', logLevel: 'debug', binDirs: ['/x'] }],
  ['globalNamespaces as Multus\'s comma string', { globalNamespaces: 'default, shared,,tools ' }, { globalNamespaces: ['default', 'shared', 'tools'] }],
  ['globalNamespaces as a list', { globalNamespaces: ['a', 'b'] }, { globalNamespaces: ['a', 'b'] }],
  ['globalNamespaces empty string: none', { globalNamespaces: '' }, { globalNamespaces: [] }],
])('%s', (_title, given, expected) => {
  expect(parseDaemonConfig({ ...MIN, ...given })).toMatchObject(expected);
});

test.each<[string, object, string[]]>([
  ['an unknown key, named', { clusterNetwrok: 'x' }, ['must NOT have additional properties "clusterNetwrok"']],
  ['an unknown nested key, named with its path', { limits: { maxRequests: 3 } }, ['/limits must NOT have additional properties "maxRequests"']],
  ['an unknown source key', { source: { type: 'file', dir: '/m', watch: true } }, ['source: / must NOT have additional properties "watch"']],
  ['a file source key on the kubernetes source', { source: { type: 'kubernetes', dir: '/m' } }, ['source: / must NOT have additional properties "dir"']],
  ['a relative kubeconfig', { source: { type: 'kubernetes', kubeconfig: 'kc.yaml' } }, ['source: /kubeconfig must match pattern "^/"']],
  ['a missing required key', { clusterNetwork: undefined }, ["must have required property 'clusterNetwork'"]],
  ['a string where a path list belongs', { binDirs: '/opt/cni/bin' }, ['/binDirs must be array']],
  ['a number where a string belongs', { socketPath: 5 }, ['/socketPath must be string']],
  ['a relative path', { stateDir: 'var/lib/plexus' }, ['/stateDir must match pattern "^/"']],
  ['a relative path in a list', { binDirs: ['/ok', 'bin'] }, ['/binDirs/1 must match pattern "^/"']],
  ['a string where a boolean belongs', { namespaceIsolation: 'yes' }, ['/namespaceIsolation must be boolean']],
  ['an unknown log level', { logLevel: 'loud' }, ['/logLevel must be equal to one of the allowed values']],
  ['a limit out of range', { limits: { maxConcurrentRequests: 0 } }, ['/limits/maxConcurrentRequests must be >= 1']],
  ['a fractional count', { limits: { maxConcurrentRequests: 1.5 } }, ['/limits/maxConcurrentRequests must be integer']],
  ['an unknown source type', { source: { type: 'etcd', dir: '/m' } }, ['source: /type must be "file" or "kubernetes", not "etcd"']],
  ['an upper-case namespace', { multusNamespace: 'Kube-System' }, ['/multusNamespace must match pattern']],
  ['every problem at once', { bogus: 1, socketPath: 5 }, ['"bogus"', '/socketPath must be string']],
])('rejects %s (code 7)', (_title, given, parts) => {
  const msg = problem({ ...MIN, ...given });
  for (const p of parts) expect(msg).toContain(p);
});

test.each([null, undefined])('%p is an empty config: only clusterNetwork is missing', (raw) => {
  expect(problem(raw)).toBe("config: / must have required property 'clusterNetwork' (or an install section, which finds it)");
});

test('the result is deeply frozen and the input untouched', () => {
  const raw = { ...MIN, globalNamespaces: 'a,b', limits: { maxConcurrentRequests: 4 } };
  const conf = parseDaemonConfig(raw);
  for (const o of [conf, conf.limits, conf.source, conf.binDirs, conf.globalNamespaces]) expect(Object.isFrozen(o)).toBe(true);
  expect(() => ((conf as { socketPath: string }).socketPath = '/tmp/x')).toThrow(TypeError);
  expect(() => (conf.binDirs as string[]).push('/x')).toThrow(TypeError);
  expect(raw).toEqual({ ...MIN, globalNamespaces: 'a,b', limits: { maxConcurrentRequests: 4 } });
});

describe('loadDaemonConfig', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'plexus-config-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test.each<[string, string]>([
    ['YAML', 'clusterNetwork: cluster-net\nglobalNamespaces: a,b\nlimits:\n  maxConcurrentRequests: 3\n'],
    ['JSON', JSON.stringify({ clusterNetwork: 'cluster-net', globalNamespaces: 'a,b', limits: { maxConcurrentRequests: 3 } })],
  ])('reads %s', (_kind, text) => {
    writeFileSync(join(dir, 'plexusd.conf'), text);
    expect(loadDaemonConfig(join(dir, 'plexusd.conf'))).toMatchObject({ clusterNetwork: 'cluster-net', globalNamespaces: ['a', 'b'], limits: { maxConcurrentRequests: 3 } });
  });

  test.each<[string, string | null, string, RegExp]>([
    ['a missing file: I/O failure (5)', null, 'IoFailure', /cannot read config/],
    ['bad YAML: decode failure (6)', 'clusterNetwork: [unclosed', 'DecodeFailure', /is not valid YAML\/JSON/],
    ['a bad key: invalid config (7) naming the file', 'clusterNetwork: x\nsocketpath: /x\n', 'InvalidConfig', /plexusd\.conf: .*"socketpath"/],
  ])('%s', (_title, text, kind, msg) => {
    const path = join(dir, 'plexusd.conf');
    if (text !== null) writeFileSync(path, text);
    expect(() => loadDaemonConfig(path)).toThrow(expect.objectContaining({ kind, message: expect.stringMatching(msg) }));
  });
});

test.each([
  ['an unknown IPAM store type', { store: { type: 'zookeeper' } }, 'ipam.store'],
  ['a pool with a bad CIDR', { pools: [{ name: 'p', cidrs: ['10.0.0.0/33'] }] }, 'pool p cidrs[0]'],
])('the ipam section is validated by the IPAM schema: %s', (_t, ipam, field) => {
  expect(() => parseDaemonConfig({ ...MIN, ipam })).toThrow(field);
});

describe('routed', () => {
  test('absent: off; {} turns it on with every default', () => {
    expect(parseDaemonConfig(MIN).routed).toBeUndefined();
    expect(parseDaemonConfig({ ...MIN, routed: {} }).routed).toEqual({
      mode: 'native', ebpf: true, pinDir: '/sys/fs/bpf/plexus', vxlan: { vni: 4096, port: 4789, device: 'plexus.vxlan' }, routeSyncMs: 500,
    });
  });

  test.each([
    ['an unknown mode', { mode: 'bgp' }, /routed: \/mode must be equal to one of the allowed values \(\["native","vxlan"\]\)/],
    ['a pin directory outside bpffs', { pinDir: '/tmp/pins' }, /routed: \/pinDir must match/],
    ['a VNI out of range', { vxlan: { vni: 1 << 24 } }, /routed: \/vxlan\/vni must be <= 16777215/],
    ['an interface name too long', { underlay: 'an-interface-name' }, /routed: \/underlay must match/],
    ['an unknown key', { ebfp: false }, /routed: \/ must NOT have additional properties "ebfp"/],
  ])('%s is refused, naming the field', (_name, routed, msg) => {
    expect(problem({ ...MIN, routed })).toMatch(msg);
  });
});

test('the README\'s example config (examples/plexusd.yaml) loads: routed and sriov on, their defaults applied', () => {
  const c = loadDaemonConfig(join(__dirname, '../../examples/plexusd.yaml'));
  expect(c.routed).toMatchObject({ mode: 'native', underlay: 'eth0', ebpf: true });
  expect(c.sriov).toMatchObject({ sysfsRoot: '/sys', emulatePf: false, podResources: { socket: '/var/lib/kubelet/pod-resources/kubelet.sock' } });
});

test('the sriov section is validated by plexus-sriov\'s schema, naming the field', () => {
  expect(problem({ ...MIN, sriov: { sysfsRoot: 'sys' } })).toMatch(/sriov: \/sysfsRoot must match pattern/);
  expect(problem({ ...MIN, sriov: { emulatePf: true } })).toMatch(/sriov.emulatePf is for a fake sysfs tree/);
});

test('the dpdk section is validated by the engine\'s schema, naming the field; its defaults are the README\'s', () => {
  expect(problem({ ...MIN, dpdk: { socketDir: '/run/a,b' } })).toMatch(/dpdk: \/socketDir must match pattern/);
  expect(problem({ ...MIN, dpdk: { maxSleepUs: 0 } })).toMatch(/dpdk: \/maxSleepUs must be >= 1/);
  expect(parseDaemonConfig({ ...MIN, dpdk: {} }).dpdk).toEqual({
    socketPath: '/run/plexus/dataplane.sock', socketDir: '/run/plexus/dpdk', lcores: '0@(0-1),1@1', memoryMb: 256, hugepages: false,
    mbufs: 16383, maxSleepUs: 200, filePrefix: 'plexus-dataplane', logLevel: 'info', uplinks: {},
  });
});

test('the kubernetes source: in-cluster by default, with its bounds defaulted', () => {
  expect(parseDaemonConfig({ ...MIN, source: { type: 'kubernetes' } }).source).toEqual({ type: 'kubernetes', podWaitMs: 5000, requestTimeoutMs: 10000, watchSilenceSeconds: 150, backoffMaxMs: 30000 });
});

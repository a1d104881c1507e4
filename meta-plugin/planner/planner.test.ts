import { PlexusError, type ErrorKind } from '../../core/errors';
import { thrownBy } from '../../test/helpers/thrown';
import type { IfName, PodRef } from '../../cni/ids';
import { plan } from './planner';
import type { ConfFile, NadObject, Plan, PlanRequest, PlanSettings, PodObject } from './types';
import type { NetworkConfList } from '../../cni/network-config';

const POD: PodRef = { namespace: 'team', name: 'web-0' };
const RESOURCE = 'k8s.v1.cni.cncf.io/resourceName';
const ALL_CAPS = { ips: true, mac: true, portMappings: true, bandwidth: true, infinibandGUID: true };

function nad(
  namespace: string,
  name: string,
  config?: object | string,
  annotations: Record<string, string> = {},
): NadObject {
  const text = typeof config === 'string' || config === undefined ? config : JSON.stringify(config);
  return text === undefined ? { namespace, name, annotations } : { namespace, name, config: text, annotations };
}
const list = (name: string, ...plugins: object[]) => ({ cniVersion: '1.0.0', name, plugins });

const NADS: NadObject[] = [
  nad(
    'kube-system',
    'cluster-net',
    list('cluster-net', { type: 'plexus-routed', capabilities: { portMappings: true } }),
  ),
  nad('kube-system', 'alt-cluster', list('alt-cluster', { type: 'calico' })),
  nad('kube-system', 'monitoring', list('monitoring', { type: 'macvlan' })),
  nad('team', 'net-a', list('net-a', { type: 'macvlan', capabilities: { ips: true } }, { type: 'tuning' })),
  nad('team', 'net-b', { cniVersion: '0.4.0', type: 'bridge', name: 'net-b' }),
  nad('team', 'caps', list('caps', { type: 'macvlan', capabilities: ALL_CAPS })),
  nad('team', 'bare', list('bare', { type: 'macvlan' })),
  nad('team', 'on-disk'),
  nad('team', 'vf', list('vf', { type: 'sriov' }, { type: 'tuning' }), { [RESOURCE]: 'intel.com/vf' }),
  nad('other', 'net-c', list('net-c', { type: 'ipvlan' })),
  nad('shared', 'net-g', list('net-g', { type: 'ipvlan' })),
];

const CONF_FILES: ConfFile[] = [
  { path: '/etc/cni/net.d/10-pod.conflist', kind: 'conflist', json: list('k8s-pod-network', { type: 'calico' }) },
  {
    path: '/etc/cni/net.d/20-on-disk.conf',
    kind: 'conf',
    json: { cniVersion: '0.3.1', name: 'on-disk', type: 'conf-file' },
  },
  { path: '/etc/cni/net.d/30-on-disk.conflist', kind: 'conflist', json: list('on-disk', { type: 'conflist-file' }) },
];

const SETTINGS: PlanSettings = {
  clusterNetwork: 'cluster-net',
  multusNamespace: 'kube-system',
  defaultNetworks: [],
  systemNamespaces: ['kube-system'],
  namespaceIsolation: false,
  globalNamespaces: ['shared'],
};

interface Options {
  networks?: string;
  defaultNetwork?: string;
  podRef?: PodRef | null;
  pod?: PodObject | null;
  ifName?: string;
  settings?: Partial<PlanSettings>;
  nads?: NadObject[];
  confFiles?: ConfFile[];
  devices?: Record<string, string[]>;
  devicesProblem?: string;
  runtimeConfig?: Record<string, unknown>;
}

function request(o: Options = {}): PlanRequest {
  const podRef = o.podRef === undefined ? POD : o.podRef;
  const annotations: Record<string, string> = {};
  if (o.networks !== undefined) annotations['k8s.v1.cni.cncf.io/networks'] = o.networks;
  if (o.defaultNetwork !== undefined) annotations['v1.multus-cni.io/default-network'] = o.defaultNetwork;
  const pod = o.pod === undefined ? { ...(podRef ?? POD), annotations } : o.pod;
  const nads = [...(o.nads ?? []), ...NADS];
  return {
    podRef,
    pod,
    ifName: (o.ifName ?? 'eth0') as IfName,
    cniVersion: '1.1.0',
    runtimeConfig: o.runtimeConfig ?? {},
    settings: { ...SETTINGS, ...o.settings },
    lookupNad: (namespace, name) => nads.find((n) => n.namespace === namespace && n.name === name),
    confFiles: o.confFiles ?? CONF_FILES,
    devices: o.devices ?? {},
    ...(o.devicesProblem ? { devicesProblem: o.devicesProblem } : {}),
  };
}

/** `index origin statusName ifName` per attachment. */
const summary = (p: Plan): string[] => p.attachments.map((a) => `${a.index} ${a.origin} ${a.statusName} ${a.ifName}`);
const json = (...elements: unknown[]): string => JSON.stringify(elements);
const second = (p: Plan) => p.attachments[1]!;

describe('plan: which attachments, in which order', () => {
  const rows: [string, Options, string[]][] = [
    ['S29: cluster network alone at index 0', {}, ['0 cluster kube-system/cluster-net eth0']],
    ['S29: cluster network takes CNI_IFNAME', { ifName: 'ens3' }, ['0 cluster kube-system/cluster-net ens3']],
    [
      'S29: cluster first, then defaultNetworks, then the annotation',
      { networks: 'net-a', settings: { defaultNetworks: ['monitoring'] } },
      [
        '0 cluster kube-system/cluster-net eth0',
        '1 defaultNetworks kube-system/monitoring net1',
        '2 annotation team/net-a net2',
      ],
    ],
    [
      'defaultNetworks: qualified entries keep their namespace',
      { settings: { defaultNetworks: ['team/net-b'] } },
      ['0 cluster kube-system/cluster-net eth0', '1 defaultNetworks team/net-b net1'],
    ],
    [
      'systemNamespaces: no defaultNetworks, the annotation still applies',
      {
        podRef: { namespace: 'kube-system', name: 'dns' },
        networks: 'monitoring',
        settings: { defaultNetworks: ['monitoring'] },
      },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation kube-system/monitoring net1'],
    ],
    [
      'no podRef: cluster network only',
      {
        podRef: null,
        pod: { ...POD, annotations: { 'k8s.v1.cni.cncf.io/networks': 'net-a' } },
        settings: { defaultNetworks: ['monitoring'] },
      },
      ['0 cluster kube-system/cluster-net eth0'],
    ],
    [
      'no podRef: the default-network annotation is not read',
      { podRef: null, pod: { ...POD, annotations: { 'v1.multus-cni.io/default-network': 'alt-cluster' } } },
      ['0 cluster kube-system/cluster-net eth0'],
    ],
    [
      'podRef without a known pod: cluster network and defaultNetworks',
      { pod: null, settings: { defaultNetworks: ['monitoring'] } },
      ['0 cluster kube-system/cluster-net eth0', '1 defaultNetworks kube-system/monitoring net1'],
    ],
    [
      'S9: comma form with a namespace',
      { networks: 'net-a, other/net-c' },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation team/net-a net1', '2 annotation other/net-c net2'],
    ],
    [
      'S22: the same network twice is two attachments',
      { networks: json({ name: 'net-a' }, { name: 'net-a' }) },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation team/net-a net1', '2 annotation team/net-a net2'],
    ],
    [
      'S15: requested interface names are used as given',
      { networks: 'net-a@data0,' + 'net-b@data1' },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation team/net-a data0', '2 annotation team/net-b data1'],
    ],
    [
      'S15/S23: generated names are net<k> by position and skip names requested later',
      { networks: 'net-a,net-b@net1,net-b' },
      [
        '0 cluster kube-system/cluster-net eth0',
        '1 annotation team/net-a net2',
        '2 annotation team/net-b net1',
        '3 annotation team/net-b net3',
      ],
    ],
    [
      'S15/S23: generated names skip names already generated',
      { networks: 'net-a@net2,net-b,net-b' },
      [
        '0 cluster kube-system/cluster-net eth0',
        '1 annotation team/net-a net2',
        '2 annotation team/net-b net3',
        '3 annotation team/net-b net4',
      ],
    ],
    [
      'S23: generated names skip the cluster interface name',
      { ifName: 'net1', networks: 'net-a' },
      ['0 cluster kube-system/cluster-net net1', '1 annotation team/net-a net2'],
    ],
    [
      'default-network annotation replaces the cluster network',
      { defaultNetwork: 'alt-cluster', networks: 'net-a' },
      ['0 default-network-annotation kube-system/alt-cluster eth0', '1 annotation team/net-a net1'],
    ],
    [
      'default-network annotation with a namespace',
      { defaultNetwork: ' team/net-b ' },
      ['0 default-network-annotation team/net-b eth0'],
    ],
    [
      'S5: cluster network from a configlist on disk is named by its config name',
      { settings: { clusterNetwork: 'k8s-pod-network' } },
      ['0 cluster k8s-pod-network eth0'],
    ],
    ['cluster network as ns/name', { settings: { clusterNetwork: 'team/net-b' } }, ['0 cluster team/net-b eth0']],
    [
      'S13-S19: an invalid annotation is ignored, defaultNetworks stay',
      { networks: json({ name: 'net-a', ips: ['10.0.0.300'] }), settings: { defaultNetworks: ['monitoring'] } },
      ['0 cluster kube-system/cluster-net eth0', '1 defaultNetworks kube-system/monitoring net1'],
    ],
    [
      'S35: isolation allows the pod namespace and global namespaces',
      { networks: 'net-a,shared/net-g', settings: { namespaceIsolation: true } },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation team/net-a net1', '2 annotation shared/net-g net2'],
    ],
    [
      'S35: defaultNetworks from another namespace are exempt',
      { settings: { namespaceIsolation: true, defaultNetworks: ['monitoring'] } },
      ['0 cluster kube-system/cluster-net eth0', '1 defaultNetworks kube-system/monitoring net1'],
    ],
    [
      'S35: without isolation any namespace may be selected',
      { networks: 'other/net-c' },
      ['0 cluster kube-system/cluster-net eth0', '1 annotation other/net-c net1'],
    ],
  ];
  test.each(rows)('%s', (_title, options, expected) => {
    const p = plan(request(options));
    expect(summary(p)).toEqual(expected);
    expect(p.attachments.map((a) => a.isDefault)).toEqual(expected.map((_, i) => i === 0));
  });
});

describe('plan: warnings name the pod', () => {
  const rows: [string, Options, RegExp[]][] = [
    ['no warnings for a valid annotation', { networks: 'net-a' }, []],
    [
      'S13: invalid ip ignores the annotation',
      { networks: json({ name: 'net-a', ips: ['10.0.0.300'] }) },
      [/^pod team\/web-0: ignoring annotation k8s.v1.cni.cncf.io\/networks: element 0 key "ips"/],
    ],
    [
      'S19: default-route on two elements ignores the annotation',
      { networks: json({ name: 'net-a', 'default-route': [] }, { name: 'net-b', 'default-route': [] }) },
      [/^pod team\/web-0: ignoring annotation .*only one may \(S19\)/],
    ],
    [
      'S10: reserved key warns',
      { networks: json({ name: 'net-a', colour: 'red' }) },
      [/^pod team\/web-0: annotation k8s.v1.cni.cncf.io\/networks: element 0: reserved key "colour"/],
    ],
    [
      'default-network annotation invalid is ignored',
      { defaultNetwork: 'Alt_Cluster' },
      [/^pod team\/web-0: ignoring annotation v1.multus-cni.io\/default-network: network name "Alt_Cluster"/],
    ],
    [
      'default-network annotation naming two networks is ignored',
      { defaultNetwork: 'alt-cluster,net-b' },
      [/^pod team\/web-0: ignoring annotation v1.multus-cni.io\/default-network: it names more than one network/],
    ],
  ];
  test.each(rows)('%s', (_title, options, expected) => {
    const p = plan(request(options));
    expect(p.warnings).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(p.warnings[i]).toMatch(re));
    expect(p.attachments[0]!.statusName).toBe('kube-system/cluster-net');
  });
});

describe('plan: failures', () => {
  const withNad = (n: NadObject, networks = n.name): Options => ({ nads: [n], networks });
  const rows: [string, Options, ErrorKind, RegExp][] = [
    [
      'S5: a missing NAD fails',
      { networks: 'nope' },
      'NetworkNotFound',
      /^network attachment definition team\/nope not found$/,
    ],
    [
      'S5 (4): NAD without config and without a file fails',
      withNad(nad('team', 'ghost')),
      'NetworkNotFound',
      /team\/ghost has no spec.config and no configuration file in confDir is named "ghost"/,
    ],
    [
      'S5: a missing cluster network fails',
      { settings: { clusterNetwork: 'nowhere' } },
      'NetworkNotFound',
      /cluster network "nowhere"/,
    ],
    [
      'default-network annotation naming a missing NAD fails',
      { defaultNetwork: 'missing' },
      'NetworkNotFound',
      /kube-system\/missing not found/,
    ],
    [
      'S5 (1): spec.config not JSON fails',
      withNad(nad('team', 'broken', '{"type":')),
      'InvalidConfig',
      /team\/broken: spec.config is not valid JSON/,
    ],
    [
      'S5 (1): spec.config not an object fails',
      withNad(nad('team', 'arr', '[]')),
      'InvalidConfig',
      /team\/arr: the config is not a JSON object/,
    ],
    [
      'plugin without type fails, naming network and plugin',
      withNad(nad('team', 'untyped', list('untyped', { type: 'macvlan' }, { name: 'x' }))),
      'InvalidConfig',
      /network untyped: plugin 1 has no string "type"/,
    ],
    [
      'single config without type fails',
      withNad(nad('team', 'single', { name: 'single' })),
      'InvalidConfig',
      /network single: plugin 0/,
    ],
    [
      'empty plugins list fails',
      withNad(nad('team', 'empty', list('empty'))),
      'InvalidConfig',
      /network empty: "plugins" is not a non-empty list/,
    ],
    [
      'cniVersion not a string fails',
      withNad(nad('team', 'ver', { type: 'x', cniVersion: 1 })),
      'InvalidConfig',
      /"cniVersion" is not a string/,
    ],
    [
      'cniVersions not a list fails',
      withNad(nad('team', 'vers', { type: 'x', cniVersions: '1.0.0' })),
      'InvalidConfig',
      /"cniVersions"/,
    ],
    [
      'disableCheck not a boolean fails',
      withNad(nad('team', 'dc', { ...list('dc', { type: 'x' }), disableCheck: 'yes' })),
      'InvalidConfig',
      /"disableCheck"/,
    ],
    [
      'defaultNetworks entry invalid fails',
      { settings: { defaultNetworks: ['Bad Name'] } },
      'InvalidConfig',
      /defaultNetworks entry "Bad Name"/,
    ],
    [
      'S15: requested name equal to the cluster interface fails',
      { networks: 'net-a@eth0' },
      'InterfaceConflict',
      /pod team\/web-0: network team\/net-a requests interface "eth0", already used by the cluster network/,
    ],
    [
      'S15: requested name used by an earlier attachment fails',
      { networks: 'net-a@data0,net-b@data0' },
      'InterfaceConflict',
      /pod team\/web-0: network team\/net-b requests interface "data0", already used by network team\/net-a/,
    ],
    ...(
      [
        ['S13', { ips: ['10.0.0.1/24'] }, 'ips'],
        ['S14', { mac: '02:00:00:00:00:01' }, 'mac'],
        ['S17', { portMappings: [{ hostPort: 80, containerPort: 80 }] }, 'portMappings'],
        ['S18', { bandwidth: { ingressRate: 1 } }, 'bandwidth'],
        ['S20', { 'infiniband-guid': '00:11:22:33:44:55:66:77' }, 'infinibandGUID'],
      ] as const
    ).map(([rule, keys, capability]): [string, Options, ErrorKind, RegExp] => [
      `${rule}: ${capability} without a plugin declaring the capability fails`,
      { networks: json({ name: 'bare', ...keys }) },
      'CapabilityMissing',
      new RegExp(`^pod team/web-0: network team/bare cannot take "${capability}".*\\(${rule}\\)$`),
    ]),
    [
      'S21: ips with ipam-claim-reference fails',
      { networks: json({ name: 'net-a', ips: ['10.0.0.1'], 'ipam-claim-reference': 'claim' }) },
      'InvalidAnnotation',
      /^pod team\/web-0: annotation k8s.v1.cni.cncf.io\/networks: element 0 \(network "net-a"\).*\(S21\)/,
    ],
    [
      'S35: annotation selecting another namespace fails under isolation',
      { networks: 'other/net-c', settings: { namespaceIsolation: true } },
      'NetworkNotAllowed',
      /^pod team\/web-0 may not select network other\/net-c/,
    ],
    [
      'S35: default-network annotation in another namespace fails under isolation',
      { defaultNetwork: 'alt-cluster', settings: { namespaceIsolation: true } },
      'NetworkNotAllowed',
      /^pod team\/web-0 may not select network kube-system\/alt-cluster/,
    ],
    [
      'devices: none left for the resource fails',
      { networks: 'vf,vf', devices: { 'intel.com/vf': ['0000:03:02.0'] } },
      'DeviceUnavailable',
      /^pod team\/web-0: network team\/vf needs a device of resource intel.com\/vf, but the pod was given 1 and its networks ask for more$/,
    ],
    ['devices: resource never allocated fails', { networks: 'vf' }, 'DeviceUnavailable', /resource intel.com\/vf, but the pod was given none \(does its spec request the resource/],
    ['devices: why the lookup came back short is said', { networks: 'vf', devicesProblem: 'kubelet PodResources API at /x.sock: UNAVAILABLE' }, 'DeviceUnavailable', /given none .*; device lookup: kubelet PodResources API at \/x.sock: UNAVAILABLE$/],
    [
      'S16: cni-args into a plugin whose args is not an object fails',
      withNad(
        nad('team', 'odd-args', list('odd-args', { type: 'x', args: 'a=b' })),
        json({ name: 'odd-args', 'cni-args': { a: 1 } }),
      ),
      'InvalidConfig',
      /network odd-args: plugin 0: "args" is not an object/,
    ],
  ];
  test.each(rows)('%s', (_title, options, kind, message) => {
    const err = thrownBy(() => plan(request(options)));
    expect(err).toBeInstanceOf(PlexusError);
    expect(err).toMatchObject({ kind, message: expect.stringMatching(message) });
  });
});

describe('plan: network resolution (S5, S6, versions)', () => {
  const files = (...f: ConfFile[]) => f;
  const probe = (n: NadObject, confFiles: ConfFile[] = CONF_FILES): NetworkConfList =>
    second(plan(request({ nads: [n], networks: n.name, confFiles }))).conf;
  const rows: [string, () => NetworkConfList, Partial<NetworkConfList>][] = [
    [
      'S5 (1): spec.config wins over files on disk',
      () => probe(nad('team', 'on-disk', list('on-disk', { type: 'from-nad' }))),
      { single: false, plugins: [{ type: 'from-nad' }] },
    ],
    [
      'S5 (2): a configlist file before a config file',
      () => probe(nad('team', 'on-disk')),
      { plugins: [{ type: 'conflist-file' }] },
    ],
    [
      'S5 (3): a config file when no configlist matches',
      () =>
        probe(
          nad('team', 'on-disk'),
          CONF_FILES.filter((f) => f.kind === 'conf'),
        ),
      { single: true, cniVersion: '0.3.1', plugins: [{ cniVersion: '0.3.1', name: 'on-disk', type: 'conf-file' }] },
    ],
    [
      'S5 (1): whitespace spec.config counts as absent',
      () => probe(nad('team', 'on-disk', '  \n')),
      { plugins: [{ type: 'conflist-file' }] },
    ],
    [
      'S5: a .conf file holding plugins is a list',
      () =>
        probe(
          nad('team', 'x'),
          files({ path: '/x.conf', kind: 'conf', json: list('x', { type: 'a' }, { type: 'b' }) }),
        ),
      { single: false, plugins: [{ type: 'a' }, { type: 'b' }] },
    ],
    [
      'S6: the NAD name is injected when the config has none',
      () => probe(nad('team', 'anon', { cniVersion: '1.0.0', plugins: [{ type: 'a' }] })),
      { name: 'anon' },
    ],
    [
      'S7: a config name differing from the NAD name is kept',
      () => probe(nad('team', 'nad-name', list('conf-name', { type: 'a' }))),
      { name: 'conf-name' },
    ],
    [
      'single config: one plugin that is the whole object',
      () => probe(nad('team', 'one', { cniVersion: '0.4.0', type: 'bridge', name: 'one' })),
      { single: true, cniVersion: '0.4.0', plugins: [{ cniVersion: '0.4.0', type: 'bridge', name: 'one' }] },
    ],
    [
      'cniVersions: the highest version Plexus supports, compared numerically',
      () =>
        probe(nad('team', 'v', { cniVersions: ['0.4.0', '1.1.0', '2.0.0', '1.0.0'], cniVersion: '0.3.1', type: 'a' })),
      { cniVersion: '1.1.0' },
    ],
    [
      'cniVersions with nothing supported falls back to cniVersion',
      () => probe(nad('team', 'v', { cniVersions: ['9.0.0'], cniVersion: '0.3.1', type: 'a' })),
      { cniVersion: '0.3.1' },
    ],
    [
      'no cniVersion: the runtime version, marked injected',
      () => probe(nad('team', 'v', { plugins: [{ type: 'a' }] })),
      { cniVersion: '1.1.0', cniVersionInjected: true },
    ],
    [
      'disableCheck and disableGC are carried',
      () => probe(nad('team', 'd', { ...list('d', { type: 'a' }), disableCheck: true, disableGC: 'TRUE' })),
      { disableCheck: true, disableGC: true },
    ],
  ];
  test.each(rows)('%s', (_title, resolve, expected) => {
    const conf = resolve();
    expect(conf).toMatchObject(expected);
    if (!('cniVersionInjected' in expected)) expect(conf.cniVersionInjected).toBeUndefined();
  });
});

describe('plan: capability args of a selected network', () => {
  const rows: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['S13: ips', { ips: ['10.0.0.5/24', 'fd00::5/64'] }, { ips: ['10.0.0.5/24', 'fd00::5/64'] }],
    ['S14: mac, normalised', { mac: '02-AA-00-00-00-01' }, { mac: '02:aa:00:00:00:01' }],
    [
      'S17: portMappings',
      { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'udp' }] },
      { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'UDP' }] },
    ],
    [
      'S18: bandwidth',
      { bandwidth: { ingressRate: 100, ingressBurst: 200 } },
      { bandwidth: { ingressRate: 100, ingressBurst: 200 } },
    ],
    [
      'S20: infiniband-guid',
      { 'infiniband-guid': 'aa:bb:cc:dd:ee:ff:00:11' },
      { infinibandGUID: 'aa:bb:cc:dd:ee:ff:00:11' },
    ],
    [
      'S21: ipam-claim-reference',
      { 'ipam-claim-reference': 'web-0.caps.net1' },
      { ipamClaimReference: 'web-0.caps.net1' },
    ],
    [
      'S15/S16/S19: keys that are not capability args',
      { interface: 'x0', 'cni-args': { a: 1 }, 'default-route': [] },
      {},
    ],
  ];
  test.each(rows)('%s', (_title, keys, expected) => {
    const p = plan(request({ networks: json({ name: 'caps', ...keys }) }));
    expect(second(p).runtimeConfig).toEqual(expected);
  });

  test.each([['S21: ipam-claim-reference needs no capability and is set on the attachment', 'bare']])(
    '%s',
    (_title, network) => {
      const a = second(plan(request({ networks: json({ name: network, 'ipam-claim-reference': 'claim-1' }) })));
      expect(a.runtimeConfig).toEqual({ ipamClaimReference: 'claim-1' });
    },
  );
});

describe('plan: kubelet runtimeConfig (S36)', () => {
  const kubelet = {
    portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }],
    bandwidth: { ingressRate: 5 },
    dns: { servers: ['10.96.0.10'] },
  };
  const rows: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['S36: kubelet runtimeConfig reaches the cluster network unchanged', kubelet, kubelet],
    [
      'S36: containerd port mapping spelling is normalised',
      { portMappings: [{ HostPort: 80, ContainerPort: 8080, Protocol: 'tcp', HostIP: '' }] },
      { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp', hostIP: '' }] },
    ],
    [
      'S36: containerd bandwidth spelling is normalised',
      { bandwidth: { IngressRate: 1, IngressBurst: 2, EgressRate: 3, EgressBurst: 4 } },
      { bandwidth: { ingressRate: 1, ingressBurst: 2, egressRate: 3, egressBurst: 4 } },
    ],
    [
      'S36: the CONVENTIONS spelling wins when both are present',
      { portMappings: [{ HostPort: 1, hostPort: 2, containerPort: 3 }] },
      { portMappings: [{ hostPort: 2, containerPort: 3 }] },
    ],
  ];
  test.each(rows)('%s', (_title, runtimeConfig, expected) => {
    const p = plan(request({ runtimeConfig, networks: 'caps,net-a', settings: { defaultNetworks: ['monitoring'] } }));
    expect(p.attachments[0]!.runtimeConfig).toEqual(expected);
  });

  test.each([['S36: kubelet runtimeConfig is absent from every other attachment']])('%s', () => {
    const p = plan(
      request({ runtimeConfig: kubelet, networks: 'caps,net-a', settings: { defaultNetworks: ['monitoring'] } }),
    );
    expect(p.attachments).toHaveLength(4);
    for (const a of p.attachments.slice(1)) expect(a.runtimeConfig).toEqual({});
  });
});

describe('plan: per-attachment settings', () => {
  const rows: [string, Options, (p: Plan) => void][] = [
    [
      'S16: cni-args reach every plugin and win over the NAD args',
      {
        nads: [
          nad(
            'team',
            'argd',
            list('argd', { type: 'a', args: { cni: { x: 'nad', y: 'nad' }, other: 1 } }, { type: 'b' }),
          ),
        ],
        networks: json({ name: 'argd', 'cni-args': { x: 'pod', z: 'pod' } }),
      },
      (p) =>
        expect(second(p).conf.plugins).toEqual([
          { type: 'a', args: { cni: { x: 'pod', y: 'nad', z: 'pod' }, other: 1 } },
          { type: 'b', args: { cni: { x: 'pod', z: 'pod' } } },
        ]),
    ],
    [
      'S16: without cni-args the plugins are untouched',
      { networks: 'net-a' },
      (p) =>
        expect(second(p).conf.plugins).toEqual([{ type: 'macvlan', capabilities: { ips: true } }, { type: 'tuning' }]),
    ],
    [
      'S19: default-route gateways are set on the attachment',
      { networks: json({ name: 'net-a' }, { name: 'net-b', 'default-route': ['10.0.0.1'] }) },
      (p) => {
        expect(p.attachments.map((a) => a.defaultRoute)).toEqual([undefined, undefined, ['10.0.0.1']]);
      },
    ],
    [
      'S19: an empty default-route list is kept',
      { networks: json({ name: 'net-a', 'default-route': [] }) },
      (p) => expect(second(p).defaultRoute).toEqual([]),
    ],
    [
      'S27: NAD attachments record their NAD; a disk cluster network has none',
      { settings: { clusterNetwork: 'k8s-pod-network' }, networks: 'net-a' },
      (p) => expect(p.attachments.map((a) => a.nad)).toEqual([undefined, { namespace: 'team', name: 'net-a' }]),
    ],
    [
      'devices: the device goes to every plugin (deviceID and pciBusID, as Multus), the capability args and the attachment',
      { networks: 'vf', devices: { 'intel.com/vf': ['0000:03:02.0'] } },
      (p) => {
        const a = second(p);
        expect(a.conf.plugins.map((pl) => pl['deviceID'])).toEqual(['0000:03:02.0', '0000:03:02.0']);
        expect(a.conf.plugins.map((pl) => pl['pciBusID'])).toEqual(['0000:03:02.0', '0000:03:02.0']);
        expect(a.runtimeConfig).toEqual({ deviceID: '0000:03:02.0' });
        expect(a).toMatchObject({ resourceName: 'intel.com/vf', deviceId: '0000:03:02.0' });
      },
    ],
    [
      'devices: consumed in order across attachments, cluster network first',
      {
        nads: [nad('kube-system', 'vf-cluster', list('vf-cluster', { type: 'sriov' }), { [RESOURCE]: 'intel.com/vf' })],
        settings: { clusterNetwork: 'vf-cluster' },
        networks: 'net-a,vf,vf',
        devices: { 'intel.com/vf': ['vf0', 'vf1', 'vf2'] },
      },
      (p) => expect(p.attachments.map((a) => a.deviceId)).toEqual(['vf0', undefined, 'vf1', 'vf2']),
    ],
    [
      'devices: a NAD without resourceName takes no device',
      { networks: 'net-a', devices: { 'intel.com/vf': ['vf0'] } },
      (p) => expect(second(p)).not.toHaveProperty('deviceId'),
    ],
    [
      'S22: repeated networks get independent configs',
      { networks: json({ name: 'net-a', 'cni-args': { n: 1 } }, { name: 'net-a', 'cni-args': { n: 2 } }) },
      (p) => {
        expect(second(p).conf.plugins[0]!['args']).toEqual({ cni: { n: 1 } });
        expect(p.attachments[2]!.conf.plugins[0]!['args']).toEqual({ cni: { n: 2 } });
      },
    ],
  ];
  test.each(rows)('%s', (_title, options, check) => check(plan(request(options))));
});

describe('plan: purity', () => {
  function deepFreeze<T>(v: T): T {
    if (typeof v === 'object' && v !== null) {
      Object.values(v).forEach(deepFreeze);
      Object.freeze(v);
    }
    return v;
  }
  const rows: [string, Options][] = [
    [
      'inputs are not mutated: cni-args, devices, kubelet spelling',
      {
        runtimeConfig: { portMappings: [{ HostPort: 80, ContainerPort: 80 }], bandwidth: { IngressRate: 1 } },
        networks: json({ name: 'vf', 'cni-args': { a: 1 } }, { name: 'caps', ips: ['10.0.0.1'], 'cni-args': { b: 2 } }),
        devices: { 'intel.com/vf': ['vf0'] },
        settings: { defaultNetworks: ['monitoring'] },
      },
    ],
    [
      'inputs are not mutated: configs from disk',
      { settings: { clusterNetwork: 'k8s-pod-network' }, networks: json({ name: 'on-disk', 'cni-args': { a: 1 } }) },
    ],
  ];
  test.each(rows)('%s', (_title, options) => {
    const req = request(options);
    const inputs = {
      nads: NADS,
      confFiles: req.confFiles,
      runtimeConfig: req.runtimeConfig,
      devices: req.devices,
      pod: req.pod,
    };
    const before = structuredClone(inputs);
    deepFreeze(inputs);
    deepFreeze(req.settings);
    const first = plan(req);
    expect(inputs).toEqual(before);
    expect(plan(req)).toEqual(first);
  });
});

import { parseResult } from '../../cni/result';
import { defaultGateways, formatNetworkStatus, networkStatusOf, type NetworkStatus, type StatusInput } from './network-status';

const NS = '/var/run/netns/pod';
const HOST_VETH = { name: 'veth1234', mac: '02:00:00:00:00:01' };
const ETH0 = { name: 'eth0', mac: '0a:58:0a:00:00:02', mtu: 1450, sandbox: NS };
const NET1 = { name: 'net1', mac: '0a:58:0a:00:00:03', sandbox: NS };

const input = (result: unknown, over: Partial<StatusInput> = {}): StatusInput => ({
  statusName: 'team/net-a',
  isDefault: false,
  result,
  cniVersion: '1.0.0',
  ...over,
});
const r = (o: object) => ({ cniVersion: '1.0.0', ...o });

const ROWS: [string, StatusInput, NetworkStatus][] = [
  [
    'S25: no result -> a minimal map',
    input(undefined, { isDefault: true, statusName: 'cluster' }),
    { name: 'cluster', default: true, dns: {} },
  ],
  [
    'S27: the first sandbox interface names the entry; host-side interfaces are skipped',
    input(r({ interfaces: [HOST_VETH, ETH0, NET1], ips: [{ address: '10.0.0.2/24', interface: 1 }] })),
    { name: 'team/net-a', interface: 'eth0', ips: ['10.0.0.2'], mac: ETH0.mac, default: false, dns: {} },
  ],
  [
    'S27: ips are those whose interface index points at it, v4 and v6, without prefix',
    input(
      r({
        interfaces: [HOST_VETH, ETH0, NET1],
        ips: [
          { address: '10.0.0.2/24', interface: 1 },
          { address: '10.9.0.2/24', interface: 2 },
          { address: 'fd00::2/64', interface: 1 },
          { address: '10.8.0.2/24', interface: 0 },
          { address: '10.7.0.2/24' },
        ],
      }),
    ),
    { name: 'team/net-a', interface: 'eth0', ips: ['10.0.0.2', 'fd00::2'], mac: ETH0.mac, default: false, dns: {} },
  ],
  [
    'S27: a sandbox interface no IP points at -> no ips key',
    input(r({ interfaces: [NET1], ips: [{ address: '10.0.0.2/24' }] })),
    { name: 'team/net-a', interface: 'net1', mac: NET1.mac, default: false, dns: {} },
  ],
  [
    'S27: no sandbox interface -> the first IP without an interface index, and no mac',
    input(r({ interfaces: [HOST_VETH], ips: [{ address: '10.1.0.2/24', interface: 0 }, { address: '10.2.0.2/24' }, { address: '10.3.0.2/24' }] })),
    { name: 'team/net-a', ips: ['10.2.0.2'], default: false, dns: {} },
  ],
  [
    'S27: an IPAM-style result (no interfaces) -> the first IP',
    input(r({ ips: [{ address: 'fd00::5/64' }, { address: '10.0.0.5/24' }] })),
    { name: 'team/net-a', ips: ['fd00::5'], default: false, dns: {} },
  ],
  [
    'S27: no sandbox interface and every IP indexed -> no ips',
    input(r({ interfaces: [HOST_VETH], ips: [{ address: '10.1.0.2/24', interface: 0 }] })),
    { name: 'team/net-a', default: false, dns: {} },
  ],
  [
    'S27: an interface with an empty sandbox is host-side',
    input(r({ interfaces: [{ name: 'br0', sandbox: '' }, ETH0], ips: [{ address: '10.0.0.2/24', interface: 1 }] })),
    { name: 'team/net-a', interface: 'eth0', ips: ['10.0.0.2'], mac: ETH0.mac, default: false, dns: {} },
  ],
  [
    'S27: mac only when the interface has one; no mtu (not a spec key)',
    input(r({ interfaces: [{ name: 'eth0', mtu: 9000, sandbox: NS }] })),
    { name: 'team/net-a', interface: 'eth0', default: false, dns: {} },
  ],
  [
    'S27: dns nameservers, domain and search; options and empty lists dropped',
    input(r({ dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'], options: ['ndots:5'] } })),
    { name: 'team/net-a', default: false, dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['svc.cluster.local'] } },
  ],
  [
    'S27: empty dns lists are not written',
    input(r({ dns: { nameservers: [], search: [] } })),
    { name: 'team/net-a', default: false, dns: {} },
  ],
  [
    'S19/S27: default-route lists the gateways of an attachment that carries it',
    input(r({}), { defaultRoute: ['10.0.0.1', 'fd00::1'] }),
    { name: 'team/net-a', default: false, dns: {}, 'default-route': ['10.0.0.1', 'fd00::1'] },
  ],
  ['S27: no gateways -> no default-route key', input(r({}), { defaultRoute: [] }), { name: 'team/net-a', default: false, dns: {} }],
  [
    'S27/D4: device-info is copied as given',
    input(r({}), { deviceInfo: { type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:18:02.5' } } }),
    { name: 'team/net-a', default: false, dns: {}, 'device-info': { type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:18:02.5' } } },
  ],
  [
    'S25: a 0.3.1 result (ips[].version) reads the same',
    input({ cniVersion: '0.3.1', interfaces: [ETH0], ips: [{ version: '4', address: '10.0.0.2/24', interface: 0 }] }, { cniVersion: '0.3.1' }),
    { name: 'team/net-a', interface: 'eth0', ips: ['10.0.0.2'], mac: ETH0.mac, default: false, dns: {} },
  ],
  [
    'S25: an older (0.2.0) result, best effort: the first address',
    input({ cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' }, ip6: { ip: 'fd00::2/64' }, dns: { nameservers: ['1.1.1.1'] } }, { cniVersion: '0.2.0' }),
    { name: 'team/net-a', ips: ['10.0.0.2'], default: false, dns: { nameservers: ['1.1.1.1'] } },
  ],
  [
    'a result without cniVersion is read in the attachment version',
    input({ interfaces: [ETH0], ips: [{ address: '10.0.0.2/24', interface: 0 }] }, { cniVersion: '1.1.0' }),
    { name: 'team/net-a', interface: 'eth0', ips: ['10.0.0.2'], mac: ETH0.mac, default: false, dns: {} },
  ],
];

test.each(ROWS)('%s', (_title, given, expected) => {
  const status = networkStatusOf(given);
  expect(status).toEqual(expected);
  expect(Object.keys(status).sort()).toEqual(Object.keys(expected).sort());
});

test('the entry does not share arrays with its input', () => {
  const gateways = ['10.0.0.1'];
  const result = r({ dns: { nameservers: ['10.96.0.10'] } });
  const status = networkStatusOf(input(result, { defaultRoute: gateways }));
  status['default-route']!.push('x');
  status.dns.nameservers!.push('x');
  expect(gateways).toEqual(['10.0.0.1']);
  expect(result).toEqual(r({ dns: { nameservers: ['10.96.0.10'] } }));
});

test.each<[string, object, string[]]>([
  ['v4 and v6 default routes', { routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0', gw: 'fd00::1' }] }, ['10.0.0.1', 'fd00::1']],
  ['duplicates once, in order', { routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '0.0.0.0/0', gw: '10.0.0.1' }] }, ['10.0.0.1']],
  ['a default route without gw is skipped', { routes: [{ dst: '0.0.0.0/0' }] }, []],
  ['other routes are not defaults', { routes: [{ dst: '10.0.0.0/8', gw: '10.0.0.1' }, { dst: '0.0.0.0/1', gw: '10.0.0.9' }] }, []],
  ['no routes', {}, []],
])('defaultGateways: %s', (_title, result, expected) => {
  expect(defaultGateways(parseResult(r(result), '1.0.0'))).toEqual(expected);
});

test('formatNetworkStatus is JSON indented by 4 spaces, as Multus writes it', () => {
  const list: NetworkStatus[] = [
    { name: 'cluster', interface: 'eth0', ips: ['10.0.0.2'], default: true, dns: {} },
    { name: 'team/net-a', default: false, dns: { nameservers: ['1.1.1.1'] } },
  ];
  expect(formatNetworkStatus(list)).toBe(
    [
      '[',
      '    {',
      '        "name": "cluster",',
      '        "interface": "eth0",',
      '        "ips": [',
      '            "10.0.0.2"',
      '        ],',
      '        "default": true,',
      '        "dns": {}',
      '    },',
      '    {',
      '        "name": "team/net-a",',
      '        "default": false,',
      '        "dns": {',
      '            "nameservers": [',
      '                "1.1.1.1"',
      '            ]',
      '        }',
      '    }',
      ']',
    ].join('\n'),
  );
  expect(JSON.parse(formatNetworkStatus(list))).toEqual(list);
});

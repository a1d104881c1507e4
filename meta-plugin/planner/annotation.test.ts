import { PlexusError } from '../../core/errors';
import { thrownBy } from '../../test/helpers/thrown';
import { parseNetworkRef, parseNetworksAnnotation, type NetworkSelection } from './annotation';

const NS = 'team';
const json = (...elements: unknown[]): string => JSON.stringify(elements);
const one = (element: Record<string, unknown>): string => json({ name: 'net-a', ...element });

describe('parseNetworksAnnotation: valid values', () => {
  const rows: [string, string, Partial<NetworkSelection>[]][] = [
    ['S9: comma form, bare name in the pod namespace', 'net-a', [{ namespace: NS, name: 'net-a' }]],
    [
      'S9: comma form, several with a namespace',
      'net-a,net-b,other/net-c',
      [
        { namespace: NS, name: 'net-a' },
        { namespace: NS, name: 'net-b' },
        { namespace: 'other', name: 'net-c' },
      ],
    ],
    [
      'S9: comma form, whitespace trimmed',
      '  net-a , other/net-b ',
      [
        { namespace: NS, name: 'net-a' },
        { namespace: 'other', name: 'net-b' },
      ],
    ],
    ['S9: Multus extension name@ifname', 'net-a@eth1', [{ namespace: NS, name: 'net-a', interface: 'eth1' as never }]],
    [
      'S9: Multus extension ns/name@ifname',
      'other/net-a@data0',
      [{ namespace: 'other', name: 'net-a', interface: 'data0' as never }],
    ],
    ['S8: empty annotation selects nothing', '   ', []],
    ['S10: empty JSON list selects nothing', '[]', []],
    ['S11/S12: JSON name only, pod namespace', json({ name: 'net-a' }), [{ namespace: NS, name: 'net-a' }]],
    ['S12: JSON empty namespace is the pod namespace', one({ namespace: '' }), [{ namespace: NS, name: 'net-a' }]],
    ['S12: JSON explicit namespace', one({ namespace: 'other' }), [{ namespace: 'other', name: 'net-a' }]],
    [
      'S22: the same network twice',
      json({ name: 'net-a' }, { name: 'net-a' }),
      [
        { namespace: NS, name: 'net-a' },
        { namespace: NS, name: 'net-a' },
      ],
    ],
    ['S13: ips IPv4 with prefix', one({ ips: ['10.1.2.3/24'] }), [{ ips: ['10.1.2.3/24'] }]],
    ['S13: ips without prefix', one({ ips: ['10.1.2.3'] }), [{ ips: ['10.1.2.3'] }]],
    [
      'S13: ips IPv6 /128 and IPv4 /32',
      one({ ips: ['fd00::1/128', '10.0.0.1/32'] }),
      [{ ips: ['fd00::1/128', '10.0.0.1/32'] }],
    ],
    ['S13: ips prefix /0', one({ ips: ['10.0.0.1/0'] }), [{ ips: ['10.0.0.1/0'] }]],
    ['S14: mac lowercased', one({ mac: '0A:1B:2C:3D:4E:5F' }), [{ mac: '0a:1b:2c:3d:4e:5f' }]],
    ['S14: mac with hyphens normalised', one({ mac: '0a-1b-2c-3d-4e-5f' }), [{ mac: '0a:1b:2c:3d:4e:5f' }]],
    ['S15: interface', one({ interface: 'data_0.1' }), [{ interface: 'data_0.1' as never }]],
    ['S16: cni-args object', one({ 'cni-args': { a: 1, b: { c: 'd' } } }), [{ cniArgs: { a: 1, b: { c: 'd' } } }]],
    [
      'S17: portMappings, protocol defaults to TCP',
      one({ portMappings: [{ hostPort: 8080, containerPort: 80 }] }),
      [{ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }] }],
    ],
    [
      'S17: portMappings protocol case-insensitive, hostIP kept',
      one({
        portMappings: [
          { hostPort: 1, containerPort: 65535, protocol: 'udp', hostIP: '192.0.2.1' },
          { hostPort: 53, containerPort: 53, protocol: 'Sctp', hostIP: '2001:db8::1' },
        ],
      }),
      [
        {
          portMappings: [
            { hostPort: 1, containerPort: 65535, protocol: 'UDP', hostIP: '192.0.2.1' },
            { hostPort: 53, containerPort: 53, protocol: 'SCTP', hostIP: '2001:db8::1' },
          ],
        },
      ],
    ],
    ['S17: empty portMappings list', one({ portMappings: [] }), [{ portMappings: [] }]],
    [
      'S18: bandwidth with all four values',
      one({ bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 } }),
      [{ bandwidth: { ingressRate: 1000, ingressBurst: 2000, egressRate: 3000, egressBurst: 4000 } }],
    ],
    ['S18: bandwidth rate without burst', one({ bandwidth: { egressRate: 5 } }), [{ bandwidth: { egressRate: 5 } }]],
    [
      'S19: default-route with gateways',
      one({ 'default-route': ['10.0.0.1', 'fd00::1'] }),
      [{ defaultRoute: ['10.0.0.1', 'fd00::1'] }],
    ],
    ['S19: default-route may be empty', one({ 'default-route': [] }), [{ defaultRoute: [] }]],
    [
      'S19: default-route on one of two elements',
      json({ name: 'net-a' }, { name: 'net-b', 'default-route': ['10.0.0.1'] }),
      [{ name: 'net-a' }, { name: 'net-b', defaultRoute: ['10.0.0.1'] }],
    ],
    [
      'S20: infiniband-guid',
      one({ 'infiniband-guid': 'c2:11:22:33:44:55:66:77' }),
      [{ infinibandGuid: 'c2:11:22:33:44:55:66:77' }],
    ],
    [
      'S21: ipam-claim-reference',
      one({ 'ipam-claim-reference': 'web-0.net-a.net1' }),
      [{ ipamClaimReference: 'web-0.net-a.net1' }],
    ],
    ['S10: vendor key ignored silently', one({ 'org.example.colour': 'blue' }), [{ name: 'net-a' }]],
  ];
  test.each(rows)('%s', (_title, value, expected) => {
    const parsed = parseNetworksAnnotation(value, NS);
    if (!parsed.ok) throw new Error(`unexpectedly invalid: ${parsed.reason}`);
    expect(parsed.selections).toHaveLength(expected.length);
    expected.forEach((want, i) => expect(parsed.selections[i]).toMatchObject(want));
    expect(parsed.warnings).toEqual([]);
  });

  test('S10: every key of a full element is stored', () => {
    const parsed = parseNetworksAnnotation(
      one({
        namespace: 'other',
        ips: ['10.0.0.5/24'],
        mac: '02:00:00:00:00:01',
        interface: 'eth9',
        'cni-args': { x: true },
        portMappings: [{ hostPort: 80, containerPort: 8080 }],
        bandwidth: { ingressRate: 10 },
        'default-route': ['10.0.0.1'],
        'infiniband-guid': '00:11:22:33:44:55:66:77',
      }),
      NS,
    );
    expect(parsed).toEqual({
      ok: true,
      warnings: [],
      selections: [
        {
          namespace: 'other',
          name: 'net-a',
          ips: ['10.0.0.5/24'],
          mac: '02:00:00:00:00:01',
          interface: 'eth9',
          cniArgs: { x: true },
          portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'TCP' }],
          bandwidth: { ingressRate: 10 },
          defaultRoute: ['10.0.0.1'],
          infinibandGuid: '00:11:22:33:44:55:66:77',
        },
      ],
    });
  });
});

describe('parseNetworksAnnotation: invalid values ignore the whole annotation', () => {
  const rows: [string, string, RegExp][] = [
    ['S9: empty item', 'net-a,,net-b', /element 1 .*empty/],
    ['S9: trailing comma', 'net-a,', /element 1 .*empty/],
    ['S4: upper-case name', 'Net-A', /element 0 .*DNS-1123/],
    ['S4: name longer than 63', 'a'.repeat(64), /element 0 .*DNS-1123/],
    ['S4: invalid namespace', 'Other/net-a', /element 0 .*namespace "Other"/],
    ['S4: two slashes', 'a/b/c', /element 0 .*"name" or "namespace\/name"/],
    ['S15: empty ifname after @', 'net-a@', /element 0 .*empty/],
    ['S15: two @', 'net-a@eth0@eth1', /element 0 .*more than one '@'/],
    ['S15: ifname too long in comma form', 'net-a@abcdefghijklmnop', /element 0 .*15 bytes/],
    ['S10: broken JSON', '[{"name": "net-a"', /not valid JSON/],
    ['S10: JSON object instead of a list', '{"name": "net-a"}', /list of objects/],
    ['S10: element not an object', json('net-a'), /element 0 is not an object/],
    ['S11: name missing', json({ namespace: 'x' }), /element 0 has no "name"/],
    ['S11: name not a string', json({ name: 7 }), /element 0 key "name": 7 is not a string/],
    ['S4: JSON name invalid', json({ name: 'net_a' }), /element 0 key "name".*DNS-1123/],
    ['S12: namespace invalid', one({ namespace: 'A' }), /element 0 key "namespace".*DNS-1123/],
    ['S12: namespace null', one({ namespace: null }), /element 0 key "namespace": null is not a string/],
    ['S13: ips not a list', one({ ips: '10.0.0.1' }), /element 0 key "ips".*not a list/],
    ['S13: ips empty list', one({ ips: [] }), /element 0 key "ips".*at least one/],
    ['S13: ips bad octet', one({ ips: ['10.0.0.256'] }), /element 0 key "ips".*not an IPv4 or IPv6/],
    ['S13: ips IPv4 prefix above 32', one({ ips: ['10.0.0.1/33'] }), /element 0 key "ips".*0 to 32/],
    ['S13: ips IPv6 prefix above 128', one({ ips: ['fd00::1/129'] }), /element 0 key "ips".*0 to 128/],
    ['S13: ips prefix with leading zero', one({ ips: ['10.0.0.1/024'] }), /element 0 key "ips".*0 to 32/],
    ['S13: ips empty prefix', one({ ips: ['10.0.0.1/'] }), /element 0 key "ips".*0 to 32/],
    ['S13: ips zone', one({ ips: ['fe80::1%eth0'] }), /element 0 key "ips".*not an IPv4 or IPv6/],
    ['S13: ips non-string entry', one({ ips: [10] }), /element 0 key "ips".*not a string/],
    ['S13: ips in second element', json({ name: 'a' }, { name: 'b', ips: ['x'] }), /element 1 key "ips"/],
    ['S14: mac of 5 bytes', one({ mac: '00:11:22:33:44' }), /element 0 key "mac".*6-byte/],
    ['S14: mac of 8 bytes', one({ mac: '00:11:22:33:44:55:66:77' }), /element 0 key "mac".*6-byte/],
    ['S14: mac bad hex', one({ mac: '00:11:22:33:44:zz' }), /element 0 key "mac".*6-byte/],
    ['S14: mac mixed separators', one({ mac: '00:11-22:33:44:55' }), /element 0 key "mac".*6-byte/],
    ['S14: mac not a string', one({ mac: 1 }), /element 0 key "mac".*not a string/],
    ['S15: interface empty', one({ interface: '' }), /element 0 key "interface".*empty/],
    ['S15: interface of 16 bytes', one({ interface: 'abcdefghijklmnop' }), /element 0 key "interface".*15 bytes/],
    ['S15: interface with slash', one({ interface: 'a/b' }), /element 0 key "interface".*'\/'/],
    ['S15: interface dot', one({ interface: '.' }), /element 0 key "interface".*reserved/],
    ['S15: interface with space', one({ interface: 'a b' }), /element 0 key "interface".*whitespace/],
    ['S15: interface not a string', one({ interface: 1 }), /element 0 key "interface".*not a string/],
    ['S16: cni-args a list', one({ 'cni-args': [1] }), /element 0 key "cni-args".*not an object/],
    ['S16: cni-args a string', one({ 'cni-args': 'a=b' }), /element 0 key "cni-args".*not an object/],
    ['S16: cni-args null', one({ 'cni-args': null }), /element 0 key "cni-args".*not an object/],
    ['S17: portMappings not a list', one({ portMappings: {} }), /element 0 key "portMappings".*not a list/],
    [
      'S17: portMappings entry not an object',
      one({ portMappings: [80] }),
      /key "portMappings": entry 0 is not an object/,
    ],
    ['S17: hostPort missing', one({ portMappings: [{ containerPort: 80 }] }), /key "portMappings": entry 0 hostPort/],
    [
      'S17: containerPort missing',
      one({ portMappings: [{ hostPort: 80 }] }),
      /key "portMappings": entry 0 containerPort/,
    ],
    ['S17: hostPort 0', one({ portMappings: [{ hostPort: 0, containerPort: 80 }] }), /entry 0 hostPort 0 .*1 to 65535/],
    ['S17: hostPort 65536', one({ portMappings: [{ hostPort: 65536, containerPort: 80 }] }), /entry 0 hostPort 65536/],
    [
      'S17: containerPort fractional',
      one({ portMappings: [{ hostPort: 80, containerPort: 1.5 }] }),
      /entry 0 containerPort 1.5/,
    ],
    ['S17: port as a string', one({ portMappings: [{ hostPort: '80', containerPort: 80 }] }), /entry 0 hostPort "80"/],
    [
      'S17: protocol ICMP',
      one({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'ICMP' }] }),
      /entry 0 protocol "ICMP" is not one of TCP, UDP, SCTP/,
    ],
    [
      'S17: protocol not a string',
      one({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 6 }] }),
      /entry 0 protocol 6/,
    ],
    [
      'S17: hostIP invalid',
      one({ portMappings: [{ hostPort: 80, containerPort: 80, hostIP: '10.0.0.1/24' }] }),
      /entry 0 hostIP "10.0.0.1\/24" is not an IP address/,
    ],
    [
      'S17: unknown key in a mapping',
      one({ portMappings: [{ hostPort: 80, containerPort: 80, hostport: 81 }] }),
      /entry 0 has unknown key "hostport"/,
    ],
    ['S18: bandwidth not an object', one({ bandwidth: 5 }), /element 0 key "bandwidth".*not an object/],
    [
      'S18: rate zero',
      one({ bandwidth: { ingressRate: 0 } }),
      /key "bandwidth": ingressRate 0 is not a positive integer/,
    ],
    ['S18: rate negative', one({ bandwidth: { egressRate: -1 } }), /egressRate -1 is not a positive integer/],
    ['S18: rate fractional', one({ bandwidth: { egressRate: 1.5 } }), /egressRate 1.5 is not a positive integer/],
    ['S18: rate a string', one({ bandwidth: { egressRate: '1M' } }), /egressRate "1M" is not a positive integer/],
    [
      'S18: ingress burst without rate',
      one({ bandwidth: { ingressBurst: 10 } }),
      /ingressBurst is set without ingressRate/,
    ],
    [
      'S18: egress burst without rate',
      one({ bandwidth: { ingressRate: 1, egressBurst: 10 } }),
      /egressBurst is set without egressRate/,
    ],
    ['S18: unknown key', one({ bandwidth: { ingressrate: 1 } }), /bandwidth has unknown key "ingressrate"/],
    ['S19: default-route not a list', one({ 'default-route': '10.0.0.1' }), /key "default-route".*not a list/],
    ['S19: default-route bad gateway', one({ 'default-route': ['10.0.0'] }), /key "default-route": gateway "10.0.0"/],
    ['S19: default-route with prefix', one({ 'default-route': ['10.0.0.1/24'] }), /gateway "10.0.0.1\/24"/],
    [
      'S19: default-route on more than one element',
      json({ name: 'a', 'default-route': [] }, { name: 'b' }, { name: 'c', 'default-route': ['10.0.0.1'] }),
      /elements 0, 2 all set "default-route"/,
    ],
    ['S20: GUID of 6 bytes', one({ 'infiniband-guid': '00:11:22:33:44:55' }), /key "infiniband-guid".*8-byte/],
    ['S20: GUID bad hex', one({ 'infiniband-guid': '00:11:22:33:44:55:66:gg' }), /key "infiniband-guid".*8-byte/],
    ['S20: GUID not a string', one({ 'infiniband-guid': 7 }), /key "infiniband-guid".*not a string/],
    [
      'S21: claim reference not a string',
      one({ 'ipam-claim-reference': 7 }),
      /key "ipam-claim-reference".*not a string/,
    ],
    ['S21: claim reference empty', one({ 'ipam-claim-reference': '' }), /key "ipam-claim-reference".*IPAMClaim name/],
    ['S21: claim reference invalid name', one({ 'ipam-claim-reference': 'Web_0' }), /IPAMClaim name/],
  ];
  test.each(rows)('%s', (_title, value, reason) => {
    const parsed = parseNetworksAnnotation(value, NS);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });
});

describe('parseNetworksAnnotation: reserved keys warn', () => {
  const rows: [string, string, string[]][] = [
    ['S10: unknown reserved key warns and is ignored', one({ colour: 'blue' }), ['element 0: reserved key "colour"']],
    [
      'S10: a reserved key named like an Object method warns',
      one({ constructor: 1 }),
      ['element 0: reserved key "constructor"'],
    ],
    [
      'S10: reserved and vendor keys in two elements',
      json({ name: 'a', 'com.example/x': 1 }, { name: 'b', gateway: ['10.0.0.1'] }),
      ['element 1: reserved key "gateway"'],
    ],
  ];
  test.each(rows)('%s', (_title, value, warnings) => {
    const parsed = parseNetworksAnnotation(value, NS);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.warnings).toHaveLength(warnings.length);
    warnings.forEach((w, i) => expect(parsed.warnings[i]).toContain(w));
  });
});

describe('parseNetworksAnnotation: S21 ips with ipam-claim-reference is an error', () => {
  const rows: [string, string, RegExp][] = [
    [
      'S21: both keys in one element',
      one({ ips: ['10.0.0.1'], 'ipam-claim-reference': 'c' }),
      /element 0 \(network "net-a"\)/,
    ],
    [
      'S21: both keys after an invalid element still fail',
      json({ name: 'a', mac: 'bad' }, { name: 'b', ips: ['10.0.0.1'], 'ipam-claim-reference': 'c' }),
      /element 1 \(network "b"\)/,
    ],
    ['S21: fails even when the ips value is invalid', one({ ips: 'x', 'ipam-claim-reference': 'c' }), /element 0/],
  ];
  test.each(rows)('%s', (_title, value, message) => {
    const err = thrownBy(() => parseNetworksAnnotation(value, NS));
    expect(err).toBeInstanceOf(PlexusError);
    expect(err).toMatchObject({ kind: 'InvalidAnnotation', message: expect.stringMatching(message) });
  });
});

describe('parseNetworkRef', () => {
  const rows: [string, string, ReturnType<typeof parseNetworkRef>][] = [
    ['S4: bare name takes the default namespace', 'net-a', { ok: true, ref: { namespace: 'dflt', name: 'net-a' } }],
    ['S4: namespace/name', 'ns1/net-a', { ok: true, ref: { namespace: 'ns1', name: 'net-a' } }],
    ['S4: empty name', 'ns1/', { ok: false, problem: 'network name "" is not a DNS-1123 label (S4)' }],
    ['S4: empty namespace', '/net-a', { ok: false, problem: 'namespace "" is not a DNS-1123 label (S4)' }],
    ['S4: name ending in a hyphen', 'net-', { ok: false, problem: 'network name "net-" is not a DNS-1123 label (S4)' }],
  ];
  test.each(rows)('%s', (_title, text, expected) => {
    expect(parseNetworkRef(text, 'dflt')).toEqual(expected);
  });
});

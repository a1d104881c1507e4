import { SUPPORTED_VERSIONS } from './version';
import { convertResult, ipFamilyOf, isDefaultDst, parseResult, stripPrefix, type CniResult } from './result';

const IFACES = [{ name: 'eth0', mac: '0a:58:0a:00:00:02', sandbox: '/var/run/netns/x' }];
const DNS = { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] };
const ROUTES = [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0' }];

/** The canonical in-memory (1.x) shape every version parses to. */
const current = (cniVersion: string): CniResult => ({
  cniVersion,
  interfaces: IFACES,
  ips: [
    { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 },
    { address: 'fd00::2/64', interface: 0 },
  ],
  routes: ROUTES,
  dns: DNS,
});

/** The same result as a plugin of `cniVersion` prints it. */
function printed(cniVersion: string): Record<string, unknown> {
  const c = current(cniVersion);
  if (cniVersion.startsWith('0.3') || cniVersion === '0.4.0') {
    return { ...c, ips: c.ips!.map((ip) => ({ ...ip, version: ipFamilyOf(ip.address) })) };
  }
  return { ...c };
}

describe('parseResult: any version into the 1.x shape (CNI spec 2.4: libcni converts)', () => {
  test.each(['0.1.0', '0.2.0'])('%s: ip4/ip6 become ips[], their routes join routes[]', (v) => {
    const raw = {
      cniVersion: v,
      ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }] },
      ip6: { ip: 'fd00::2/64', routes: [{ dst: '::/0' }] },
      dns: DNS,
    };
    expect(parseResult(raw, '1.1.0')).toEqual({
      cniVersion: v,
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }, { address: 'fd00::2/64' }],
      routes: ROUTES,
      dns: DNS,
    });
  });

  test.each<[string, Record<string, unknown>, CniResult]>([
    ['0.2.0 with ip4 only', { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } }, { cniVersion: '0.2.0', ips: [{ address: '10.0.0.2/24' }], routes: [] }],
    ['0.2.0 with a malformed ip6 skipped', { cniVersion: '0.2.0', ip6: { gateway: 'fd00::1' } }, { cniVersion: '0.2.0', ips: [], routes: [] }],
    ['no cniVersion: the fallback version', { ips: [{ address: '10.0.0.2/24' }] }, { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] }],
    ['empty cniVersion: the fallback version', { cniVersion: '', ips: [] }, { cniVersion: '1.0.0', ips: [] }],
    ['fields of the wrong type are dropped', { cniVersion: '1.0.0', ips: 'x', routes: {}, dns: [], interfaces: 3 }, { cniVersion: '1.0.0' }],
    ['an IPAM result: no interfaces, no ips[].interface', { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] }, { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] }],
  ])('%s', (_title, raw, expected) => expect(parseResult(raw, '1.0.0')).toEqual(expected));

  test.each(SUPPORTED_VERSIONS.map((v) => [v]))('%s: ips[].version is dropped, the rest kept', (v) => {
    expect(parseResult(printed(v), '1.1.0')).toEqual(current(v));
  });

  test.each([null, undefined, [], 'text', 42])('%p is a decode failure (code 6)', (raw) => {
    expect(() => parseResult(raw, '1.0.0')).toThrow(expect.objectContaining({ kind: 'DecodeFailure', cniCode: 6 }));
  });
});

describe('convertResult: emit in the config version (CNI spec 2.4)', () => {
  test.each([
    ['0.3.0', true],
    ['0.3.1', true],
    ['0.4.0', true],
    ['1.0.0', false],
    ['1.1.0', false],
  ])('to %s: ips[].version present = %s', (v, withFamily) => {
    const out = convertResult(current('1.1.0'), v);
    expect(out.cniVersion).toBe(v);
    expect(out.ips).toEqual(
      withFamily
        ? [
            { address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0, version: '4' },
            { address: 'fd00::2/64', interface: 0, version: '6' },
          ]
        : current('1.1.0').ips,
    );
    expect(out).toEqual(printed(v));
  });

  test.each<[string, CniResult, string, CniResult]>([
    ['an empty result gets ips: [] before 1.0.0', { cniVersion: '1.1.0' }, '0.4.0', { cniVersion: '0.4.0', ips: [] }],
    ['an empty result stays empty in 1.x', { cniVersion: '0.4.0' }, '1.0.0', { cniVersion: '1.0.0' }],
    ['interfaces without ips get no ips key', { cniVersion: '1.0.0', interfaces: IFACES }, '0.3.1', { cniVersion: '0.3.1', interfaces: IFACES }],
    ['undefined keys are dropped', { cniVersion: '1.0.0', dns: undefined, routes: undefined }, '1.1.0', { cniVersion: '1.1.0' }],
    [
      'pciID and socketPath (CNI 1.1) are dropped for 1.0.0, kept for 1.1.0',
      { cniVersion: '1.1.0', interfaces: [{ name: 'net1', pciID: '0000:af:06.0' }, { name: 'vhu0', socketPath: '/run/x.sock' }] },
      '1.0.0',
      { cniVersion: '1.0.0', interfaces: [{ name: 'net1' }, { name: 'vhu0' }] },
    ],
    [
      'pciID and socketPath are kept in 1.1.0',
      { cniVersion: '1.0.0', interfaces: [{ name: 'net1', pciID: '0000:af:06.0' }] },
      '1.1.0',
      { cniVersion: '1.1.0', interfaces: [{ name: 'net1', pciID: '0000:af:06.0' }] },
    ],
    ['a stale version on the way in is replaced', { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', version: '6' }] }, '1.1.0', { cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] }],
  ])('%s', (_title, input, v, expected) => {
    const out = convertResult(input, v);
    expect(out).toEqual(expected);
    expect(Object.keys(out)).toEqual(Object.keys(expected));
  });

  test('the input is not modified', () => {
    const input = current('1.1.0');
    const copy = structuredClone(input);
    convertResult(input, '0.3.1');
    expect(input).toEqual(copy);
  });
});

describe('round trips', () => {
  const PAIRS = SUPPORTED_VERSIONS.flatMap((from) => SUPPORTED_VERSIONS.map((to) => [from, to] as const));
  test.each(PAIRS)('printed %s -> parse -> convert to %s -> parse is lossless', (from, to) => {
    const converted = convertResult(parseResult(printed(from), '1.1.0'), to);
    expect(converted).toEqual(printed(to));
    expect(parseResult(converted, '1.1.0')).toEqual(current(to));
  });

  test.each(['0.3.1', '1.0.0'])('a 0.2.0 result converted to %s keeps addresses, routes and dns', (to) => {
    const legacy = { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24', gateway: '10.0.0.1', routes: [ROUTES[0]] }, dns: DNS };
    const out = convertResult(parseResult(legacy, '0.2.0'), to);
    const ip = to === '1.0.0' ? { address: '10.0.0.2/24', gateway: '10.0.0.1' } : { address: '10.0.0.2/24', gateway: '10.0.0.1', version: '4' };
    expect(out).toEqual({ cniVersion: to, ips: [ip], routes: [ROUTES[0]], dns: DNS });
  });
});

describe('helpers', () => {
  test.each([
    ['10.1.2.3/24', '10.1.2.3'],
    ['10.1.2.3', '10.1.2.3'],
    ['fd00::1/64', 'fd00::1'],
    ['', ''],
  ])('stripPrefix(%p) = %p', (cidr, ip) => expect(stripPrefix(cidr)).toBe(ip));

  test.each([
    ['0.0.0.0/0', true],
    ['::/0', true],
    ['::0/0', true],
    ['0.0.0.0/1', false],
    ['128.0.0.0/1', false],
    ['10.0.0.0/8', false],
    ['::/1', false],
    ['default', false],
  ])('isDefaultDst(%p) = %p', (dst, expected) => expect(isDefaultDst(dst)).toBe(expected));

  test.each([
    ['10.0.0.1/24', '4'],
    ['fd00::1/64', '6'],
    ['::ffff:10.0.0.1', '6'],
    ['garbage', '4'],
  ])('ipFamilyOf(%p) = %p', (addr, fam) => expect(ipFamilyOf(addr)).toBe(fam));
});

import fc from 'fast-check';
import {
  cidrContains, cidrContainsCidr, cidrLast, cidrOf, cidrSize, cidrsOverlap, compareIp, countOutside, formatCidr,
  formatIp, mergeIntervals, offsetIp, parseCidr, parseIp, parseIpPrefix, subnetAt, subnetCount, subnetIndexOf, tryParseIp,
} from './address';

describe('parse and format round trip', () => {
  const rows: [string, string, bigint][] = [
    ['0.0.0.0', '0.0.0.0', 0n],
    ['255.255.255.255', '255.255.255.255', 0xffffffffn],
    ['10.1.2.3', '10.1.2.3', 0x0a010203n],
    ['::', '::', 0n],
    ['::1', '::1', 1n],
    ['1::', '1::', 1n << 112n],
    ['FD00::ABCD', 'fd00::abcd', (0xfd00n << 112n) | 0xabcdn],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 0x20010db8000000000001000000000001n],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1', 0x20010db8000000000000000000000001n],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3', 0x0001000000000002000000000000_0003n],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8', 0x00010002000300040005000600070008n],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7', 0x00010000000200030004000500060007n],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', (1n << 128n) - 1n],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1', 0xffff0a000001n],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221', 0x0064ff9b0000000000000000c0000221n],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0', 0x00010002000300040005000600070000n],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8', 0x00000002000300040005000600070008n],
  ];
  test.each(rows)('%s', (input, formatted, value) => {
    const ip = parseIp(input);
    expect(ip.value).toBe(value);
    expect(formatIp(ip)).toBe(formatted);
    expect(formatIp(parseIp(formatted))).toBe(formatted);
  });
});

describe('invalid addresses are rejected', () => {
  const rows = [
    '', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4 ', '1..3.4', 'a.b.c.d',
    ':::', '1:::2', ':1::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::', 'fe80::1%eth0',
    '1.2.3.4::', '::1.2.3', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8',
  ];
  test.each(rows)('%j', (input) => {
    expect(tryParseIp(input)).toBeUndefined();
    expect(() => parseIp(input)).toThrow(expect.objectContaining({ kind: 'InvalidConfig' }));
  });
});

describe('CIDRs', () => {
  test.each([
    ['10.0.0.0/8', 8, 1n << 24n],
    ['10.0.0.7/32', 32, 1n],
    ['0.0.0.0/0', 0, 1n << 32n],
    ['::/0', 0, 1n << 128n],
    ['fd00::1/128', 128, 1n],
    ['fd00::/64', 64, 1n << 64n],
  ])('%s', (s, prefix, size) => {
    const c = parseCidr(s);
    expect(c.prefix).toBe(prefix);
    expect(cidrSize(c)).toBe(size);
    expect(formatCidr(c)).toBe(s);
  });

  test.each(['10.0.0.1/24', 'fd00::1/64', '10.0.0.0/33', 'fd00::/129', '10.0.0.0', '10.0.0.0/', '10.0.0.0/08', '/24', 'x/24'])(
    'rejects %s naming it', (s) => {
      expect(() => parseCidr(s, 'pools[0].cidrs[0]')).toThrow(/pools\[0\]\.cidrs\[0\]/);
    });

  test('host bits error suggests the network', () => {
    expect(() => parseCidr('10.0.0.5/24')).toThrow(/did you mean 10\.0\.0\.0\/24/);
  });

  test('interface addresses keep host bits', () => {
    const { ip, prefix } = parseIpPrefix('10.0.0.5/24');
    expect(formatIp(ip)).toBe('10.0.0.5');
    expect(prefix).toBe(24);
    expect(formatCidr(cidrOf(ip, 24))).toBe('10.0.0.0/24');
  });

  test('contains, last, overlap', () => {
    const c = parseCidr('192.168.1.0/24');
    expect(cidrContains(c, parseIp('192.168.1.0'))).toBe(true);
    expect(cidrContains(c, parseIp('192.168.1.255'))).toBe(true);
    expect(cidrContains(c, parseIp('192.168.2.0'))).toBe(false);
    expect(cidrContains(c, parseIp('::ffff:192.168.1.1'))).toBe(false); // families never mix
    expect(formatIp({ family: 'v4', value: cidrLast(c) })).toBe('192.168.1.255');
    expect(cidrContainsCidr(c, parseCidr('192.168.1.128/25'))).toBe(true);
    expect(cidrContainsCidr(parseCidr('192.168.1.128/25'), c)).toBe(false);
    expect(cidrsOverlap(c, parseCidr('192.168.0.0/16'))).toBe(true);
    expect(cidrsOverlap(c, parseCidr('192.168.2.0/24'))).toBe(false);
    expect(cidrsOverlap(parseCidr('::/0'), parseCidr('0.0.0.0/0'))).toBe(false);
    expect(cidrContains(parseCidr('0.0.0.0/0'), parseIp('255.255.255.255'))).toBe(true);
    expect(cidrContains(parseCidr('::/0'), parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(true);
  });
});

describe('offsets', () => {
  test('carry across octets and groups', () => {
    expect(formatIp(offsetIp(parseIp('10.0.0.255'), 1))).toBe('10.0.1.0');
    expect(formatIp(offsetIp(parseIp('10.0.1.0'), -1))).toBe('10.0.0.255');
    expect(formatIp(offsetIp(parseIp('fd00::ffff'), 1))).toBe('fd00::1:0');
    expect(formatIp(offsetIp(parseIp('::'), 2n ** 64n))).toBe('0:0:0:1::');
  });
  test.each([
    ['255.255.255.255', 1],
    ['0.0.0.0', -1],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 1],
    ['::', -1],
  ])('%s %+d leaves the family', (s, n) => {
    expect(() => offsetIp(parseIp(s), n)).toThrow(/outside/);
  });
  test('compare orders v4 before v6', () => {
    expect(compareIp(parseIp('10.0.0.2'), parseIp('10.0.0.10'))).toBe(-1);
    expect(compareIp(parseIp('255.255.255.255'), parseIp('::'))).toBe(-1);
    expect(compareIp(parseIp('fd00::1'), parseIp('fd00::1'))).toBe(0);
  });
});

describe('block splitting', () => {
  test('v4 /24 into /26', () => {
    const c = parseCidr('10.0.0.0/24');
    expect(subnetCount(c, 26)).toBe(4n);
    expect([0n, 1n, 2n, 3n].map((i) => formatCidr(subnetAt(c, 26, i)))).toEqual(
      ['10.0.0.0/26', '10.0.0.64/26', '10.0.0.128/26', '10.0.0.192/26']);
    expect(subnetIndexOf(c, 26, parseIp('10.0.0.200'))).toBe(3n);
  });
  test('v6 /48 into /122 is lazy', () => {
    const c = parseCidr('fd00:1::/48');
    expect(subnetCount(c, 122)).toBe(1n << 74n);
    expect(formatCidr(subnetAt(c, 122, (1n << 74n) - 1n))).toBe('fd00:1:0:ffff:ffff:ffff:ffff:ffc0/122');
  });
  test('/32 and /128 are one block of themselves', () => {
    expect(formatCidr(subnetAt(parseCidr('10.9.9.9/32'), 32, 0n))).toBe('10.9.9.9/32');
    expect(formatCidr(subnetAt(parseCidr('fd00::9/128'), 128, 0n))).toBe('fd00::9/128');
  });
  test('/0 splits too', () => {
    expect(formatCidr(subnetAt(parseCidr('0.0.0.0/0'), 1, 1n))).toBe('128.0.0.0/1');
    expect(formatCidr(subnetAt(parseCidr('::/0'), 1, 1n))).toBe('8000::/1');
  });
  test('bad splits', () => {
    expect(() => subnetCount(parseCidr('10.0.0.0/24'), 23)).toThrow();
    expect(() => subnetAt(parseCidr('10.0.0.0/24'), 26, 4n)).toThrow();
    expect(() => subnetIndexOf(parseCidr('10.0.0.0/24'), 26, parseIp('10.0.1.0'))).toThrow();
  });
});

describe('intervals', () => {
  test('merge overlapping and touching', () => {
    expect(mergeIntervals([{ lo: 5n, hi: 9n }, { lo: 1n, hi: 2n }, { lo: 3n, hi: 4n }, { lo: 20n, hi: 30n }, { lo: 8n, hi: 12n }]))
      .toEqual([{ lo: 1n, hi: 12n }, { lo: 20n, hi: 30n }]);
  });
  test('count outside holes', () => {
    const holes = mergeIntervals([{ lo: 0n, hi: 0n }, { lo: 10n, hi: 19n }, { lo: 255n, hi: 255n }]);
    expect(countOutside(0n, 255n, holes)).toBe(256n - 1n - 10n - 1n);
    expect(countOutside(10n, 19n, holes)).toBe(0n);
    expect(countOutside(5n, 4n, holes)).toBe(0n);
  });
});

// One seed for the file, in the describe's name, so a failure can be replayed: PLEXUS_PROPERTY_SEED=<seed>.
const SEED = Number(process.env.PLEXUS_PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe(`properties (seed ${SEED})`, () => {
  beforeAll(() => fc.configureGlobal({ seed: SEED }));
  afterAll(() => fc.resetConfigureGlobal());

  test('v6 format then parse is the identity', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
      expect(parseIp(formatIp({ family: 'v6', value: v })).value).toBe(v);
    }));
  });
  test('v6 with many zero groups round trips', () => {
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
      const v = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
      const text = formatIp({ family: 'v6', value: v });
      expect(text).not.toMatch(/:::|::.*::/);
      expect(parseIp(text).value).toBe(v);
    }));
  });
  test('v4 format then parse is the identity', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => {
      expect(parseIp(formatIp({ family: 'v4', value: BigInt(n) })).value).toBe(BigInt(n));
    }));
  });
  test('every address of a split lies in exactly its block', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      (prefix, extra, n) => {
        const c = cidrOf({ family: 'v4', value: BigInt(n) }, prefix);
        const ip = { family: 'v4' as const, value: BigInt(n) };
        const idx = subnetIndexOf(c, prefix + extra, ip);
        expect(cidrContains(subnetAt(c, prefix + extra, idx), ip)).toBe(true);
      }));
  });
});

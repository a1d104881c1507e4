import { formatCidr, formatIp, parseCidr, parseIp } from './ip-address';

describe('parseIp / formatIp', () => {
  test.each([
    ['10.0.0.255', '0a0000ff', '10.0.0.255'],
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['2001:DB8::1', '20010db8000000000000000000000001', '2001:db8::1'],
    ['2001:0:0:1:0:0:0:1', '20010000000000010000000000000001', '2001:0:0:1::1'],
    ['1:0:0:2:0:0:0:0', '00010000000000020000000000000000', '1:0:0:2::'],
    ['fe80::a:0:0:1', 'fe80000000000000000a000000000001', 'fe80::a:0:0:1'],
    ['1:2:3:4:5:6:7:0', '00010002000300040005000600070000', '1:2:3:4:5:6:7:0'],
    ['::ffff:10.1.2.3', '00000000000000000000ffff0a010203', '::ffff:10.1.2.3'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304', '1:2:3:4:5:6:102:304'],
  ])('%s', (text, bytes, canonical) => {
    expect(parseIp(text).toString('hex')).toBe(bytes);
    expect(formatIp(Buffer.from(bytes, 'hex'))).toBe(canonical);
  });

  test.each(['', 'x', '10.0.0', '10.0.0.256', 'fe80::1%eth0', '1::2::3', '::/0'])('%j is EINVAL', (text) => {
    expect(() => parseIp(text)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });
});

describe('parseCidr', () => {
  test.each([
    ['10.1.0.0/16', 4, '0a010000', 16],
    ['0.0.0.0/0', 4, '00000000', 0],
    ['10.1.2.3', 4, '0a010203', 32],
    ['::/0', 6, '00000000000000000000000000000000', 0],
    ['2001:db8::/64', 6, '20010db8000000000000000000000000', 64],
    ['2001:db8::5', 6, '20010db8000000000000000000000005', 128],
  ])('%s', (text, family, bytes, prefixLength) => {
    const p = parseCidr(text);
    expect({ family: p.family, bytes: p.bytes.toString('hex'), prefixLength: p.prefixLength }).toEqual({ family, bytes, prefixLength });
    expect(formatCidr(p.bytes, p.prefixLength)).toBe(text.includes('/') ? text : `${text}/${prefixLength}`);
  });

  test.each(['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/a', 'default'])('%j is EINVAL', (text) => {
    expect(() => parseCidr(text)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });
});

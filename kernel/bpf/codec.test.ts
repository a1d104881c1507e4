import { KernelError } from '../errno';
import { be16, be32, bytes, ipv4, ipv6, mac, raw, s32, structCodec, u16, u32, u64, u8 } from './codec';
import { checkPinPath, pinPathOf } from './pins';
import { DenyKey, DenyValue, ProtoStats } from './testdata/tc-count';

const hex = (b: Buffer): string => b.toString('hex');

describe('scalar codecs', () => {
  test.each([
    ['__u8', u8, 0xab, 'ab'],
    ['__u16 (host order, little-endian)', u16, 0x1234, '3412'],
    ['__u32', u32, 0x01020304, '04030201'],
    ['__s32', s32, -2, 'feffffff'],
    ['__u64 as bigint', u64, 0x0102030405060708n, '0807060504030201'],
    ['__be16 (a port)', be16, 4789, '12b5'],
    ['__be32', be32, 0x0a000001, '0a000001'],
    ['IPv4 address in network order', ipv4, '10.0.0.1', '0a000001'],
    ['IPv6 address', ipv6, '2001:db8::1', '20010db8000000000000000000000001'],
    ['MAC address', mac, '02:00:0a:0b:0c:0d', '02000a0b0c0d'],
  ] as const)('%s round-trips', (_name, codec, value, wire) => {
    const c = codec as { size: number; encode(v: unknown): Buffer; decode(b: Buffer, o?: number): unknown };
    const buf = c.encode(value);
    expect(hex(buf)).toBe(wire);
    expect(buf.length).toBe(c.size);
    expect(c.decode(buf)).toEqual(value);
    // At an offset inside a larger buffer too.
    expect(c.decode(Buffer.concat([Buffer.from([0xee, 0xee]), buf]), 2)).toEqual(value);
  });

  test.each([
    ['__u8 256', () => u8.encode(256)],
    ['__u16 -1', () => u16.encode(-1)],
    ['__u32 1.5', () => u32.encode(1.5)],
    ['__u32 2^32', () => u32.encode(2 ** 32)],
    ['__s32 2^31', () => s32.encode(2 ** 31)],
    ['__u64 -1n', () => u64.encode(-1n)],
    ['__u64 2^64', () => u64.encode(2n ** 64n)],
    ['an IPv6 address as IPv4', () => ipv4.encode('2001:db8::1')],
    ['an IPv4 address as IPv6', () => ipv6.encode('10.0.0.1')],
    ['not an address', () => ipv4.encode('10.0.0')],
    ['a short MAC', () => mac.encode('02:00:00:00:00')],
    ['3 bytes into bytes(4)', () => bytes(4).encode(Buffer.alloc(3))],
  ])('%s is EINVAL', (_name, call) => {
    expect(call).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  test('decoding past the end is EBADMSG', () => {
    expect(() => u32.decode(Buffer.alloc(3))).toThrow(expect.objectContaining({ errnoName: 'EBADMSG' }));
    expect(() => u64.decode(Buffer.alloc(8), 1)).toThrow(KernelError);
  });

  test('bytes and raw copy, so a decoded value does not alias the map buffer', () => {
    const src = Buffer.from('aabbccdd', 'hex');
    const out = raw(4).decode(src);
    src[0] = 0;
    expect(hex(out)).toBe('aabbccdd');
  });
});

describe('struct codecs', () => {
  test('struct deny_value: fields at their offsets, padding zero', () => {
    const buf = DenyValue.encode({ drops: 5n, last_proto: 17 });
    expect(hex(buf)).toBe('0500000000000000' + '11000000' + '00000000');
    expect(DenyValue.decode(buf)).toEqual({ drops: 5n, last_proto: 17 });
  });

  test('struct proto_stats and struct deny_key', () => {
    expect(hex(ProtoStats.encode({ packets: 1n, bytes: 98n }))).toBe('0100000000000000' + '6200000000000000');
    expect(hex(DenyKey.encode({ addr: '192.0.2.7' }))).toBe('c0000207');
  });

  test('nested struct codecs compose', () => {
    const Inner = structCodec('struct inner', 4, { a: [u16, 0], b: [u8, 2] });
    const Outer = structCodec('struct outer', 12, { inner: [Inner, 0], addr: [ipv4, 4], port: [be16, 8] });
    const value = { inner: { a: 7, b: 9 }, addr: '10.1.2.3', port: 53 };
    const buf = Outer.encode(value);
    expect(hex(buf)).toBe('0700' + '09' + '00' + '0a010203' + '0035' + '0000');
    expect(Outer.decode(buf)).toEqual(value);
  });

  test('a missing field, a field past the end, a short buffer', () => {
    expect(() => DenyValue.encode({ drops: 1n } as never)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(() => structCodec('struct bad', 4, { x: [u64, 0] })).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(() => ProtoStats.decode(Buffer.alloc(15))).toThrow(expect.objectContaining({ errnoName: 'EBADMSG' }));
  });
});

describe('pin paths', () => {
  test.each([
    ['/sys/fs/bpf/plexus', true],
    ['/sys/fs/bpf/plexus/endpoints', true],
    ['/sys/fs/bpf/plexus-test_1.x/a', true],
    ['/sys/fs/bpf', false],
    ['/sys/fs/bpf/', false],
    ['/sys/fs/bpf/plexus/', false],
    ['/sys/fs/bpf//plexus', false],
    ['/sys/fs/bpf/../etc', false],
    ['/sys/fs/bpf/plexus/../x', false],
    ['/sys/fs/bpf/.hidden', false],
    ['/sys/fs/bpfx/plexus', false],
    ['sys/fs/bpf/plexus', false],
    ['/tmp/plexus', false],
    ['/sys/fs/bpf/a b', false],
    ['/sys/fs/bpf/a\0b', false],
  ])('%s -> %s', (path, ok) => {
    if (ok) expect(checkPinPath(path, 'test')).toBe(path);
    else expect(() => checkPinPath(path, 'test')).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });

  test('pinPathOf joins a root and one name, and refuses a name with a slash', () => {
    expect(pinPathOf('/sys/fs/bpf/plexus', 'endpoints', 'test')).toBe('/sys/fs/bpf/plexus/endpoints');
    expect(() => pinPathOf('/sys/fs/bpf/plexus', 'a/b', 'test')).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(() => pinPathOf('/sys/fs/bpf/plexus', '..', 'test')).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });
});

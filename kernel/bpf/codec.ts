/**
 * Codecs for BPF map keys and values: each turns a typed value into exactly the bytes of the C type the map
 * was declared with, and back. BPF maps hold host-order integers (Plexus runs on little-endian hosts only, as
 * the netlink codec) and network-order addresses, as the C structs say.
 *
 * A struct codec names the C struct it mirrors and its fields' offsets; a parity test compiles the C header
 * and compares (STYLE 12).
 *
 *   const Stats = structCodec('struct proto_stats', 16, { packets: [u64, 0], bytes: [u64, 8] });
 *   map.typed(u32, Stats).lookup(1)  // { packets: 3n, bytes: 294n }
 */
import { ERRNO, invalidArgument, KernelError } from '../errno';
import { formatIp, parseIp } from '../ip-address';
import { formatMac, parseMac } from '../links';

export interface Codec<T> {
  /** The C type, e.g. '__u32' or 'struct proto_stats'. */
  readonly cName: string;
  readonly size: number;
  encode(value: T): Buffer;
  /** Reads `size` bytes at `offset`. */
  decode(buf: Buffer, offset?: number): T;
}

export type CodecValue<C> = C extends Codec<infer T> ? T : never;

function short(cName: string, size: number, buf: Buffer, offset: number): KernelError {
  return new KernelError(`decode ${cName}`, ERRNO.EBADMSG, { extack: `needs ${size} bytes, got ${buf.length - offset}` });
}

function fixed<T>(
  cName: string,
  size: number,
  write: (b: Buffer, v: T) => void,
  read: (b: Buffer, off: number) => T,
): Codec<T> {
  return {
    cName,
    size,
    encode(value) {
      const b = Buffer.alloc(size);
      write(b, value);
      return b;
    },
    decode(buf, offset = 0) {
      if (buf.length - offset < size) throw short(cName, size, buf, offset);
      return read(buf, offset);
    },
  };
}

function checkInt(cName: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw invalidArgument(`encode ${cName}`, `${v} is out of range`);
  return v;
}

export const u8 = fixed<number>('__u8', 1, (b, v) => b.writeUInt8(checkInt('__u8', v, 0, 0xff)), (b, o) => b.readUInt8(o));
export const u16 = fixed<number>('__u16', 2, (b, v) => b.writeUInt16LE(checkInt('__u16', v, 0, 0xffff)), (b, o) => b.readUInt16LE(o));
export const u32 = fixed<number>('__u32', 4, (b, v) => b.writeUInt32LE(checkInt('__u32', v, 0, 0xffffffff)), (b, o) => b.readUInt32LE(o));
export const s32 = fixed<number>('__s32', 4, (b, v) => b.writeInt32LE(checkInt('__s32', v, -0x80000000, 0x7fffffff)), (b, o) => b.readInt32LE(o));
export const u64 = fixed<bigint>(
  '__u64',
  8,
  (b, v) => {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw invalidArgument('encode __u64', `${v} is out of range`);
    b.writeBigUInt64LE(v);
  },
  (b, o) => b.readBigUInt64LE(o),
);
/** Network-order 16 bits (a port), as a number. */
export const be16 = fixed<number>('__be16', 2, (b, v) => b.writeUInt16BE(checkInt('__be16', v, 0, 0xffff)), (b, o) => b.readUInt16BE(o));
/** Network-order 32 bits, as a number. */
export const be32 = fixed<number>('__be32', 4, (b, v) => b.writeUInt32BE(checkInt('__be32', v, 0, 0xffffffff)), (b, o) => b.readUInt32BE(o));

function address(cName: string, size: 4 | 16): Codec<string> {
  return fixed<string>(
    cName,
    size,
    (b, v) => {
      const bytes = parseIp(v);
      if (bytes.length !== size) throw invalidArgument(`encode ${cName}`, `${v} is not IPv${size === 4 ? 4 : 6}`);
      bytes.copy(b);
    },
    (b, o) => formatIp(Buffer.from(b.subarray(o, o + size))),
  );
}

/** An IPv4 address in network order (a __be32 in C), as "10.0.0.1". */
export const ipv4 = address('__be32', 4);
/** An IPv6 address (struct in6_addr), as "2001:db8::1". */
export const ipv6 = address('struct in6_addr', 16);
/** A MAC address (__u8[6]), as "aa:bb:cc:dd:ee:ff". */
export const mac = fixed<string>(
  '__u8[6]',
  6,
  (b, v) => parseMac(v, 'encode MAC').copy(b),
  (b, o) => formatMac(b.subarray(o, o + 6)),
);

/** Raw bytes of a fixed length (a char array, or a key this codebase does not interpret). */
export function bytes(size: number, cName = `__u8[${size}]`): Codec<Buffer> {
  return fixed<Buffer>(
    cName,
    size,
    (b, v) => {
      if (v.length !== size) throw invalidArgument(`encode ${cName}`, `${v.length} bytes, expected ${size}`);
      v.copy(b);
    },
    (b, o) => Buffer.from(b.subarray(o, o + size)),
  );
}

/** field name -> [codec, offset in the C struct]. Bytes no field covers (padding) are zero when encoding. */
export type FieldSpecs = Record<string, readonly [Codec<any>, number]>;
export type StructValue<F extends FieldSpecs> = { [K in keyof F]: CodecValue<F[K][0]> };

export interface StructCodec<F extends FieldSpecs> extends Codec<StructValue<F>> {
  readonly fields: F;
}

/** A C struct: its name, sizeof, and each field's codec and offsetof. */
export function structCodec<F extends FieldSpecs>(cName: string, size: number, fields: F): StructCodec<F> {
  const entries = Object.entries(fields);
  for (const [name, [codec, offset]] of entries) {
    if (offset < 0 || offset + codec.size > size) {
      throw invalidArgument(`define ${cName}`, `field ${name} at ${offset} (+${codec.size}) overruns ${size} bytes`);
    }
  }
  return {
    cName,
    size,
    fields,
    encode(value) {
      const b = Buffer.alloc(size);
      for (const [name, [codec, offset]] of entries) {
        const v = (value as Record<string, unknown>)[name];
        if (v === undefined) throw invalidArgument(`encode ${cName}`, `field ${name} is missing`);
        codec.encode(v).copy(b, offset);
      }
      return b;
    },
    decode(buf, offset = 0) {
      if (buf.length - offset < size) throw short(cName, size, buf, offset);
      const out: Record<string, unknown> = {};
      for (const [name, [codec, at]] of entries) out[name] = codec.decode(buf, offset + at);
      return out as StructValue<F>;
    },
  };
}

/** The identity codec for maps used without a typed view. */
export function raw(size: number): Codec<Buffer> {
  return bytes(size, `${size} bytes`);
}

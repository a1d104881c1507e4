/**
 * Encoding and decoding of netlink messages: headers, fixed structs and (nested) attributes.
 *
 * Netlink is host byte order; Plexus runs on little-endian Linux (x86-64, arm64), so everything here is LE
 * (NetlinkSocket refuses to open on a big-endian host). Every message and attribute starts on a 4-byte boundary
 * (NLMSG_ALIGN / RTA_ALIGN); lengths in headers exclude the trailing padding of their own payload.
 *
 * The fixed structs (struct nlmsghdr, ifinfomsg, ...) live in structs.ts and are re-exported here.
 */
import { ERRNO, KernelError } from '../errno';
import { NLA_F, NLA_TYPE_MASK, NLM_F, NLMSG_ALIGNTO, NLMSG_HDRLEN, NLMSGERR_ATTR } from './constants';
import { NLMSGERR, NLMSGHDR, type NlMsgHdr, RTATTR, type StructCodec } from './structs';

export * from './structs';

export const align4 = (n: number): number => (n + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1);

function malformed(why: string): KernelError {
  return new KernelError('decode netlink message', ERRNO.EBADMSG, { extack: why });
}

// ---- attributes -------------------------------------------------------------------------------------------

/** An attribute to encode: raw bytes, or children (a nested attribute). */
export interface AttrSpec {
  readonly type: number;
  readonly value: Buffer | readonly AttrSpec[];
  /** Set NLA_F_NESTED on a nested attribute (newer kernel policies require it; older ones accept either). */
  readonly flagNested?: boolean;
}

/** A decoded attribute: `type` without the NLA_F_* bits, `data` a view of the payload (no padding). */
export interface Attr {
  readonly type: number;
  readonly nested: boolean;
  readonly data: Buffer;
}

const num = (size: number, write: (b: Buffer) => void): Buffer => {
  const b = Buffer.alloc(size);
  write(b);
  return b;
};

/** Builders for attribute values. Strings are NUL-terminated, as the kernel's NLA_STRING/NLA_NUL_STRING want. */
export const attr = {
  u8: (type: number, v: number): AttrSpec => ({ type, value: num(1, (b) => b.writeUInt8(v)) }),
  u16: (type: number, v: number): AttrSpec => ({ type, value: num(2, (b) => b.writeUInt16LE(v)) }),
  u32: (type: number, v: number): AttrSpec => ({ type, value: num(4, (b) => b.writeUInt32LE(v >>> 0)) }),
  s32: (type: number, v: number): AttrSpec => ({ type, value: num(4, (b) => b.writeInt32LE(v)) }),
  str: (type: number, s: string): AttrSpec => ({ type, value: Buffer.from(`${s}\0`, 'utf8') }),
  bytes: (type: number, b: Buffer): AttrSpec => ({ type, value: b }),
  flag: (type: number): AttrSpec => ({ type, value: Buffer.alloc(0) }),
  nest: (type: number, children: readonly AttrSpec[], flagNested = false): AttrSpec => ({
    type,
    value: children,
    flagNested,
  }),
};

function payloadSize(a: AttrSpec): number {
  return Buffer.isBuffer(a.value) ? a.value.length : attrsSize(a.value);
}

/** Encoded size of a list of attributes, each padded to 4 bytes. */
export function attrsSize(attrs: readonly AttrSpec[]): number {
  let n = 0;
  for (const a of attrs) n += align4(RTATTR.size + payloadSize(a));
  return n;
}

function writeAttrs(buf: Buffer, offset: number, attrs: readonly AttrSpec[]): number {
  let off = offset;
  for (const a of attrs) {
    const len = RTATTR.size + payloadSize(a);
    if (len > 0xffff) throw new KernelError(`encode attribute ${a.type}`, ERRNO.EMSGSIZE);
    buf.writeUInt16LE(len, off);
    buf.writeUInt16LE(a.type | (a.flagNested ? NLA_F.NESTED : 0), off + 2);
    if (Buffer.isBuffer(a.value)) a.value.copy(buf, off + RTATTR.size);
    else writeAttrs(buf, off + RTATTR.size, a.value);
    off += align4(len); // padding bytes stay zero: buffers come from Buffer.alloc
  }
  return off;
}

export function encodeAttrs(attrs: readonly AttrSpec[]): Buffer {
  const buf = Buffer.alloc(attrsSize(attrs));
  writeAttrs(buf, 0, attrs);
  return buf;
}

/** Decodes the attributes in buf[offset, end). Trailing bytes too short for a header are padding. */
export function decodeAttrs(buf: Buffer, offset = 0, end = buf.length): Attr[] {
  const out: Attr[] = [];
  let off = offset;
  while (end - off >= RTATTR.size) {
    const len = buf.readUInt16LE(off);
    const rawType = buf.readUInt16LE(off + 2);
    if (len < RTATTR.size || off + len > end) throw malformed(`attribute ${rawType} has bad length ${len}`);
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F.NESTED) !== 0,
      data: buf.subarray(off + RTATTR.size, off + len),
    });
    off += align4(len);
  }
  return out;
}

export const findAttr = (attrs: readonly Attr[], type: number): Attr | undefined => attrs.find((a) => a.type === type);
export const findAttrs = (attrs: readonly Attr[], type: number): Attr[] => attrs.filter((a) => a.type === type);

function need(a: Attr, size: number): Buffer {
  if (a.data.length < size) throw malformed(`attribute ${a.type} needs ${size} bytes, got ${a.data.length}`);
  return a.data;
}

export const readU8 = (a: Attr): number => need(a, 1).readUInt8(0);
export const readU16 = (a: Attr): number => need(a, 2).readUInt16LE(0);
export const readU32 = (a: Attr): number => need(a, 4).readUInt32LE(0);
export const readS32 = (a: Attr): number => need(a, 4).readInt32LE(0);
/** A string attribute, up to its first NUL (the kernel always terminates; user-set ones may not be). */
export function readStr(a: Attr): string {
  const nul = a.data.indexOf(0);
  return a.data.toString('utf8', 0, nul === -1 ? a.data.length : nul);
}
export const readNested = (a: Attr): Attr[] => decodeAttrs(a.data);

// ---- messages ---------------------------------------------------------------------------------------------

export interface NlMessage {
  readonly header: NlMsgHdr;
  /** The bytes after the header, without the message's trailing padding. */
  readonly payload: Buffer;
}

/** One netlink message: header (length filled in) + payload parts, each part already 4-byte padded. */
export function encodeMessage(
  header: { type: number; flags: number; seq: number; pid?: number },
  ...parts: Buffer[]
): Buffer {
  const body = Buffer.concat(parts);
  const len = NLMSG_HDRLEN + body.length;
  const head = NLMSGHDR.encode({
    nlmsg_len: len,
    nlmsg_type: header.type,
    nlmsg_flags: header.flags,
    nlmsg_seq: header.seq,
    nlmsg_pid: header.pid ?? 0,
  });
  const out = Buffer.alloc(align4(len));
  head.copy(out, 0);
  body.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Splits one received datagram (buf[0, length)) into messages. */
export function decodeMessages(buf: Buffer, length = buf.length): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (length - off >= NLMSG_HDRLEN) {
    const header = NLMSGHDR.decode(buf, off);
    const len = header.nlmsg_len;
    if (len < NLMSG_HDRLEN || off + len > length) {
      throw malformed(`message of type ${header.nlmsg_type} has bad length ${len}`);
    }
    out.push({ header, payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/** A fixed struct followed by attributes: the body of every rtnetlink message. */
export function encodeBody<K extends string>(
  struct: StructCodec<K>,
  value: Partial<Record<K, number>>,
  attrs: readonly AttrSpec[] = [],
): Buffer {
  return Buffer.concat([struct.encode(value), encodeAttrs(attrs)]);
}

export interface Body<K extends string> {
  readonly fixed: Record<K, number>;
  readonly attrs: Attr[];
}

export function decodeBody<K extends string>(struct: StructCodec<K>, payload: Buffer): Body<K> {
  return { fixed: struct.decode(payload), attrs: decodeAttrs(payload, align4(struct.size)) };
}

export interface NlError {
  /** 0 for an ack, otherwise a positive errno. */
  readonly errno: number;
  /** NLMSGERR_ATTR_MSG of an extended ack. */
  readonly extack?: string;
  /** The header of the request this answers. */
  readonly request: NlMsgHdr;
}

/** An NLMSG_ERROR payload: struct nlmsgerr, then (NLM_F_ACK_TLVS) extended-ack attributes. */
export function decodeError(msg: NlMessage): NlError {
  const { error } = NLMSGERR.decode(msg.payload);
  const request = NLMSGHDR.decode(msg.payload, 4);
  const out: { errno: number; extack?: string; request: NlMsgHdr } = { errno: error === 0 ? 0 : -error, request };
  if (msg.header.nlmsg_flags & NLM_F.ACK_TLVS) {
    // With NETLINK_CAP_ACK (NLM_F_CAPPED) only the request's header is echoed; otherwise the whole request.
    const echoed = msg.header.nlmsg_flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align4(request.nlmsg_len);
    const tlvs = decodeAttrs(msg.payload, 4 + echoed);
    const text = findAttr(tlvs, NLMSGERR_ATTR.MSG);
    if (text) out.extack = readStr(text);
  }
  return out;
}

/** NLMSG_DONE carries an int: 0, or the negative errno that ended a dump early. */
export function decodeDoneErrno(msg: NlMessage): number {
  const error = msg.payload.length >= 4 ? msg.payload.readInt32LE(0) : 0;
  return error === 0 ? 0 : -error;
}

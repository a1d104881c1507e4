/**
 * IP addresses as the kernel sees them (4 or 16 network-order bytes) and as people write them.
 * Formatting follows RFC 5952 (lowercase, longest run of two or more zero groups as "::"), which is what
 * inet_ntop(3) and therefore `ip` print.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv6Groups } from '../core/ip-text';
import { invalidArgument } from './errno';

export type IpFamily = 4 | 6;

export interface IpPrefix {
  readonly family: IpFamily;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Buffer;
  readonly prefixLength: number;
}

export function familyOf(bytes: Buffer): IpFamily {
  return bytes.length === 4 ? 4 : 6;
}

/** Parses "10.1.2.3" or "2001:db8::1" (no zone index). Throws EINVAL. */
export function parseIp(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (isIPv6(text) && !text.includes('%')) return parseV6(text);
  throw invalidArgument(`parse IP address ${JSON.stringify(text)}`, 'not an IPv4 or IPv6 address');
}

/** Parses "10.1.2.0/24" or "2001:db8::/64"; a bare address means the host prefix (/32, /128). Throws EINVAL. */
export function parseCidr(text: string): IpPrefix {
  const slash = text.indexOf('/');
  const bytes = parseIp(slash === -1 ? text : text.slice(0, slash));
  const max = bytes.length * 8;
  const lenText = slash === -1 ? String(max) : text.slice(slash + 1);
  const prefixLength = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(prefixLength <= max)) {
    throw invalidArgument(`parse CIDR ${JSON.stringify(text)}`, `prefix length must be 0-${max}`);
  }
  return { family: familyOf(bytes), bytes, prefixLength };
}

export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw invalidArgument('format IP address', `${bytes.length} bytes`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  return formatIpv6Groups(groups);
}

export function formatCidr(bytes: Buffer, prefixLength: number): string {
  return `${formatIp(bytes)}/${prefixLength}`;
}

function parseV6(text: string): Buffer {
  // node:net has already validated the syntax; only the layout is worked out here.
  let s = text;
  const tail: number[] = [];
  if (s.includes('.')) {
    // A dotted IPv4 tail ("::ffff:10.0.0.1") stands for the last two groups.
    const colon = s.lastIndexOf(':');
    const [a = 0, b = 0, c = 0, d = 0] = s.slice(colon + 1).split('.').map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    s = s.slice(0, colon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  let words: number[];
  if (s.includes('::')) {
    const [left = '', right = ''] = s.split('::');
    const l = groups(left);
    const r = groups(right);
    words = [...l, ...new Array<number>(8 - l.length - r.length - tail.length).fill(0), ...r];
  } else {
    words = groups(s);
  }
  words.push(...tail);
  const out = Buffer.alloc(16);
  words.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

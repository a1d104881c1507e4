/**
 * Value checks for network references and the networks annotation (S4, S13, S14, S19, S20, S21). Written by
 * hand rather than as a schema because every failure must say exactly which value is wrong: an invalid
 * annotation is ignored with a warning (S13-S19), and that warning is all the user sees.
 */
import { isIP } from 'node:net';

const DNS1123_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// One separator used throughout, as Go's net.ParseMAC accepts for 6-byte addresses.
const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;
const GUID_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){7}$/i;
// Decimal without leading zeros, as Go's netip.ParsePrefix requires.
const PREFIX_RE = /^(0|[1-9][0-9]{0,2})$/;

/** A JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** S4: NAD names and namespaces are DNS-1123 labels. */
export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL_RE.test(s);
}

/** A Kubernetes object name such as an IPAMClaim's (S21, S37): a DNS-1123 subdomain. */
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN_RE.test(s);
}

/**
 * 4 or 6 for an IPv4 or IPv6 address, else 0. A zone (`fe80::1%eth0`) is refused: it names an interface of
 * the host that wrote the annotation, which means nothing to the pod.
 */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (s.includes('%')) return 0;
  return isIP(s) as 0 | 4 | 6;
}

/** S13: an address with an optional `/prefix` in range for its family; a problem, or undefined when valid. */
export function ipWithPrefixProblem(s: string): string | undefined {
  const slash = s.indexOf('/');
  const address = slash === -1 ? s : s.slice(0, slash);
  const family = ipFamily(address);
  if (family === 0) return `${JSON.stringify(address)} is not an IPv4 or IPv6 address`;
  if (slash === -1) return undefined;
  const prefix = s.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!PREFIX_RE.test(prefix) || Number(prefix) > max) {
    return `the prefix length of ${JSON.stringify(s)} is not an integer from 0 to ${max}`;
  }
  return undefined;
}

/** S14: a 6-byte MAC in lowercase colon form, or undefined when `s` is not one. */
export function normaliseMac(s: string): string | undefined {
  if (!MAC_RE.test(s)) return undefined;
  return s.toLowerCase().replaceAll('-', ':');
}

/** S20: an 8-byte InfiniBand GUID, `xx:xx:xx:xx:xx:xx:xx:xx`. */
export function isInfinibandGuid(s: string): boolean {
  return GUID_RE.test(s);
}

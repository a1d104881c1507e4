/**
 * The reserved keys of a networks annotation element that Plexus knows (S11-S21): each value is checked and
 * stored in its validated form. A bad value throws InvalidValue, which makes the whole annotation invalid.
 */
import { ifNameProblem, type IfName } from '../../cni/ids';
import type { Bandwidth, NetworkSelection, PortMapping } from './annotation';
import {
  ipFamily,
  ipWithPrefixProblem,
  isDns1123Label,
  isDns1123Subdomain,
  isInfinibandGuid,
  isJsonObject,
  normaliseMac,
} from './validators';

/** An invalid value somewhere in the annotation: turned into `{ok: false}` at the top (S13-S19). */
export class InvalidValue extends Error {}

type KeyParser = (value: unknown, into: NetworkSelection) => void;

/** The reserved keys this implementation knows (S11-S21), each storing its validated value. */
const KEY_PARSERS: Readonly<Record<string, KeyParser>> = {
  name: (v, s) => (s.name = parseName(v)),
  namespace: (v, s) => (s.namespace = parseNamespace(v) ?? s.namespace),
  ips: (v, s) => (s.ips = parseIps(v)),
  mac: (v, s) => (s.mac = parseMac(v)),
  interface: (v, s) => (s.interface = parseInterface(expectString(v))),
  'cni-args': (v, s) => (s.cniArgs = parseCniArgs(v)),
  portMappings: (v, s) => (s.portMappings = parsePortMappings(v)),
  bandwidth: (v, s) => (s.bandwidth = parseBandwidth(v)),
  'default-route': (v, s) => (s.defaultRoute = parseDefaultRoute(v)),
  'infiniband-guid': (v, s) => (s.infinibandGuid = parseInfinibandGuid(v)),
  'ipam-claim-reference': (v, s) => (s.ipamClaimReference = parseIpamClaimReference(v)),
};

/** Store `value` of reserved key `key` into `into`; false when the key is not one this implementation knows. */
export function parseKey(key: string, value: unknown, into: NetworkSelection, where: string): boolean {
  // Own keys only: "constructor" or "toString" must not find Object.prototype's.
  const parse = Object.hasOwn(KEY_PARSERS, key) ? KEY_PARSERS[key] : undefined;
  if (!parse) return false;
  try {
    parse(value, into);
  } catch (err) {
    if (!(err instanceof InvalidValue)) throw err;
    throw new InvalidValue(`${where}: ${err.message}`);
  }
  return true;
}

function expectString(v: unknown): string {
  if (typeof v !== 'string') throw new InvalidValue(`${JSON.stringify(v)} is not a string`);
  return v;
}

function expectStringList(v: unknown): string[] {
  if (!Array.isArray(v)) throw new InvalidValue(`${JSON.stringify(v)} is not a list of strings`);
  return v.map(expectString);
}

/** S11, S4. */
function parseName(v: unknown): string {
  const name = expectString(v);
  if (!isDns1123Label(name)) throw new InvalidValue(`${JSON.stringify(name)} is not a DNS-1123 label (S4)`);
  return name;
}

/** S12: empty means the pod's namespace (undefined here). */
function parseNamespace(v: unknown): string | undefined {
  const namespace = expectString(v);
  if (namespace === '') return undefined;
  if (!isDns1123Label(namespace)) throw new InvalidValue(`${JSON.stringify(namespace)} is not a DNS-1123 label (S4)`);
  return namespace;
}

/** S13. */
function parseIps(v: unknown): string[] {
  const ips = expectStringList(v);
  if (ips.length === 0) throw new InvalidValue('the list is empty; it needs at least one address (S13)');
  for (const ip of ips) {
    const problem = ipWithPrefixProblem(ip);
    if (problem) throw new InvalidValue(`${problem} (S13)`);
  }
  return ips;
}

/** S14. */
function parseMac(v: unknown): string {
  const raw = expectString(v);
  const mac = normaliseMac(raw);
  if (mac === undefined) throw new InvalidValue(`${JSON.stringify(raw)} is not a 6-byte MAC address (S14)`);
  return mac;
}

/** S15. */
export function parseInterface(raw: string): IfName {
  const problem = ifNameProblem(raw);
  if (problem) throw new InvalidValue(`interface name ${JSON.stringify(raw)} is invalid: ${problem} (S15)`);
  return raw as IfName;
}

/** S16. */
function parseCniArgs(v: unknown): Record<string, unknown> {
  if (!isJsonObject(v)) throw new InvalidValue(`${JSON.stringify(v)} is not an object (S16)`);
  return structuredClone(v);
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const PORT_MAPPING_KEYS = ['hostPort', 'containerPort', 'protocol', 'hostIP'];

/** S17. */
function parsePortMappings(v: unknown): PortMapping[] {
  if (!Array.isArray(v)) throw new InvalidValue(`${JSON.stringify(v)} is not a list (S17)`);
  return v.map((entry, i) => {
    if (!isJsonObject(entry)) throw new InvalidValue(`entry ${i} is not an object (S17)`);
    rejectUnknownKeys(entry, PORT_MAPPING_KEYS, `entry ${i}`);
    const mapping: PortMapping = {
      hostPort: parsePort(entry['hostPort'], `entry ${i} hostPort`),
      containerPort: parsePort(entry['containerPort'], `entry ${i} containerPort`),
      protocol: parseProtocol(entry['protocol'], `entry ${i} protocol`),
    };
    if ('hostIP' in entry) mapping.hostIP = parseHostIp(entry['hostIP'], `entry ${i} hostIP`);
    return mapping;
  });
}

function parsePort(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) {
    throw new InvalidValue(`${what} ${JSON.stringify(v)} is not an integer from 1 to 65535 (S17)`);
  }
  return v as number;
}

/** S17: case-insensitive, TCP when absent. */
function parseProtocol(v: unknown, what: string): PortMapping['protocol'] {
  if (v === undefined) return 'TCP';
  const protocol = PROTOCOLS.find((p) => typeof v === 'string' && p === v.toUpperCase());
  if (!protocol) throw new InvalidValue(`${what} ${JSON.stringify(v)} is not one of TCP, UDP, SCTP (S17)`);
  return protocol;
}

function parseHostIp(v: unknown, what: string): string {
  if (typeof v !== 'string' || ipFamily(v) === 0) {
    throw new InvalidValue(`${what} ${JSON.stringify(v)} is not an IP address (S17)`);
  }
  return v;
}

const BANDWIDTH_PAIRS = [
  ['ingressRate', 'ingressBurst'],
  ['egressRate', 'egressBurst'],
] as const;

/** S18: positive integers; a burst needs its rate. */
function parseBandwidth(v: unknown): Bandwidth {
  if (!isJsonObject(v)) throw new InvalidValue(`${JSON.stringify(v)} is not an object (S18)`);
  rejectUnknownKeys(v, BANDWIDTH_PAIRS.flat(), 'bandwidth');
  const bandwidth: Bandwidth = {};
  for (const [rate, burst] of BANDWIDTH_PAIRS) {
    if (burst in v && !(rate in v)) throw new InvalidValue(`${burst} is set without ${rate} (S18)`);
    for (const key of [rate, burst]) {
      if (key in v) bandwidth[key] = parsePositiveInteger(v[key], key);
    }
  }
  return bandwidth;
}

function parsePositiveInteger(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) <= 0) {
    throw new InvalidValue(`${what} ${JSON.stringify(v)} is not a positive integer (S18)`);
  }
  return v as number;
}

/** Nested maps have a fixed shape: an unknown key is most likely a typo that would silently do nothing. */
function rejectUnknownKeys(v: Record<string, unknown>, known: readonly string[], what: string): void {
  const unknown = Object.keys(v).find((k) => !known.includes(k));
  if (unknown !== undefined) throw new InvalidValue(`${what} has unknown key ${JSON.stringify(unknown)}`);
}

/** S19: gateway addresses, possibly none. */
function parseDefaultRoute(v: unknown): string[] {
  const gateways = expectStringList(v);
  const bad = gateways.find((g) => ipFamily(g) === 0);
  if (bad !== undefined) throw new InvalidValue(`gateway ${JSON.stringify(bad)} is not an IP address (S19)`);
  return gateways;
}

/** S20. */
function parseInfinibandGuid(v: unknown): string {
  const guid = expectString(v);
  if (!isInfinibandGuid(guid)) throw new InvalidValue(`${JSON.stringify(guid)} is not an 8-byte GUID (S20)`);
  return guid;
}

/** S21: the name of an IPAMClaim object (S37), so a DNS-1123 subdomain. */
function parseIpamClaimReference(v: unknown): string {
  const claim = expectString(v);
  if (!isDns1123Subdomain(claim)) {
    throw new InvalidValue(`${JSON.stringify(claim)} is not a valid IPAMClaim name (S21)`);
  }
  return claim;
}

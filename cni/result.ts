/**
 * CNI success results and their conversion between versions, as libcni does it (CNI spec 2.2, 2.4):
 * 0.1.0/0.2.0 results (`ip4`/`ip6`) are lifted to the current shape; 0.3.x/0.4.0 carry `ips[].version`;
 * 1.x drops it. Plexus keeps delegates' results exactly as returned and converts only at the edges.
 */
import { isIP } from 'node:net';
import { PlexusError } from '../core/errors';
import { versionAtLeast } from './version';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}
export interface CniIpConfig {
  address: string;
  gateway?: string;
  interface?: number;
  version?: '4' | '6';
}
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parse any result a delegate printed into the current (1.x) shape, without `ips[].version`. */
export function parseResult(raw: unknown, fallbackVersion: string): CniResult {
  if (!isObject(raw)) throw new PlexusError('DecodeFailure', 'delegate result is not a JSON object');
  const version = typeof raw['cniVersion'] === 'string' && raw['cniVersion'] ? raw['cniVersion'] : fallbackVersion;
  if (!versionAtLeast(version, '0.3.0')) return fromLegacy(raw, version);
  const out: CniResult = { cniVersion: version };
  if (Array.isArray(raw['interfaces'])) out.interfaces = raw['interfaces'] as CniInterface[];
  if (Array.isArray(raw['ips'])) {
    out.ips = (raw['ips'] as Record<string, unknown>[]).map((ip) => {
      const { version: _v, ...rest } = ip;
      return rest as unknown as CniIpConfig;
    });
  }
  if (Array.isArray(raw['routes'])) out.routes = raw['routes'] as CniRoute[];
  if (isObject(raw['dns'])) out.dns = raw['dns'] as CniDns;
  return out;
}

/** 0.1.0/0.2.0: `ip4`/`ip6` objects with their own routes. */
function fromLegacy(raw: Record<string, unknown>, version: string): CniResult {
  const out: CniResult = { cniVersion: version, ips: [], routes: [] };
  for (const key of ['ip4', 'ip6']) {
    const ipc = raw[key];
    if (!isObject(ipc) || typeof ipc['ip'] !== 'string') continue;
    const ip: CniIpConfig = { address: ipc['ip'] };
    if (typeof ipc['gateway'] === 'string') ip.gateway = ipc['gateway'];
    out.ips!.push(ip);
    if (Array.isArray(ipc['routes'])) out.routes!.push(...(ipc['routes'] as CniRoute[]));
  }
  if (isObject(raw['dns'])) out.dns = raw['dns'] as CniDns;
  return out;
}

/** Emit `result` in `version`: 1.x without `ips[].version`, 0.3.x/0.4.0 with it. */
export function convertResult(result: CniResult, version: string): CniResult {
  const out: CniResult = { ...result, cniVersion: version };
  // CNI 1.1 added `socketPath` and `pciID` to interfaces: an older result has no such fields.
  if (result.interfaces && !versionAtLeast(version, '1.1.0')) {
    out.interfaces = result.interfaces.map(({ socketPath: _s, pciID: _p, ...rest }) => rest);
  }
  if (result.ips) {
    const legacy = !versionAtLeast(version, '1.0.0');
    out.ips = result.ips.map((ip) => {
      const { version: _v, ...rest } = ip;
      return legacy ? { ...rest, version: ipFamilyOf(ip.address) } : rest;
    });
  }
  if (out.interfaces === undefined && result.ips === undefined && !versionAtLeast(version, '1.0.0')) {
    out.ips = [];
  }
  return dropUndefined(out);
}

export function ipFamilyOf(cidrOrIp: string): '4' | '6' {
  const ip = cidrOrIp.split('/')[0] ?? '';
  return isIP(ip) === 6 ? '6' : '4';
}

/** An address without its prefix: "10.1.2.3/24" -> "10.1.2.3". */
export const stripPrefix = (cidr: string): string => cidr.split('/')[0] ?? cidr;

/** Whether a result route is a default route (the one test for it: S19 and plexus-routed use it). */
export const isDefaultDst = (dst: string): boolean => dst === '0.0.0.0/0' || dst === '::/0' || dst === '::0/0';

/** A result's default route destination for an address family. */
export const defaultDstOf = (family: 4 | 6): string => (family === 4 ? '0.0.0.0/0' : '::/0');

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

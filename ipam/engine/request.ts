/**
 * The allocation request as callers write it, its validation, and the plan: which families of the request
 * still need an address (a retried ADD finds them all present and gets the same addresses back).
 */
import { PlexusError } from '../../core/errors';
import { parseContainerId, parseIfName } from '../../cni/ids';
import { type Family, type Ip, formatIp, parseIp } from '../../core/address';
import type { Engine } from './engine';
import { podKeyOf } from './node-book';
import type { Pool } from '../model/pool';
import { fixedKey } from '../model/records';

export interface AllocateRequest {
  pod: { namespace: string; name: string; uid?: string };
  containerId: string;
  ifName: string;
  /** The network (NAD) name, recorded with the address for status, DEL and operators. */
  network: string;
  pool: string;
  /** Default: every family the pool has ('dual' for a dual-stack pool). Ignored when `ip` is given. */
  family?: Family | 'dual';
  /** Specific addresses, at most one per family (the `ips` annotation, runtimeConfig.ips). */
  ip?: string[];
  /** StatefulSet pods: the same pod name gets the same address back. */
  sticky?: boolean;
  /** IPAMClaim name in the pod's namespace (S21 `ipam-claim-reference`): the address belongs to the claim. */
  claim?: string;
}

export interface AllocatedAddress {
  ip: string;
  /** `ip/prefixLength`, the form CNI results use. */
  address: string;
  prefixLength: number;
  family: Family;
  gateway?: string;
  pool: string;
  network: string;
  /** `claim:ns/name` or `sticky:ns/name` for fixed addresses. */
  fixed?: string;
}

export interface Allocation {
  containerId: string;
  ifName: string;
  network: string;
  pool: string;
  addresses: AllocatedAddress[];
  routes: { dst: string; gw?: string }[];
}

export interface AllocationPlan {
  request: AllocateRequest;
  pool: Pool;
  podKey: string;
  fixedKey?: string;
  missing: { family: Family; ip?: Ip }[];
}

const invalid = (msg: string): PlexusError => new PlexusError('InvalidConfig', msg);

function checkPod(pod: AllocateRequest['pod']): void {
  for (const [field, v] of [['namespace', pod?.namespace], ['name', pod?.name]] as const) {
    if (typeof v !== 'string' || v === '' || v.length > 253 || /[/\s:]/.test(v)) {
      throw new PlexusError('InvalidEnv', `pod ${field} ${JSON.stringify(v)} is invalid`);
    }
  }
}

export function planFamilies(
  e: Engine, req: AllocateRequest, pools: ReadonlyMap<string, Pool>, nodeLabels?: Readonly<Record<string, string>>,
): AllocationPlan {
  checkPod(req.pod);
  parseContainerId(req.containerId, 'containerId');
  parseIfName(req.ifName, 'ifName');
  const pool = pools.get(req.pool);
  if (!pool) throw invalid(`IPAM pool ${JSON.stringify(req.pool)} is not configured`);
  const selector = Object.entries(pool.spec.nodeSelector ?? {});
  if (nodeLabels && selector.some(([k, v]) => nodeLabels[k] !== v)) {
    throw new PlexusError('NetworkNotAllowed', `IPAM pool ${pool.name} is not for node ${e.node} (nodeSelector ${selector.map(([k, v]) => `${k}=${v}`).join(',')})`);
  }
  if (req.claim !== undefined && req.ip?.length) throw invalid('an IPAMClaim reference cannot be combined with ips (S21)');
  if (req.sticky && req.ip?.length) throw invalid('sticky addresses cannot be combined with ips: ips are already stable');
  if (req.sticky && req.claim !== undefined) throw invalid('sticky and an IPAMClaim reference cannot be combined');
  if (req.claim !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(req.claim)) throw invalid(`IPAMClaim name ${JSON.stringify(req.claim)} is invalid`);
  const ips = (req.ip ?? []).map((s) => parseIp(s, `requested address`));
  let families: Family[];
  if (ips.length) {
    families = ips.map((ip) => ip.family);
    if (new Set(families).size !== families.length) throw invalid(`at most one requested address per family, got ${req.ip?.join(', ')}`);
  } else if (req.family === undefined || req.family === 'dual') {
    families = [...pool.families];
  } else {
    if (!pool.families.includes(req.family)) throw invalid(`pool ${pool.name} has no ${req.family} CIDR`);
    families = [req.family];
  }
  const podKey = podKeyOf(req.pod);
  const holder = e.book.podOf(req.containerId, req.ifName);
  if (holder !== undefined && holder !== podKey) {
    throw new PlexusError('PodMismatch', `attachment ${req.containerId}/${req.ifName} belongs to pod ${holder}, not ${podKey}`);
  }
  const have = e.book.addressesOf(req.containerId, req.ifName).filter((a) => a.addr.pool === pool.name);
  const missing: AllocationPlan['missing'] = [];
  for (const [i, family] of families.entries()) {
    const got = have.find((a) => a.addr.family === family);
    const ip = ips[i];
    if (got && ip && got.addr.ip !== formatIp(ip)) {
      throw new PlexusError('AddressConflict', `attachment ${req.containerId}/${req.ifName} already holds ${got.addr.ip} in pool ${pool.name}, not ${formatIp(ip)}`);
    }
    if (!got) missing.push(ip ? { family, ip } : { family });
  }
  const fk = req.claim !== undefined ? fixedKey('claim', req.pod.namespace, req.claim) : req.sticky ? fixedKey('sticky', req.pod.namespace, req.pod.name) : undefined;
  return { request: req, pool, podKey, missing, ...(fk ? { fixedKey: fk } : {}) };
}

/** The attachment's addresses on `pool`, as the caller (a delegate, the CNI IPAM plugin) needs them. */
export function toAllocation(e: Engine, req: AllocateRequest, pool: Pool): Allocation {
  const addrs = e.book.addressesOf(req.containerId, req.ifName).map((a) => a.addr)
    .filter((a) => a.pool === pool.name)
    .sort((a, b) => (a.family === b.family ? 0 : a.family === 'v4' ? -1 : 1));
  const families = new Set(addrs.map((a) => a.family));
  return {
    containerId: req.containerId, ifName: req.ifName, network: req.network, pool: pool.name,
    addresses: addrs.map((a) => {
      const gw = pool.gateways[a.family];
      const out: AllocatedAddress = { ip: a.ip, address: `${a.ip}/${a.prefixLength}`, prefixLength: a.prefixLength, family: a.family, pool: a.pool, network: req.network };
      if (gw) out.gateway = formatIp(gw);
      if (a.fixed) out.fixed = a.fixed;
      return out;
    }),
    routes: pool.routes.filter((r) => families.has(r.family)).map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst })),
  };
}

/**
 * `plexus-ipam`, the CNI IPAM plugin (CNI spec 2.1, 2.2 "IPAM results"; issue 3 "Interfaces"): what a delegate
 * (macvlan, bridge ...) execs as its `ipam.type`, answered by the daemon's IPAM service. The delegate passes
 * its FULL network config; the IPAM part is `ipam`:
 * - `pool: NAME` allocates from a configured pool;
 * - host-local `ranges` and Whereabouts `range`/`ipRanges` define an implicit pool (cni-ranges.ts), named
 *   after the ranges and shared by every network with identical ones (implicit-pools.ts), registered next
 *   to the configured pools on the first ADD (or when the daemon starts, from the source's NADs).
 * Requests come in decoded (cni/request.ts); results go out in the config's version without
 * `interfaces` or `ips[].interface`. Errors are PlexusErrors naming the field; the daemon logs them.
 */
import type { Logger } from 'pino';
import { PlexusError } from '../../core/errors';
import type { CniRequest } from '../../cni/request';
import { type CniDns, type CniIpConfig, type CniResult, type CniRoute, convertResult, parseResult } from '../../cni/result';
import { versionInfo, type VersionInfo } from '../../cni/version';
import { parseValidAttachments } from '../../cni/valid-attachments';
import { type Cidr, type Family, cidrContains, formatCidr, formatIp, parseCidr, parseIp, parseIpPrefix } from '../../core/address';
import { type CniIpamConfig, parseCniIpamConfig } from './schema';
import { type InlinePool, gatewayFor, inlinePoolOf } from './ranges';
import { ImplicitPools, type PoolRef, implicitPoolSpec } from './implicit-pools';
import type { PoolSpec } from '../model/pool';
import type { AllocateRequest, Allocation } from '../engine/request';
import type { Ipam } from '../engine/ipam';

/** The namespace recorded for an attachment whose runtime names no pod (no K8S_POD_* in CNI_ARGS). */
export const NO_POD_NAMESPACE = '_cni';

const bad = (field: string, msg: string): PlexusError => new PlexusError('InvalidConfig', `plexus-ipam: ${field} ${msg}`);
const checkFailed = (msg: string): PlexusError => new PlexusError('CheckFailed', `plexus-ipam: ${msg}`);

export interface IpamPluginOptions {
  log: Logger;
  /** The registry of implicit pools, when the daemon shares it (it registers the source's NADs' at start). */
  implicit?: ImplicitPools;
  /** Whether a pod gets sticky addresses without asking (a StatefulSet's pod: same name, same address). */
  sticky?: (pod: { namespace: string; name: string }) => boolean;
}

/** The CNI `type` this plugin answers to. */
export const IPAM_PLUGIN_TYPE = 'plexus-ipam';

export class IpamPlugin {
  private readonly implicit: ImplicitPools;

  constructor(
    private readonly ipam: Ipam,
    private readonly opts: IpamPluginOptions,
  ) {
    this.implicit = opts.implicit ?? new ImplicitPools(ipam, opts.log);
  }

  /** The implicit pools registered so far: whoever replaces the pool list (a config reload) keeps these. */
  implicitPools(): PoolSpec[] {
    return this.implicit.specs();
  }

  /** One CNI request; what the plugin prints, as data (nothing for DEL, CHECK, GC and STATUS). */
  async handle(req: CniRequest): Promise<CniResult | VersionInfo | undefined> {
    switch (req.command) {
      case 'ADD':
        return this.add(req);
      case 'DEL':
        await this.del(req);
        return undefined;
      case 'CHECK':
        await this.check(req);
        return undefined;
      case 'GC':
        await this.gc(req);
        return undefined;
      case 'STATUS':
        return undefined; // the daemon answered the request, so the IPAM service is up
      case 'VERSION':
        return versionInfo();
    }
  }

  /** ADD: decode, find the pool, allocate (idempotent per attachment), answer in the config's version. */
  private async add(req: CniRequest): Promise<CniResult> {
    const conf = parseCniIpamConfig(req.config);
    const { containerId, ifName } = attachmentOf(req);
    const inline = inlinePoolOf(conf.ipam);
    const routes = parseRoutes(conf.ipam.routes);
    const pool = inline ? await this.implicit.poolFor(conf.name, inline) : this.configuredPool(conf.ipam.pool as string);
    const wanted = requestedAddresses(req, conf, pool.spec);
    const request: AllocateRequest = {
      pod: req.podRef ? { ...req.podRef } : { namespace: NO_POD_NAMESPACE, name: containerId },
      containerId, ifName, network: conf.name, pool: pool.name, ...wanted,
    };
    // A StatefulSet's pod keeps its addresses across sandboxes unless it asked for specific ones or a claim.
    if (req.podRef && wanted.ip === undefined && wanted.claim === undefined && this.opts.sticky?.(req.podRef)) request.sticky = true;
    const alloc = await this.ipam.allocate(request);
    return convertResult(ipamResult(alloc, inline, routes, conf.ipam.dns ?? conf.dns), req.cniVersion);
  }

  /** DEL: release whatever the attachment holds, whatever the config says now. Nothing held is success. */
  private async del(req: CniRequest): Promise<void> {
    const { containerId, ifName } = attachmentOf(req);
    await this.ipam.release(containerId, ifName);
  }

  /** CHECK: the attachment holds addresses, of the network's pool, and exactly the ones prevResult lists. */
  private async check(req: CniRequest): Promise<void> {
    const conf = parseCniIpamConfig(req.config);
    const { containerId, ifName } = attachmentOf(req);
    const inline = inlinePoolOf(conf.ipam);
    const pool = inline ? implicitPoolSpec(inline).name : (conf.ipam.pool as string);
    const held = this.ipam.held(containerId, ifName);
    const who = `attachment ${containerId}/${ifName} of network "${conf.name}"`;
    if (held.length === 0) throw checkFailed(`${who} holds no address`);
    const stray = held.find((a) => a.pool !== pool);
    if (stray) throw checkFailed(`${who} holds ${stray.ip} of pool ${stray.pool}, but the network allocates from pool ${pool}`);
    if (req.config['prevResult'] === undefined) return;
    const listed = (parseResult(req.config['prevResult'], req.cniVersion).ips ?? [])
      .map((ip, i) => canonicalAddress(ip.address, `prevResult.ips[${i}].address`)).sort();
    const have = held.map((a) => `${a.ip}/${a.prefixLength}`).sort();
    if (listed.join() !== have.join()) {
      throw checkFailed(`${who}: prevResult lists ${listed.join(', ') || 'no address'} but the attachment holds ${have.join(', ')}`);
    }
  }

  /**
   * GC (CNI 1.1): release what this network's attachments hold unless `cni.dev/valid-attachments` lists them.
   * GC is per network, so every other network's attachment is passed as valid: it is not ours to judge.
   * The service releases only after its grace period and a re-check (gc.ts).
   */
  private async gc(req: CniRequest): Promise<void> {
    const network = req.config['name'];
    if (typeof network !== 'string' || network === '') throw bad('name', 'is required');
    const keep = parseValidAttachments(req.config).map((a) => ({ containerId: a.containerID, ifName: a.ifname }));
    for (const pod of this.ipam.pods()) {
      for (const a of pod.addresses) if (a.network !== network) keep.push({ containerId: a.containerId, ifName: a.ifName });
    }
    await this.ipam.gc({ attachments: keep });
  }

  private configuredPool(name: string): PoolRef {
    const spec = this.ipam.poolSpec(name);
    if (spec) return { name, spec };
    const implicit = new Set(this.implicit.specs().map((p) => p.name));
    const known = this.ipam.poolSpecs().map((p) => p.name).filter((n) => !implicit.has(n));
    throw bad('ipam.pool', `${JSON.stringify(name)} is not a configured pool (configured: ${known.slice(0, 20).join(', ') || 'none'})`);
  }
}

function attachmentOf(req: CniRequest): { containerId: string; ifName: string } {
  if (!req.containerId || !req.ifName) throw new PlexusError('InvalidEnv', `plexus-ipam: ${req.command} needs CNI_CONTAINERID and CNI_IFNAME`);
  return { containerId: req.containerId, ifName: req.ifName };
}

/** runtimeConfig.ips (capability `ips`) or the args convention's `cni.ips`, and the IPAMClaim reference (S21). */
function requestedAddresses(req: CniRequest, conf: CniIpamConfig, pool: PoolSpec): Pick<AllocateRequest, 'ip' | 'claim'> {
  const fromRuntime = conf.runtimeConfig?.ips !== undefined;
  const field = fromRuntime ? 'runtimeConfig.ips' : 'args.cni.ips';
  const list = (fromRuntime ? conf.runtimeConfig?.ips : conf.args?.cni?.ips) ?? [];
  const cidrs = pool.cidrs.map((c) => parseCidr(c));
  const seen = new Map<Family, number>();
  const ip = list.map((text, i) => {
    const where = `${field}[${i}]`;
    const { ip: addr, prefix } = text.includes('/') ? parseIpPrefix(text, `plexus-ipam: ${where}`) : { ip: parseIp(text, `plexus-ipam: ${where}`), prefix: undefined };
    const home: Cidr | undefined = cidrs.find((c) => cidrContains(c, addr));
    if (!home) throw bad(where, `${text} is not in pool ${pool.name} (${pool.cidrs.join(', ')})`);
    if (prefix !== undefined && prefix !== home.prefix) throw bad(where, `${text} has prefix length /${prefix} but pool ${pool.name} gives /${home.prefix} (${formatCidr(home)})`);
    const dup = seen.get(addr.family);
    if (dup !== undefined) throw bad(where, `is a second ${addr.family} address (${field}[${dup}] is one): at most one per family`);
    seen.set(addr.family, i);
    return formatIp(addr);
  });
  const claim = conf.runtimeConfig?.ipamClaimReference;
  if (claim === undefined) return ip.length ? { ip } : {};
  if (ip.length) throw bad('runtimeConfig.ipamClaimReference', `cannot be combined with ${field} (S21)`);
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(claim)) throw bad('runtimeConfig.ipamClaimReference', `${JSON.stringify(claim)} is not a valid IPAMClaim name`);
  if (!req.podRef) {
    throw new PlexusError('InvalidEnv', 'plexus-ipam: runtimeConfig.ipamClaimReference needs the pod (K8S_POD_NAMESPACE, K8S_POD_NAME in CNI_ARGS): an IPAMClaim lives in its namespace');
  }
  return { claim };
}

/** `ipam.routes`: dst a CIDR, gw an address of the same family. Other route fields pass through. */
function parseRoutes(routes: CniRoute[] | undefined): { route: CniRoute; family: Family }[] {
  return (routes ?? []).map((route, i) => {
    const dst = parseCidr(route.dst, `plexus-ipam: ipam.routes[${i}].dst`);
    if (route.gw !== undefined && parseIp(route.gw, `plexus-ipam: ipam.routes[${i}].gw`).family !== dst.family) {
      throw bad(`ipam.routes[${i}].gw`, `${route.gw} is not of the family of dst ${route.dst}`);
    }
    return { route, family: dst.family };
  });
}

/** CNI 2.2 IPAM result: ips with their gateway, routes for the families handed out, dns if configured. */
function ipamResult(alloc: Allocation, inline: InlinePool | undefined, routes: { route: CniRoute; family: Family }[], dns: CniDns | undefined): CniResult {
  const families = new Set(alloc.addresses.map((a) => a.family));
  const ips = alloc.addresses.map((a): CniIpConfig => {
    const gateway = inline ? gatewayFor(inline, parseIp(a.ip)) : a.gateway;
    return gateway ? { address: a.address, gateway } : { address: a.address };
  });
  // The network's own routes win over the pool's for the same destination.
  const own = routes.filter((r) => families.has(r.family)).map((r) => r.route);
  const dsts = new Set(own.map((r) => formatCidr(parseCidr(r.dst))));
  const all = [...alloc.routes.filter((r) => !dsts.has(r.dst)), ...own];
  const out: CniResult = { cniVersion: '1.1.0', ips };
  if (all.length) out.routes = all;
  if (dns && Object.keys(dns).length) out.dns = dns;
  return out;
}

function canonicalAddress(text: unknown, field: string): string {
  const { ip, prefix } = parseIpPrefix(String(text), `plexus-ipam: ${field}`);
  return `${formatIp(ip)}/${prefix}`;
}


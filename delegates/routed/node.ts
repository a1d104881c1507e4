/**
 * The node side of plexus-routed, opened once by the daemon: a netlink handle on the node's netns, forwarding
 * switched on, the VXLAN device (vxlan mode), and the eBPF datapath loaded with its maps pinned under
 * `pinDir` (DESIGN 5), so pods keep their traffic while the daemon restarts.
 *
 * On start it reconciles the kernel with the endpoint records (the "missing entries restored,
 * orphans removed"): host routes, neighbours, map entries and programs of every recorded endpoint whose veth
 * still exists are put back, the program is re-attached in place (tc replace: no gap in traffic) so an
 * upgraded datapath takes over, and map entries, stats and host veths nothing records are removed.
 * If the programs cannot load, the node runs on kernel routing alone, which is the same topology.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import {
  type BpfMap, BpfObject, type BpfProgram, isKernelError, type Link, mountBpffs, Netlink, parseIp, TcHook, writeSysctl,
} from '../../kernel';
import { PlexusError } from '../../core/errors';
import {
  EndpointKeyStruct, type EndpointStats, EndpointStatsStruct, EndpointStruct, type EndpointValue, FAMILY, FILTER, IfindexKey, MAPS, OBJECT_FILE,
  PROGRAM, sumStats, ZERO_STATS,
} from './bpf-maps';
import { configureHostEnd } from './endpoint';
import type { RoutedOptions } from './options';
import { type EndpointRecord, EndpointRecords, isHostIfName } from './endpoint-records';

type EndpointKey = { family: number; addr: Buffer };

export function endpointKey(ip: string): EndpointKey {
  const bytes = parseIp(ip);
  const addr = Buffer.alloc(16);
  bytes.copy(addr);
  return { family: bytes.length === 4 ? FAMILY.V4 : FAMILY.V6, addr };
}

const keyText = (k: EndpointKey): string => `${k.family}:${k.addr.toString('hex')}`;

/** A VXLAN device's MAC, derived from the node name: every node can compute every other node's. */
export function vtepMac(node: string): string {
  const h = createHash('sha256').update(node).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

interface Datapath {
  obj: BpfObject;
  prog: BpfProgram;
  endpoints: BpfMap<EndpointKey, EndpointValue>;
  stats: BpfMap<number, EndpointStats>;
}

export interface Underlay {
  link: Link;
  v4?: string;
  v6?: string;
}

export interface RoutedNodeDeps {
  nodeName: string;
  stateDir: string;
  log: Logger;
  /** Where the bundled daemon lives (bin/): the default object is bpf/from_pod.o beside it. */
  binDir?: string;
}

export class RoutedNode {
  readonly records: EndpointRecords;
  /** Pod MTU unless a network sets its own. */
  readonly mtu: number;
  private closed = false;

  private constructor(
    readonly opts: RoutedOptions,
    readonly deps: RoutedNodeDeps,
    readonly netlink: Netlink,
    readonly underlay: Underlay | undefined,
    private readonly dp: Datapath | undefined,
    readonly vxlanIndex: number | undefined,
  ) {
    this.records = new EndpointRecords(deps.stateDir);
    const base = underlay?.link.mtu ?? 1500;
    this.mtu = opts.mtu ?? (opts.mode === 'vxlan' ? base - 50 : base);
  }

  /** 1. forwarding on; 2. the underlay read; 3. the VXLAN device; 4. the datapath loaded; 5. reconcile. */
  static async start(opts: RoutedOptions, deps: RoutedNodeDeps): Promise<RoutedNode> {
    const netlink = await Netlink.open(null);
    try {
      await writeSysctl(null, 'net/ipv4/ip_forward', 1);
      await writeSysctl(null, 'net/ipv6/conf/all/forwarding', 1);
      const underlay = opts.underlay === undefined ? undefined : await readUnderlay(netlink, opts.underlay);
      if (opts.mode === 'vxlan' && !underlay?.v4) {
        throw new PlexusError('InvalidConfig', 'routed.underlay: vxlan mode needs an underlay interface with an IPv4 address');
      }
      const vxlanIndex = opts.mode === 'vxlan' ? await ensureVxlan(netlink, opts, underlay!, vtepMac(deps.nodeName)) : undefined;
      const dp = opts.ebpf ? loadDatapath(opts, deps) : undefined;
      const node = new RoutedNode(opts, deps, netlink, underlay, dp, vxlanIndex);
      const report = await node.reconcile();
      deps.log.info({ ...report, ebpf: dp !== undefined, mode: opts.mode, mtu: node.mtu }, 'routed datapath ready');
      return node;
    } catch (err) {
      netlink.close();
      throw err;
    }
  }

  /** Whether eBPF programs are loaded (false: configured off, or they could not load). */
  get ebpf(): boolean {
    return this.dp !== undefined;
  }

  /** What other nodes need to route to this one (published through the IPAM store). */
  nodeInfo(): Record<string, string> {
    const info: Record<string, string> = { mode: this.opts.mode };
    if (this.underlay?.v4) info['underlay4'] = this.underlay.v4;
    if (this.underlay?.v6) info['underlay6'] = this.underlay.v6;
    if (this.opts.mode === 'vxlan') info['vtepMac'] = vtepMac(this.deps.nodeName);
    return info;
  }

  /** Host end routes and neighbours, then (eBPF endpoints) map entries, a zeroed stats entry, the program. */
  async attach(rec: EndpointRecord): Promise<void> {
    await configureHostEnd(this.netlink, rec.hostIf, rec.addresses, rec.podMac);
    if (rec.ebpf) this.attachProgram(rec);
  }

  private attachProgram(rec: EndpointRecord): void {
    const dp = this.requireDatapath();
    for (const a of rec.addresses) {
      dp.endpoints.update(endpointKey(a.ip), { ifindex: rec.hostIfindex, flags: 0, pod_mac: rec.podMac, host_mac: rec.hostMac });
    }
    if (!dp.stats.lookupPerCpu(rec.hostIfindex)) dp.stats.updatePerCpu(rec.hostIfindex, ZERO_STATS);
    new TcHook(rec.hostIfindex, 'ingress').attach(dp.prog, { ...FILTER, replace: true });
  }

  /**
   * Removes the endpoint from the kernel: map entries that still point at its veth (an address already
   * handed to a newer pod is left alone), its stats, and the veth (routes, neighbours and the filter go
   * with it). Idempotent: anything already gone is fine (STYLE 9). Without a record (a crash between creating
   * the veth and writing it) the veth's own ifindex finds the entries.
   */
  async detach(rec: Pick<EndpointRecord, 'hostIf' | 'addresses'> & { hostIfindex?: number }): Promise<void> {
    const link = await this.netlink.getLink(rec.hostIf);
    const index = rec.hostIfindex ?? link?.index;
    if (this.dp && index !== undefined) {
      const keys = rec.addresses.length > 0
        ? rec.addresses.map((a) => endpointKey(a.ip))
        : [...this.dp.endpoints.entries()].filter(([, v]) => v.ifindex === index).map(([k]) => k);
      for (const key of keys) if (this.dp.endpoints.lookup(key)?.ifindex === index) this.dp.endpoints.delete(key);
      if (!link || link.index === index) this.dp.stats.delete(index);
    }
    if (link) await this.netlink.deleteLink(rec.hostIf);
  }

  /** CHECK's eBPF part: map entries and the attached program. */
  datapathProblems(rec: EndpointRecord): string[] {
    if (!rec.ebpf) return [];
    if (!this.dp) return ['the eBPF datapath is not loaded on this node'];
    const out: string[] = [];
    for (const a of rec.addresses) {
      const ep = this.dp.endpoints.lookup(endpointKey(a.ip));
      if (!ep) out.push(`endpoint map entry for ${a.ip} is missing`);
      else if (ep.ifindex !== rec.hostIfindex || ep.pod_mac !== rec.podMac || ep.host_mac !== rec.hostMac) out.push(`endpoint map entry for ${a.ip} is stale`);
    }
    let attached = false;
    try {
      attached = new TcHook(rec.hostIfindex, 'ingress').query(FILTER) !== undefined;
    } catch (err) {
      if (!isKernelError(err)) throw err;
    }
    if (!attached) out.push(`program ${PROGRAM} is not attached to ${rec.hostIf} ingress`);
    return out;
  }

  /** The endpoint's counters summed over CPUs; undefined without eBPF or entry. */
  stats(hostIfindex: number): EndpointStats | undefined {
    const perCpu = this.dp?.stats.lookupPerCpu(hostIfindex);
    return perCpu ? sumStats(perCpu) : undefined;
  }

  /** Puts the kernel back in line with the records (see the file comment). */
  async reconcile(): Promise<{ endpoints: number; restored: number; gone: number; orphanEntries: number; orphanLinks: number }> {
    const records = this.records.list();
    const links = new Map((await this.netlink.listLinks()).map((l) => [l.name, l]));
    const wanted = new Set<string>();
    const liveIndexes = new Set<number>();
    let restored = 0;
    let gone = 0;
    for (const rec of records) {
      const link = links.get(rec.hostIf);
      if (!link || link.index !== rec.hostIfindex) {
        gone++; // the pod's netns went away without a DEL: the DEL that comes releases its addresses
        continue;
      }
      liveIndexes.add(link.index);
      const ebpf = rec.ebpf && this.dp !== undefined;
      if (rec.ebpf && !this.dp) this.deps.log.warn({ hostIf: rec.hostIf }, 'endpoint was attached with eBPF, which is not loaded now');
      await this.attach({ ...rec, ebpf });
      restored++;
      if (ebpf) for (const a of rec.addresses) wanted.add(keyText(endpointKey(a.ip)));
    }
    let orphanEntries = 0;
    if (this.dp) {
      for (const k of [...this.dp.endpoints.keys()]) {
        if (!wanted.has(keyText(k)) && this.dp.endpoints.delete(k)) orphanEntries++;
      }
      for (const k of [...this.dp.stats.keys()]) if (!liveIndexes.has(k) && this.dp.stats.delete(k)) orphanEntries++;
    }
    const recorded = new Set(records.map((r) => r.hostIf));
    let orphanLinks = 0;
    for (const l of links.values()) {
      if (l.kind === 'veth' && isHostIfName(l.name) && !recorded.has(l.name)) {
        await this.netlink.deleteLink(l.name);
        orphanLinks++;
      }
    }
    return { endpoints: records.length, restored, gone, orphanEntries, orphanLinks };
  }

  /** Closes handles; pinned maps, attached programs and every route stay (DESIGN 5). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dp?.obj.close();
    this.netlink.close();
  }

  private requireDatapath(): Datapath {
    if (!this.dp) throw new PlexusError('NotAvailable', 'the eBPF datapath is not loaded on this node');
    return this.dp;
  }
}

async function readUnderlay(netlink: Netlink, name: string): Promise<Underlay> {
  const link = await netlink.getLink(name);
  if (!link) throw new PlexusError('InvalidConfig', `routed.underlay: interface ${name} does not exist in the node's netns`);
  const global = (await netlink.listAddresses(link.index)).filter((a) => a.scope === 0);
  const out: Underlay = { link };
  const v4 = global.find((a) => a.family === 4)?.address;
  const v6 = global.find((a) => a.family === 6)?.address;
  if (v4) out.v4 = v4;
  if (v6) out.v6 = v6;
  return out;
}

/** The VXLAN device, created once (learning off: the FDB is written from the IPAM store) and kept. */
async function ensureVxlan(netlink: Netlink, opts: RoutedOptions, underlay: Underlay, mac: string): Promise<number> {
  const { device, vni, port } = opts.vxlan;
  let link = await netlink.getLink(device);
  if (link && link.kind !== 'vxlan') {
    throw new PlexusError('InvalidConfig', `routed.vxlan.device: ${device} exists and is a ${link.kind ?? 'physical'} link, not vxlan`);
  }
  if (!link) {
    await netlink.createVxlan(device, { vni, dstPort: port, localIp: underlay.v4!, learning: false, parentRef: underlay.link.index, mac, mtu: underlay.link.mtu - 50 });
    link = await netlink.getLink(device);
  }
  if (link!.mac !== mac) await netlink.setMac(device, mac);
  await netlink.setLinkUp(device, true);
  return link!.index;
}

function loadDatapath(opts: RoutedOptions, deps: RoutedNodeDeps): Datapath | undefined {
  const path = opts.bpfObject ?? join(deps.binDir ?? dirname(process.argv[1] ?? '.'), OBJECT_FILE);
  let obj: BpfObject | undefined;
  try {
    mountBpffs();
    obj = BpfObject.open(path, { pinRoot: opts.pinDir });
    obj.load();
    return {
      obj,
      prog: obj.program(PROGRAM),
      endpoints: obj.map(MAPS.endpoints, EndpointKeyStruct, EndpointStruct),
      stats: obj.map(MAPS.stats, IfindexKey, EndpointStatsStruct),
    };
  } catch (err) {
    obj?.close();
    // The fallback the issue asks for: same topology, kernel routing only.
    deps.log.warn({ err, object: path }, 'eBPF datapath could not load; pods get kernel routing only');
    return undefined;
  }
}

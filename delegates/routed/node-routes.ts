/**
 * Routes to the other nodes' pods, following the IPAM service's block claims (issue 4 "Multiple nodes").
 * Every `routeSyncMs` the placement (which node owns which block, which node holds which borrowed address,
 * and where each node is) is read from the shared IPAM store, turned into the routes this node wants, and
 * the kernel is brought in line:
 * - native: `<block> via <owner's underlay address> dev <underlay>` (nodes on one L2 segment);
 * - vxlan: `<block> via <block's first address> dev plexus.vxlan onlink`, a permanent neighbour entry for that
 *   next hop with the owner's VTEP MAC, and an FDB entry sending that MAC to the owner's underlay address
 *   (flannel's scheme: the next hop exists nowhere, it only selects the MAC).
 * A borrowed address (held by a node inside another node's block) gets a host route to its holder, more
 * specific than the block's. Only routes, neighbours and FDB entries plexus-routed wrote (rtm_protocol
 * RTPROT_PLEXUS, on its own devices) are ever removed.
 */
import type { Logger } from 'pino';
import type { PlacedNode, Placement } from '../../ipam';
import { formatIp, type Netlink, parseCidr, type RouteSpec } from '../../kernel';
import { RTPROT_PLEXUS } from './options';

export type { Placement };

/** Where placements come from: the IPAM service (Ipam.placement()), or a test's stand-in. */
export interface PlacementSource {
  placement(): Promise<Placement>;
}

export interface NodeRoutesOptions {
  self: string;
  mode: 'native' | 'vxlan';
  /** The underlay link (native routes go out of it; it carries VXLAN). */
  underlayIndex: number;
  vxlanIndex?: number;
  intervalMs: number;
}

interface Wanted {
  routes: Map<string, RouteSpec>;
  /** vxlan: next hop -> VTEP MAC. */
  neighbours: Map<string, string>;
  /** vxlan: VTEP MAC -> underlay IPv4. */
  fdb: Map<string, string>;
}

/** The first address of a CIDR: the VXLAN next hop that selects the owner's MAC. */
function networkAddress(cidr: string): string {
  return formatIp(parseCidr(cidr).bytes);
}

/** Pure: the routes, neighbours and FDB entries this node wants for a placement. */
export function plan(p: Placement, o: Pick<NodeRoutesOptions, 'self' | 'mode' | 'underlayIndex' | 'vxlanIndex'>, warn: (msg: string) => void): Wanted {
  const out: Wanted = { routes: new Map(), neighbours: new Map(), fdb: new Map() };
  const add = (dst: string, family: 4 | 6, node: string): void => {
    const info = p.nodes[node]?.info;
    if (!info) return warn(`node ${node} has published no routing information`);
    if (o.mode === 'native') {
      const via = family === 4 ? info['underlay4'] : info['underlay6'];
      if (!via) return warn(`node ${node} has no IPv${family} underlay address: ${dst} is not routed`);
      out.routes.set(dst, { dst, gateway: via, oifIndex: o.underlayIndex, protocol: RTPROT_PLEXUS });
      return;
    }
    const mac = info['vtepMac'];
    const remote = info['underlay4'];
    if (!mac || !remote) return warn(`node ${node} has published no VTEP: ${dst} is not routed`);
    const nh = networkAddress(dst);
    out.routes.set(dst, { dst, gateway: nh, oifIndex: o.vxlanIndex!, onlink: true, protocol: RTPROT_PLEXUS });
    out.neighbours.set(nh, mac);
    out.fdb.set(mac, remote);
  };
  for (const b of p.blocks) if (b.node !== o.self) add(b.cidr, b.family, b.node);
  for (const a of p.borrowed) if (a.node !== o.self) add(`${a.ip}/${a.family === 4 ? 32 : 128}`, a.family, a.node);
  return out;
}

export class NodeRoutes {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private warned = new Set<string>();
  /**
   * The last routing information each node published. A node's registration disappears while its daemon
   * restarts, but its blocks (and its pods' traffic) stay: routes keep following the blocks, not the daemon.
   */
  private readonly known = new Map<string, PlacedNode>();
  /** Changes made by the last sync, for tests and logs. */
  lastChanges = 0;

  constructor(
    private readonly netlink: Netlink,
    private readonly source: PlacementSource,
    private readonly opts: NodeRoutesOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sync().catch((err) => this.log.warn({ err }, 'node route sync failed')), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass; concurrent callers share it. Returns the number of kernel changes. */
  sync(): Promise<void> {
    this.running ??= this.syncOnce().finally(() => (this.running = null));
    return this.running;
  }

  private async syncOnce(): Promise<void> {
    const warn = (msg: string): void => {
      if (!this.warned.has(msg)) this.log.warn(msg);
      this.warned.add(msg);
    };
    const placement = await this.source.placement();
    for (const [name, n] of Object.entries(placement.nodes)) if (Object.keys(n.info).length > 0) this.known.set(name, n);
    const want = plan({ ...placement, nodes: Object.fromEntries(this.known) }, this.opts, warn);
    let changes = 0;
    const ours = new Set([this.opts.underlayIndex, this.opts.vxlanIndex].filter((i): i is number => i !== undefined));
    // FDB and neighbours first: a route must never point at a next hop that does not resolve yet.
    if (this.opts.vxlanIndex !== undefined) changes += await this.syncVxlan(want, this.opts.vxlanIndex);
    const current = [...(await this.netlink.listRoutes({ family: 4 })), ...(await this.netlink.listRoutes({ family: 6 }))]
      .filter((r) => r.protocol === RTPROT_PLEXUS && r.oifIndex !== undefined && ours.has(r.oifIndex));
    const have = new Map(current.map((r) => [r.dst, r]));
    for (const [dst, spec] of want.routes) {
      const r = have.get(dst);
      if (r && r.gateway === spec.gateway && r.oifIndex === spec.oifIndex) continue;
      await this.netlink.replaceRoute(spec);
      changes++;
    }
    for (const r of current) {
      if (want.routes.has(r.dst)) continue;
      await this.netlink.deleteRoute({ dst: r.dst, family: r.family, oifIndex: r.oifIndex!, protocol: RTPROT_PLEXUS });
      changes++;
    }
    if (this.opts.vxlanIndex !== undefined) changes += await this.pruneVxlan(want, this.opts.vxlanIndex);
    this.lastChanges = changes;
    if (changes > 0) this.log.info({ routes: want.routes.size, changes }, 'node routes updated');
  }

  private async syncVxlan(want: Wanted, ifindex: number): Promise<number> {
    let changes = 0;
    const fdb = new Map((await this.netlink.listFdb({ ifindex })).map((e) => [e.mac, e.dst]));
    for (const [mac, dst] of want.fdb) {
      if (fdb.get(mac) === dst) continue;
      await this.netlink.replaceFdb({ ifindex, mac, dst });
      changes++;
    }
    const neigh = new Map((await this.netlink.listNeighbours({ ifindex })).map((n) => [n.address, n]));
    for (const [address, mac] of want.neighbours) {
      const n = neigh.get(address);
      if (n?.permanent && n.mac === mac) continue;
      await this.netlink.replaceNeighbour({ ifindex, address, mac, permanent: true });
      changes++;
    }
    return changes;
  }

  private async pruneVxlan(want: Wanted, ifindex: number): Promise<number> {
    let changes = 0;
    for (const n of await this.netlink.listNeighbours({ ifindex })) {
      if (n.permanent && !want.neighbours.has(n.address) && (await this.netlink.deleteNeighbour({ ifindex, address: n.address }))) changes++;
    }
    for (const e of await this.netlink.listFdb({ ifindex })) {
      if (e.dst !== undefined && e.permanent && !want.fdb.has(e.mac) && (await this.netlink.deleteFdb({ ifindex, mac: e.mac, dst: e.dst }))) changes++;
    }
    return changes;
  }
}

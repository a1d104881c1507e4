/**
 * The kernel layer's public API: `Netlink`, one rtnetlink socket per network namespace (DESIGN decision 4).
 *
 *   const pod = await Netlink.open('/run/netns/pod1');
 *   try { await pod.createVeth('eth0', 'vethab12', { peerNetnsPath: hostNetns }); } finally { pod.close(); }
 *
 * The socket is opened inside the target netns and the thread switches straight back, so no thread ever stays
 * in a pod's netns. Each call is a synchronous syscall exchange of about 0.1 ms; the methods return promises so
 * callers are written for an API that may move off the JS thread later, and every promise settles having done
 * all of its work before it returns (no work is left pending across an await).
 *
 * Failures are KernelError (kind 'KernelFailure') with `errno`/`errnoName`. "Already gone" is not a failure
 * where a caller would treat it as success anyway: deleteLink, deleteAddress, deleteRoute, deleteNeighbour and
 * removeAltName return false.
 *
 * Besides netlink: per-netns sysctls (sysctl.ts) and eBPF through libbpf (bpf/).
 */
import { type AddAddressOptions, type Address, addAddress, deleteAddress, listAddresses } from './addresses';
import { ERRNO, KernelError } from './errno';
import {
  type BridgeOptions,
  createBridge,
  createMacvlan,
  createVxlan,
  type MacvlanOptions,
  setMaster,
  type VxlanOptions,
} from './link-kinds';
import {
  addAltName,
  createVeth,
  deleteLink,
  getLink,
  type Link,
  type LinkRef,
  listLinks,
  moveLinkToNetns,
  removeAltName,
  renameLink,
  setLinkUp,
  setMac,
  setMtu,
  type VethOptions,
} from './links';
import {
  addNeighbour,
  deleteFdb,
  deleteNeighbour,
  type FdbEntry,
  listFdb,
  listNeighbours,
  type Neighbour,
  type NeighbourKey,
  type NeighbourLink,
  type NeighbourQuery,
  type NeighbourSpec,
  replaceFdb,
  replaceNeighbour,
} from './neighbours';
import { NetlinkSocket, type NetlinkSocketOptions } from './netlink/socket';
import { listVfs, setVf, type VfChange, type VfInfo } from './vfs';
import { addRoute, deleteRoute, listRoutes, replaceRoute, type Route, type RouteQuery, type RouteSpec } from './routes';

export type { AddAddressOptions, Address } from './addresses';
export { ERRNO, errnoName, hasErrno, isKernelError, KernelError, type ErrnoName } from './errno';
export type { IpFamily } from './ip-address';
export type { Link, LinkRef, OperState, VethOptions } from './links';
export type { BridgeOptions, MacvlanMode, MacvlanOptions, NewLinkOptions, VxlanOptions } from './link-kinds';
export type { FdbEntry, Neighbour, NeighbourKey, NeighbourLink, NeighbourQuery, NeighbourSpec } from './neighbours';
export { formatCidr, formatIp, parseCidr, parseIp } from './ip-address';
export { readSysctl, readSysctlSync, SYSCTL_KEY, writeSysctl, writeSysctlSync } from './sysctl';
export * from './bpf';
export { currentNetnsId, isNetns, type NetnsHandle, netnsCookie, openNetns, withNetns } from './netns';
export { type ProgramOptions, type ProgramRun, runProgram } from './process';
export { IFA_F, NUD, NTF, RT_SCOPE, RT_TABLE, RTN, RTPROT } from './netlink/constants';
export type { NetlinkSocketOptions } from './netlink/socket';
export type { NextHop, Route, RouteQuery, RouteSpec } from './routes';
export { describeVfChange, type VfChange, type VfInfo, type VfLinkState, type VlanProto } from './vfs';

export class Netlink {
  private constructor(private readonly sock: NetlinkSocket) {}

  /** Opens an rtnetlink socket inside the netns at `netnsPath`; null = the calling thread's (the host's) netns. */
  static async open(netnsPath: string | null, opts: NetlinkSocketOptions = {}): Promise<Netlink> {
    return Netlink.openSync(netnsPath, opts);
  }

  /** Runs `step` with a handle on the netns at `netnsPath` (null = ours), closed when it settles. */
  static async within<T>(netnsPath: string | null, step: (nl: Netlink) => Promise<T>): Promise<T> {
    const nl = Netlink.openSync(netnsPath);
    try {
      return await step(nl);
    } finally {
      nl.close();
    }
  }

  /** As open(), for callers that cannot await (start-up, tests). */
  static openSync(netnsPath: string | null, opts: NetlinkSocketOptions = {}): Netlink {
    return new Netlink(NetlinkSocket.open(netnsPath, opts));
  }

  /** The netns this handle acts on (null = the netns of the thread that opened it). */
  get netnsPath(): string | null {
    return this.sock.netnsPath;
  }

  /** Closes the socket; later calls fail with EBADF. Safe to call twice. */
  close(): void {
    this.sock.close();
  }

  // ---- links ----

  async listLinks(): Promise<Link[]> {
    return listLinks(this.live());
  }

  /** undefined when there is no such link. */
  async getLink(ref: LinkRef): Promise<Link | undefined> {
    return getLink(this.live(), ref);
  }

  async setLinkUp(ref: LinkRef, up: boolean): Promise<void> {
    setLinkUp(this.live(), ref, up);
  }

  async setMtu(ref: LinkRef, mtu: number): Promise<void> {
    setMtu(this.live(), ref, mtu);
  }

  async setMac(ref: LinkRef, mac: string): Promise<void> {
    setMac(this.live(), ref, mac);
  }

  /** Kernels before 6.2 refuse with EBUSY while the link is up. */
  async renameLink(ref: LinkRef, newName: string): Promise<void> {
    renameLink(this.live(), ref, newName);
  }

  /** false when the link did not exist. */
  async deleteLink(ref: LinkRef): Promise<boolean> {
    return deleteLink(this.live(), ref);
  }

  /** `name` here, `peerName` created directly in the peer netns (default: here too). */
  async createVeth(name: string, peerName: string, opts: VethOptions = {}): Promise<void> {
    createVeth(this.live(), name, peerName, opts);
  }

  /** Its ifindex may change: look it up again by name in the target netns. */
  async moveLinkToNetns(ref: LinkRef, netnsPath: string, opts: { newName?: string } = {}): Promise<void> {
    moveLinkToNetns(this.live(), ref, netnsPath, opts);
  }

  /** A Linux bridge here (or directly in `opts.netnsPath`); EEXIST when the name is taken. */
  async createBridge(name: string, opts: BridgeOptions = {}): Promise<void> {
    createBridge(this.live(), name, opts);
  }

  /** A macvlan on `parentRef` (a link of this netns); `opts.netnsPath` creates it straight in another netns. */
  async createMacvlan(name: string, parentRef: LinkRef, opts: MacvlanOptions): Promise<void> {
    createMacvlan(this.live(), name, parentRef, opts);
  }

  /** A VXLAN device without a default remote. */
  async createVxlan(name: string, opts: VxlanOptions): Promise<void> {
    createVxlan(this.live(), name, opts);
  }

  /** Enslaves `ref` to a bridge; null releases it. */
  async setMaster(ref: LinkRef, masterRef: LinkRef | null): Promise<void> {
    setMaster(this.live(), ref, masterRef);
  }

  /** EEXIST when the name is already used by any link of this netns. */
  async addAltName(ref: LinkRef, altName: string): Promise<void> {
    addAltName(this.live(), ref, altName);
  }

  /** false when the link has no such altname (or is gone). */
  async removeAltName(ref: LinkRef, altName: string): Promise<boolean> {
    return removeAltName(this.live(), ref, altName);
  }

  // ---- SR-IOV virtual functions, through their PF ----

  /** One setting of VF `vf` of the PF `pf`; the PF's driver may refuse it (EOPNOTSUPP: name the setting). */
  async setVf(pf: LinkRef, vf: number, change: VfChange): Promise<void> {
    setVf(this.live(), pf, vf, change);
  }

  /** Every VF the PF reports (IFLA_VFINFO_LIST), in index order. */
  async listVfs(pf: LinkRef): Promise<VfInfo[]> {
    return listVfs(this.live(), pf);
  }

  // ---- addresses ----

  async listAddresses(ifindex?: number): Promise<Address[]> {
    return listAddresses(this.live(), ifindex);
  }

  /** EEXIST when the link already has the address. */
  async addAddress(ref: LinkRef, cidr: string, opts: AddAddressOptions = {}): Promise<void> {
    addAddress(this.live(), ref, cidr, opts);
  }

  /** false when the link does not have the address (or is gone). */
  async deleteAddress(ref: LinkRef, cidr: string): Promise<boolean> {
    return deleteAddress(this.live(), ref, cidr);
  }

  // ---- routes ----

  /** Routes of the main table by default (`{ table: 'all' }` for every table). */
  async listRoutes(query: RouteQuery = {}): Promise<Route[]> {
    return listRoutes(this.live(), query);
  }

  /** EEXIST when the same route exists. */
  async addRoute(route: RouteSpec): Promise<void> {
    addRoute(this.live(), route);
  }

  async replaceRoute(route: RouteSpec): Promise<void> {
    replaceRoute(this.live(), route);
  }

  /** false when no route matched. */
  async deleteRoute(route: RouteSpec): Promise<boolean> {
    return deleteRoute(this.live(), route);
  }

  // ---- neighbours ----

  /** IPv4 and IPv6 neighbour entries, optionally of one family or link. */
  async listNeighbours(query: NeighbourQuery = {}): Promise<Neighbour[]> {
    return listNeighbours(this.live(), query);
  }

  /** A permanent entry; EEXIST when the link has an entry for the address. */
  async addNeighbour(spec: NeighbourSpec): Promise<void> {
    addNeighbour(this.live(), spec);
  }

  async replaceNeighbour(spec: NeighbourSpec): Promise<void> {
    replaceNeighbour(this.live(), spec);
  }

  /** false when there was no entry (or the link is gone). */
  async deleteNeighbour(key: NeighbourKey): Promise<boolean> {
    return deleteNeighbour(this.live(), key);
  }

  // ---- VXLAN forwarding database ----

  /** The link's FDB entries (MAC -> remote VTEP). */
  async listFdb(link: NeighbourLink): Promise<FdbEntry[]> {
    return listFdb(this.live(), link);
  }

  /** Frames for `mac` go to the VTEP at `dst` (permanent, replaces any entry for the MAC). */
  async replaceFdb(spec: NeighbourLink & { mac: string; dst: string }): Promise<void> {
    replaceFdb(this.live(), spec);
  }

  /** false when there was no entry (or the link is gone). */
  async deleteFdb(spec: NeighbourLink & { mac: string; dst?: string }): Promise<boolean> {
    return deleteFdb(this.live(), spec);
  }

  private live(): NetlinkSocket {
    if (this.sock.closed) throw new KernelError('use a closed Netlink handle', ERRNO.EBADF);
    return this.sock;
  }
}

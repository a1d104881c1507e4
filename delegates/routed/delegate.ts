/**
 * plexus-routed as a delegate (the built-in primary datapath): ADD, DEL, CHECK, GC, STATUS for one pod
 * interface, on the node side the daemon opened (RoutedNode). The same code serves the cluster network run
 * by the meta-plugin in-process and `bin/plexus-routed` run by any runtime in a conflist.
 *
 * Addresses come from the network's `ipam` plugin (plexus-ipam), found through the registry as ptp finds its
 * IPAM plugin with ipam.ExecAdd, with the network's own config: a retried ADD gets the same addresses back,
 * DEL always releases them.
 */
import { Netlink } from '../../kernel';
import { PlexusError, context } from '../../core/errors';
import { type CniResult, convertResult, defaultDstOf, isDefaultDst, parseResult } from '../../cni/result';
import { UndoStack } from '../../core/undo-stack';
import { configVersion } from '../../cni/version';
import { parseCniArgs, podRefFromArgs } from '../../cni/request';
import { attachmentKey, parseValidAttachments } from '../../cni/valid-attachments';
import { type Delegate, type DelegateRegistry, dispatchCommand, type EndpointInfo, type EndpointWatcher, type PluginCall } from '../contract';
import { IPAM_PLUGIN_TYPE } from '../../ipam';
import type { RoutedNode } from './node';
import { configurePodEnd, createVethPair, endpointProblems, GATEWAYS, hostIfName, hostPrefix } from './endpoint';
import { parseNetConfig, ROUTED_TYPE } from './options';
import type { EndpointAddress, EndpointRecord } from './endpoint-records';

export interface RoutedDeps {
  readonly node: RoutedNode;
  /** Where the network's `ipam.type` is found (the built-in plexus-ipam). */
  readonly delegates: DelegateRegistry;
  /** Told of each endpoint before it is reachable and after it is gone (the policy enforcer). */
  readonly watcher?: EndpointWatcher;
}

/** What the watcher knows of an endpoint: its host end, on the node. */
export function endpointInfo(rec: Pick<EndpointRecord, 'network' | 'pod' | 'addresses' | 'hostIfindex'>): EndpointInfo {
  return { network: rec.network, ...(rec.pod ? { pod: rec.pod } : {}), ips: rec.addresses.map((a) => a.ip), ifindex: rec.hostIfindex, netns: null, end: 'host' };
}

const networkOf = (config: Record<string, unknown>): string => (typeof config['name'] === 'string' ? config['name'] : '');


/** The pod's addresses from plexus-ipam's result: one per family, each as a host prefix. */
function addressesOf(ipam: CniResult, network: string): EndpointAddress[] {
  const out: EndpointAddress[] = [];
  for (const c of ipam.ips ?? []) {
    const ip = c.address.split('/')[0]!;
    const family = ip.includes(':') ? 6 : 4;
    if (out.some((a) => a.family === family)) continue;
    out.push({ ip, family, cidr: `${ip}/${hostPrefix(family)}` });
  }
  if (out.length === 0) throw new PlexusError('PoolExhausted', `${ROUTED_TYPE} network "${network}": plexus-ipam returned no address`);
  return out;
}

export class RoutedDelegate implements Delegate {
  readonly verifiesInterface = true;

  constructor(private readonly deps: RoutedDeps) {}

  exec(call: PluginCall): Promise<unknown> {
    // STATUS: the node side started: pods can be attached.
    return dispatchCommand(call, { ADD: (c) => this.add(c), DEL: (c) => this.del(c), CHECK: (c) => this.check(c), GC: (c) => this.gc(c) });
  }


  /** 1. addresses; 2. the veth pair; 3. the pod end; 4. the host end and datapath; 5. the record. */
  private async add(call: PluginCall): Promise<CniResult> {
    const net = parseNetConfig(call.config);
    const { containerId, netns, ifName } = call.env;
    const network = networkOf(call.config);
    const { node } = this.deps;
    const hostIf = hostIfName(containerId, ifName);
    // A second ADD of a live attachment must not touch it (its undo would release the shared addresses).
    if (node.records.get(hostIf) || (await node.netlink.getLink(hostIf))) {
      throw new PlexusError('InterfaceConflict', `${ROUTED_TYPE}: container ${containerId.slice(0, 12)} interface ${ifName} is already attached (${hostIf})`);
    }
    const wantEbpf = net.ebpf ?? node.opts.ebpf;
    if (wantEbpf && !node.ebpf) call.log.warn('eBPF datapath unavailable: attaching with kernel routing only');
    const mtu = net.mtu ?? node.mtu;
    const undo = new UndoStack();
    try {
      const ipamResult = parseResult(await this.ipam('ADD', call), configVersion(call.config));
      undo.push('release addresses', () => this.ipam('DEL', call).then(() => undefined));
      const addresses = addressesOf(ipamResult, network);
      const host = await createVethPair(node.netlink, hostIf, ifName, netns, mtu);
      undo.push(`delete ${hostIf}`, () => node.netlink.deleteLink(hostIf).then(() => undefined));
      const routes = (ipamResult.routes ?? []).map((r) => r.dst);
      const pod = await Netlink.within(netns, (nl) => configurePodEnd(nl, ifName, addresses, host.mac!, routes));
      const rec: EndpointRecord = {
        containerId, ifName, netns, network, hostIf, hostIfindex: host.index, hostMac: host.mac!, podMac: pod.link.mac!, mtu,
        ebpf: wantEbpf && node.ebpf, addresses, defaults: pod.defaults,
      };
      const who = podRefFromArgs(parseCniArgs(call.env.args));
      if (who) rec.pod = who;
      // Policy first: the host routes that make the pod reachable come after its isolation (NP8).
      const { watcher } = this.deps;
      if (watcher) {
        await watcher.attaching(endpointInfo(rec));
        undo.push('forget the endpoint\'s policy', () => watcher.detached(endpointInfo(rec)));
      }
      undo.push('detach from the datapath', () => node.detach(rec));
      await node.attach(rec);
      node.records.put(rec);
      undo.commit();
      return convertResult(resultOf(rec), configVersion(call.config));
    } catch (err) {
      const failures = await undo.unwind();
      for (const f of failures) call.log.warn({ err: f.error, step: f.what }, 'rollback step failed');
      throw context(err, `${ROUTED_TYPE}: failed to attach ${ifName} of container ${containerId.slice(0, 12)} to network "${network}"`);
    }
  }

  /** Idempotent: whatever is already gone is fine; the addresses are always released (DESIGN 2). */
  private async del(call: PluginCall): Promise<undefined> {
    const { containerId, ifName } = call.env;
    const { node } = this.deps;
    const hostIf = hostIfName(containerId, ifName);
    const rec = node.records.get(hostIf);
    await node.detach(rec ?? { hostIf, addresses: [] });
    if (rec) await this.deps.watcher?.detached(endpointInfo(rec));
    await this.ipam('DEL', call);
    node.records.remove(hostIf);
    return undefined;
  }

  /** Everything ADD set up is still there (CNI CHECK): lists every problem it finds. */
  private async check(call: PluginCall): Promise<undefined> {
    parseNetConfig(call.config);
    const { containerId, ifName, netns } = call.env;
    const { node } = this.deps;
    const hostIf = hostIfName(containerId, ifName);
    const rec = node.records.get(hostIf);
    if (!rec) throw new PlexusError('CheckFailed', `${ROUTED_TYPE}: no endpoint for container ${containerId.slice(0, 12)} interface ${ifName}`);
    let pod: Netlink | null = null;
    try {
      pod = await Netlink.open(netns).catch(() => null);
      // S19: when another network took the default route, the runner rewrote our result without it (and
      // removed it from the pod); what the runtime holds says which default routes must be there.
      const expected: EndpointRecord = { ...rec, defaults: defaultsOf(call.config) ?? rec.defaults };
      const problems = [...prevResultProblems(call.config, rec), ...(await endpointProblems(node.netlink, pod, expected)), ...node.datapathProblems(rec)];
      if (problems.length > 0) throw new PlexusError('CheckFailed', `${ROUTED_TYPE}: ${ifName} of container ${containerId.slice(0, 12)}: ${problems.join('; ')}`);
    } finally {
      pod?.close();
    }
    // plexus-ipam holds the pool's prefix lengths, the pod the host prefixes: the addresses were compared above.
    const { prevResult: _prev, ...config } = call.config;
    await this.ipamPlugin(call).exec({ ...call, command: 'CHECK', config });
    return undefined;
  }

  /** CNI GC: endpoints of attachments the runtime no longer lists are removed; plexus-ipam then releases. */
  private async gc(call: PluginCall): Promise<undefined> {
    const keep = new Set(parseValidAttachments(call.config).map((a) => attachmentKey(a.containerID, a.ifname)));
    const network = networkOf(call.config);
    const { node } = this.deps;
    for (const rec of node.records.list()) {
      if (rec.network !== network || keep.has(attachmentKey(rec.containerId, rec.ifName))) continue;
      await node.detach(rec);
      await this.deps.watcher?.detached(endpointInfo(rec));
      node.records.remove(rec.hostIf);
    }
    await this.ipam('GC', call);
    return undefined;
  }

  private ipam(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', call: PluginCall): Promise<unknown> {
    return this.ipamPlugin(call).exec({ ...call, command });
  }

  /** The network's IPAM plugin (options.ts requires plexus-ipam), given the whole network config as libcni does. */
  private ipamPlugin(call: PluginCall): Delegate {
    const ipam = call.config['ipam'] as { type?: unknown } | undefined;
    return this.deps.delegates.forType(typeof ipam?.type === 'string' ? ipam.type : IPAM_PLUGIN_TYPE);
  }
}

/** CHECK: the addresses the runtime was given are the ones the endpoint holds. */
function prevResultProblems(config: Record<string, unknown>, rec: EndpointRecord): string[] {
  if (config['prevResult'] === undefined) return [];
  const listed = (parseResult(config['prevResult'], configVersion(config)).ips ?? []).map((c) => c.address.split('/')[0]!).sort();
  const have = rec.addresses.map((a) => a.ip).sort();
  return listed.join() === have.join() ? [] : [`prevResult lists ${listed.join(', ') || 'no address'} but the endpoint holds ${have.join(', ')}`];
}

/** The families prevResult gives a default route (through our gateways); undefined without a prevResult. */
function defaultsOf(config: Record<string, unknown>): (4 | 6)[] | undefined {
  if (config['prevResult'] === undefined) return undefined;
  const routes = parseResult(config['prevResult'], configVersion(config)).routes ?? [];
  return ([4, 6] as const).filter((f) => routes.some((r) => isDefaultDst(r.dst) && r.gw === GATEWAYS[f]));
}

/** The CNI result: host end, pod end (sandbox), one address per family, default routes via the gateways. */
function resultOf(rec: EndpointRecord): CniResult {
  return {
    cniVersion: '1.1.0',
    interfaces: [
      { name: rec.hostIf, mac: rec.hostMac, mtu: rec.mtu },
      { name: rec.ifName, mac: rec.podMac, mtu: rec.mtu, sandbox: rec.netns },
    ],
    ips: rec.addresses.map((a) => ({ address: a.cidr, interface: 1, gateway: GATEWAYS[a.family] })),
    routes: (rec.defaults ?? [4, 6]).map((f) => ({ dst: defaultDstOf(f), gw: GATEWAYS[f] })),
  };
}


/**
 * The routed datapath as the daemon hosts it: the node side (RoutedNode) opened at start when the config has
 * a `routed` section, and the node routes that follow the IPAM service's block claims. The plexus-routed
 * delegate itself is registered with the other built-ins (main.ts) and reaches IPAM through the registry.
 */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { EndpointInfo } from '../../delegates/contract';
import { endpointInfo } from '../../delegates/routed/delegate';
import { RoutedNode } from '../../delegates/routed/node';
import { NodeRoutes, type PlacementSource } from '../../delegates/routed/node-routes';
import type { DaemonConfig } from './config';

export class RoutedHost {
  private routes: NodeRoutes | undefined;

  private constructor(
    readonly node: RoutedNode,
    private readonly config: DaemonConfig,
    private readonly log: Logger,
  ) {}

  static async open(config: DaemonConfig, log: Logger): Promise<RoutedHost> {
    const opts = config.routed!;
    const node = await RoutedNode.start(opts, { nodeName: config.nodeName, stateDir: config.stateDir, log, binDir: dirname(process.argv[1] ?? '.') });
    return new RoutedHost(node, config, log);
  }

  /** Follow other nodes' block claims (needs an underlay: one node alone routes nothing). */
  followPlacement(source: PlacementSource): void {
    const underlay = this.node.underlay;
    if (!underlay) return;
    this.routes = new NodeRoutes(this.node.netlink, source, {
      self: this.config.nodeName,
      mode: this.node.opts.mode,
      underlayIndex: underlay.link.index,
      ...(this.node.vxlanIndex !== undefined ? { vxlanIndex: this.node.vxlanIndex } : {}),
      intervalMs: this.node.opts.routeSyncMs,
    }, this.log.child({ component: 'node-routes' }));
    void this.routes.sync().catch((err) => this.log.warn({ err }, 'first node route sync failed'));
    this.routes.start();
  }

  /**
   * Every recorded endpoint whose host end is still there (same name, same ifindex: an ifindex freed by a
   * vanished veth may belong to another link now), as the policy enforcer knows endpoints.
   */
  async endpoints(): Promise<EndpointInfo[]> {
    const links = new Map((await this.node.netlink.listLinks()).map((l) => [l.name, l.index]));
    return this.node.records.list().filter((r) => links.get(r.hostIf) === r.hostIfindex).map(endpointInfo);
  }

  /** `plexusctl routed`: every endpoint of this node with from_pod's counters (summed over CPUs). */
  endpointsView(): string {
    const out = this.node.records.list().map((r) => {
      const stats = this.node.stats(r.hostIfindex);
      return {
        pod: r.pod ? `${r.pod.namespace}/${r.pod.name}` : undefined, network: r.network, containerId: r.containerId, ifName: r.ifName,
        hostIf: r.hostIf, addresses: r.addresses.map((a) => a.cidr), mtu: r.mtu, ebpf: r.ebpf,
        ...(stats ? { counters: Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, Number(v)])) } : {}),
      };
    });
    return JSON.stringify({ node: this.config.nodeName, mode: this.node.opts.mode, ebpf: this.node.ebpf, mtu: this.node.mtu, endpoints: out }, null, 2);
  }

  close(): void {
    this.routes?.stop();
    this.node.close();
  }
}

/**
 * The routed datapath as the daemon runs it: the node side (RoutedNode) opened at start when the config has
 * a `routed` section, the plexus-routed delegate registered as a built-in (the cluster network runs it
 * in-process) and served to runtimes that exec `bin/plexus-routed`, and the node routes that follow the IPAM
 * service's block claims. plexus-ipam reaches the delegate in-process, through the handler (its own slots
 * and locks, its own log lines), so addresses are allocated exactly as for any other delegate.
 */
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Delegate, PluginCall } from '../../delegates/contract';
import { RoutedNode } from '../../delegates/routed/datapath';
import { RoutedDelegate } from '../../delegates/routed/delegate';
import { NodeRoutes, type PlacementSource } from '../../delegates/routed/node-routes';
import { PlexusError } from '../../core/errors';
import type { CniRequest, Env } from '../../cni/request';
import type { DaemonConfig } from './config';

type Reply = { status: number; body: string };
type CniEntry = (env: Env, config: string, invokedAs: 'plexus-ipam') => Promise<Reply>;

/** CNI env of a delegate call, as a runtime would set it. */
export function envOf(call: Pick<PluginCall, 'command' | 'env'>): Env {
  return {
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.env.containerId,
    CNI_NETNS: call.env.netns,
    CNI_IFNAME: call.env.ifName,
    CNI_ARGS: call.env.args,
    CNI_PATH: call.env.path.join(':') || '/opt/cni/bin',
  };
}

/** plexus-ipam as an in-process delegate: the same request the binary would send, answered by the handler. */
export function inProcessIpam(cni: CniEntry): Delegate {
  return {
    async exec(call) {
      const reply = await cni(envOf(call), JSON.stringify(call.config), 'plexus-ipam');
      if (reply.status !== 200) throw PlexusError.fromCni(JSON.parse(reply.body), 'DelegateFailed');
      return reply.body ? JSON.parse(reply.body) : undefined;
    },
  };
}

export class RoutedService {
  private routes: NodeRoutes | undefined;

  private constructor(
    readonly node: RoutedNode,
    readonly delegate: RoutedDelegate,
    private readonly config: DaemonConfig,
    private readonly log: Logger,
  ) {}

  static async open(config: DaemonConfig, cni: CniEntry, log: Logger): Promise<RoutedService> {
    const opts = config.routed!;
    const node = await RoutedNode.start(opts, { nodeName: config.nodeName, stateDir: config.stateDir, log, binDir: dirname(process.argv[1] ?? '.') });
    return new RoutedService(node, new RoutedDelegate({ node, ipam: inProcessIpam(cni) }), config, log);
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

  /** A runtime's `plexus-routed` invocation (bin/plexus-routed forwarded here). */
  async handle(req: CniRequest, log: Logger): Promise<string> {
    const out = await this.delegate.exec({
      command: req.command,
      env: { containerId: req.containerId ?? '', netns: req.netns ?? '', ifName: req.ifName ?? '', args: req.argsRaw, path: req.path },
      config: req.config,
      timeoutMs: this.config.limits.delegateTimeoutSeconds * 1000,
      log,
    });
    return out === undefined ? '' : JSON.stringify(out);
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

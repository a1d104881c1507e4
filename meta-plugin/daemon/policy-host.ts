/**
 * The policies as this daemon knows and enforces them. NetworkPolicies, MultiNetworkPolicies and Namespaces
 * come from the source (manifests or the API), validated and defaulted by policy/parse.ts at every change; a
 * policy an API server would refuse is left out with one warning naming its fields (again only if it changes).
 *
 * With the routed datapath, it also enforces them (policy/datapath.ts). NetworkPolicy: it is the
 * EndpointWatcher of plexus-routed, so each cluster-network endpoint is hooked and its policy written before the
 * pod is reachable (NP8). MultiNetworkPolicy: it is the runner's AttachmentWatcher, so a pod's interface on a
 * secondary network that some MultiNetworkPolicy names is hooked (inside the pod) and its policy written before
 * the ADD returns; a network a new policy names has its interfaces hooked then. A DPDK port (no kernel interface)
 * is enforced by plexus-dataplane instead: the same compiled policy is sent to the engine, also before the ADD
 * returns (engine-policy.ts). Every change of the source is
 * compiled and written again, one update at a time. On start it takes over the pinned maps an earlier daemon
 * left (enforcement never stopped meanwhile). The datapath's flow events are named (pods, namespaces, labels,
 * network) into a bounded ring for `plexusctl observe`, and counted for /metrics.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errorText, PlexusError } from '../../core/errors';
import type { EndpointInfo, EndpointWatcher } from '../../delegates/contract';
import { isKernelError, Netlink, netnsCookie } from '../../kernel';
import type { EngineFlow } from '../../dpdk-native/engine-client';
import type { EnginePolicyCounters } from '../../dpdk-native/policy-wire';
import { type EnginePolicyChannel, engineNetworkOf, enginePortName } from '../../dpdk-native/policy-channel';
import { addr16, addrText, type FlowEventRecord, FLOW, OBJECT_FILE, REASON, VERDICT } from '../../policy/bpf-maps';
import { type Attachment, compile, endpointKey, IdentityAllocator } from '../../policy/compile';
import { networkId, PolicyDatapath } from '../../policy/datapath';
import { describePod, type PodPolicyView } from '../../policy/describe';
import type { PolicyPod, World } from '../../policy/evaluate';
import { type Flow, type FlowEndpoint, FlowRing, protocolName } from '../../policy/flows';
import { type Policy, namespaceLabels, parsePolicy } from '../../policy/parse';
import type { PodObject } from '../planner/types';
import type { AttachmentWatcher, PodInterface } from '../runner/runner';
import type { Source } from '../source/source';
import type { DaemonConfig } from './config';
import { type EngineAttachment, enginePolicyOf } from './engine-policy';

export const POLICY_KINDS = ['NetworkPolicy', 'MultiNetworkPolicy'] as const;
const POLL_MS = 100;
/** How often the engine's flow events are read (its verdict counters every fourth time). */
const ENGINE_POLL_MS = 250;
/** How often the node's own addresses are read again (an address added without any policy change). */
const NODE_ADDRESSES_MS = 5000;

export function policyPod(pod: PodObject): PolicyPod {
  return { namespace: pod.namespace, name: pod.name, labels: pod.labels ?? {}, ports: pod.ports ?? [], ...(pod.hostNetwork ? { hostNetwork: true } : {}) };
}

export interface EnforcementDeps {
  readonly config: DaemonConfig;
  /** Whether a routed endpoint's CNI network is the cluster network (NetworkPolicy governs only that one). */
  readonly isClusterNetwork: (network: string) => boolean;
  /** plexus-dataplane's policy, when the node runs the DPDK engine (dpdk configured). */
  readonly engine?: EnginePolicyChannel;
}

/** A hooked interface: where it is, whose it is, and which network's policies govern it. */
interface Hooked {
  readonly ifindex: number;
  readonly netns: string | null;
  readonly pod?: { readonly namespace: string; readonly name: string };
  readonly ips: readonly string[];
  /** The policy network: undefined for the cluster network, else the NAD's `namespace/name`. */
  readonly network?: string;
  /** A pod's own interface (secondary networks): its netns's cookie, so the datapath knows whose it is (pol_ports). */
  readonly cookie?: bigint;
}

/** Interfaces are keyed by netns and ifindex: ifindexes are per netns. */
const hookKey = (netns: string | null, ifindex: number): string => `${netns ?? ''}#${ifindex}`;
const CLUSTER = 'cluster';

export class PolicyHost implements EndpointWatcher, AttachmentWatcher {
  private world: World = { policies: [], namespaces: new Map() };
  private refused = new Set<string>();
  private readonly datapath: PolicyDatapath | undefined;
  /** The node's netns, for its own addresses (NP5). */
  private netlink: Netlink | undefined;
  /** Flow events read since the last scrape, by network id, verdict and reason (counted here, not per event in prom-client). */
  private readonly flowCounts = new Map<string, number>();
  /** The datapath's counters as last read (Prometheus counters only go up by what was added since). */
  private readonly countersSeen = new Map<string, bigint>();
  /** Pods with an endpoint here the source does not have, each warned about once. */
  private readonly unknownPods = new Set<string>();
  /** Hooked interfaces, by hookKey. */
  private readonly endpoints = new Map<string, Hooked>();
  /** Every secondary pod interface on this node, hooked or not (a policy naming its network may come later), by id. */
  private readonly secondary = new Map<string, PodInterface>();
  /** The hookKey of each hooked secondary interface, by its id. */
  private readonly secondaryHooks = new Map<string, string>();
  /** DPDK ports of this node (governed or not: a policy naming their network may come later), by interface id. */
  private readonly enginePorts = new Map<string, { iface: PodInterface; engineNetwork: string }>();
  private readonly engine: EnginePolicyChannel | undefined;
  /**
   * Whether the engine was last sent a policy that judges something (an empty one is then sent once); true at
   * first, so the first write always publishes (the DPDK reconcile waits for it).
   */
  private engineJudging = true;
  /** The last write could not reach the engine (restore() goes on: the reconcile sends the policy later). */
  private engineBehind = false;
  /** The engine's flow events read so far (-1: none yet; the first read only finds where to start), the NAD each engine network's flows are named by, and its counters. */
  private engineSeq = -1;
  private engineNads = new Map<string, string>();
  private enginePolls = 0;
  private enginePolling: Promise<void> | undefined;
  private enginePoller: NodeJS.Timeout | undefined;
  /** The engine's verdict counters as last read, by engine network. */
  private engineCounters: Record<string, EnginePolicyCounters> = {};
  /** Secondary interfaces no program can sit on (no kernel interface), each warned about once. */
  private readonly unenforceable = new Set<string>();
  private portsWarned = false;
  /** Network ids in the maps -> the network's name (`cluster` or the NAD), for flows and metrics. */
  private readonly networkNames = new Map<number, string>([[networkId(undefined), CLUSTER]]);
  private readonly allocator = new IdentityAllocator();
  private writing: Promise<void> = Promise.resolve();
  /** What the last write was compiled from (fingerprint()): a write from the same is skipped. */
  private written: string | undefined;
  /** The write waiting its turn, if any: a change now is written by it. */
  private queued: Promise<void> | undefined;
  /** Nothing is written before restore() took over what the pinned maps hold (a write would drop it all). */
  private restored = false;
  /** What the source has not listed yet, while writes wait for it (logged once); undefined once all is listed. */
  private heldBack: string[] | undefined;
  /** ADDs waiting for the source to list what policy reads (untilListed). */
  private readonly listedWaiters = new Set<() => void>();
  private poller: NodeJS.Timeout | undefined;
  private addressWatch: NodeJS.Timeout | undefined;
  /** address -> who owns it, for naming flows (rebuilt at each write). */
  private owners = new Map<string, FlowEndpoint>();
  private nodeAddresses = new Set<string>();
  readonly flows: FlowRing;
  readonly registry = new Registry();
  private readonly metrics;

  constructor(
    private readonly source: Source,
    private readonly log: Logger,
    private readonly enforcement?: EnforcementDeps,
  ) {
    this.flows = new FlowRing(enforcement?.config.policy.flowBuffer ?? 10000);
    this.metrics = {
      flows: new Counter({
        name: 'plexus_policy_flows_total', help: 'Flow events read from the datapath, by network, verdict and drop reason', labelNames: ['network', 'verdict', 'reason'], registers: [this.registry],
        collect: () => this.collectFlows(),
      }),
      updates: new Histogram({
        name: 'plexus_policy_update_seconds', help: 'Time from a change (of the source or of an endpoint) to the new policy enforced in the datapath',
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry],
      }),
      endpoints: new Gauge({ name: 'plexus_policy_endpoints', help: 'Endpoints the policy datapath is hooked on', registers: [this.registry] }),
      peers: new Gauge({ name: 'plexus_policy_peers', help: 'Pods of other nodes known as policy peers, counted once per network they have addresses on', registers: [this.registry] }),
      policies: new Gauge({ name: 'plexus_policy_policies', help: 'Policies in force, by kind', labelNames: ['kind'], registers: [this.registry] }),
      refused: new Gauge({ name: 'plexus_policy_refused', help: 'Policies refused as invalid (see the warnings)', registers: [this.registry] }),
      waiting: new Gauge({
        name: 'plexus_policy_waiting_for_source',
        help: '1 while the source has not listed everything policy reads (policies, namespaces, pods of this and other nodes): the datapath keeps the last policy written, and ADDs wait',
        registers: [this.registry],
      }),
      verdicts: new Counter({
        name: 'plexus_policy_verdicts_total',
        help: 'Decisions of the policy datapath, counted in the kernel (every drop, not only those reported as flows): new connections allowed, packets dropped by the source\'s egress or the destination\'s ingress policy, tracked connections cut by a policy change',
        labelNames: ['network', 'verdict'], registers: [this.registry],
        collect: () => this.collectCounters(),
      }),
      eventsLost: new Counter({
        name: 'plexus_policy_events_lost_total', help: 'Flow events the datapath had no room for in its ring buffer (the packets were handled; only their report is lost)',
        labelNames: ['network'], registers: [this.registry],
      }),
    };
    this.datapath = this.openDatapath();
    this.engine = enforcement?.config.policy.enforce ? enforcement.engine : undefined;
    if (this.engine) {
      this.enginePoller = setInterval(() => (this.enginePolling ??= this.pollEngine().finally(() => (this.enginePolling = undefined))), ENGINE_POLL_MS);
      this.enginePoller.unref();
    }
    this.refresh();
    source.onChange(() => this.refresh());
  }

  get current(): World {
    return this.world;
  }

  /** Whether policies are enforced here: the routed datapath with its policy program loaded, or the DPDK engine. */
  get enforcing(): boolean {
    return this.datapath !== undefined || this.engine !== undefined;
  }

  refresh(): void {
    const policies: Policy[] = [];
    const refused = new Set<string>();
    for (const doc of POLICY_KINDS.flatMap((k) => this.source.otherObjects(k))) {
      try {
        policies.push(parsePolicy(doc));
      } catch (e) {
        const why = errorText(e);
        refused.add(why);
        if (!this.refused.has(why)) this.log.warn({ err: why }, 'policy refused: it is not enforced until fixed');
      }
    }
    this.refused = refused;
    // Every namespace carries its name label (F11), also one known only from its pods or policies (file source).
    const namespaces = new Map<string, Readonly<Record<string, string>>>();
    for (const p of [...this.source.listPods(), ...policies]) namespaces.set(p.namespace, namespaceLabels(p.namespace, {}));
    for (const ns of this.source.otherObjects('Namespace')) {
      const m = (ns['metadata'] ?? {}) as { name?: unknown; labels?: unknown };
      if (typeof m.name === 'string') namespaces.set(m.name, namespaceLabels(m.name, (m.labels ?? {}) as Record<string, string>));
    }
    this.world = { policies, namespaces };
    for (const kind of POLICY_KINDS) this.metrics.policies.set({ kind }, policies.filter((p) => p.kind === kind).length);
    this.metrics.refused.set(refused.size);
    if (this.unlisted().length === 0) for (const wake of this.listedWaiters) wake();
    if (this.enforcing && this.restored) {
      void this.hookGoverned().then(() => this.write()).catch((err: unknown) => this.log.error({ err: errorText(err) }, 'policy update failed; retried at the next change'));
    }
  }

  /** What `plexusctl policy` prints; undefined for a pod the source does not have (the API source: this node's). */
  describe(namespace: string, name: string): PodPolicyView | undefined {
    const pod = this.source.getPod(namespace, name);
    return pod && describePod(this.world, policyPod(pod));
  }

  /** EndpointWatcher: hooked and its policy written before plexus-routed makes the pod reachable. */
  async attaching(ep: EndpointInfo): Promise<void> {
    if (!this.datapath || !this.restored || !this.governed(ep)) return;
    await this.untilListed(ep.pod, ep.network);
    this.hook(hookedOf(ep), ep.end);
    await this.write();
  }

  async detached(ep: EndpointInfo): Promise<void> {
    if (this.unhook(hookKey(ep.netns, ep.ifindex))) await this.write();
  }

  /**
   * AttachmentWatcher: a secondary interface is known from now on; when a MultiNetworkPolicy names its network,
   * it is hooked inside the pod and its policy written before the ADD returns.
   */
  async attached(iface: PodInterface): Promise<void> {
    // Known from now on, so a change of the source hooks it even if the wait below gives up (hookGoverned).
    this.secondary.set(iface.id, iface);
    const engineNetwork = this.engine && engineNetworkOf(iface.conf);
    if (engineNetwork) this.enginePorts.set(iface.id, { iface, engineNetwork });
    // Whether a MultiNetworkPolicy names its network is known only once they are listed.
    if (this.enforcing && this.restored) await this.untilListed(iface.pod, iface.network);
    if (engineNetwork) {
      if (this.restored && this.governedNetworks().has(iface.network)) await this.write();
      return;
    }
    if (!this.datapath || !this.restored || !this.governedNetworks().has(iface.network)) return;
    await this.hookSecondary(iface);
    await this.write();
  }

  async detaching(iface: PodInterface): Promise<void> {
    this.secondary.delete(iface.id);
    this.unenforceable.delete(iface.id);
    if (this.enginePorts.delete(iface.id) && this.restored && this.governedNetworks().has(iface.network)) await this.write();
    const key = this.secondaryHooks.get(iface.id);
    this.secondaryHooks.delete(iface.id);
    if (key && this.unhook(key)) await this.write();
  }

  /**
   * After a restart: the maps an earlier daemon pinned are taken over as they are (they never stopped
   * enforcing), every live endpoint is hooked again (an upgraded program takes over in place), interfaces the
   * maps knew that no endpoint has any more are forgotten, and the current policy is written.
   */
  async restore(live: readonly EndpointInfo[], secondary: readonly PodInterface[] = []): Promise<void> {
    const dp = this.datapath;
    for (const iface of secondary) {
      this.secondary.set(iface.id, iface);
      const engineNetwork = this.engine && engineNetworkOf(iface.conf);
      if (engineNetwork) this.enginePorts.set(iface.id, { iface, engineNetwork });
    }
    if (!dp) {
      // The engine alone: what it holds is replaced by the current policy (its ports are the reconcile's).
      this.restored = this.engine !== undefined;
      if (this.restored) await this.writeOrLeaveToReconcile();
      return;
    }
    const governed = live.filter((ep) => this.governed(ep));
    const networks = this.governedNetworks();
    const resolved: Array<[PodInterface, Hooked]> = [];
    for (const iface of secondary.filter((i) => networks.has(i.network) && !this.enginePorts.has(i.id))) {
      const h = await this.resolve(iface);
      if (h) resolved.push([iface, h]);
    }
    const report = dp.writer.adopt(this.attachments([...governed.map(hookedOf), ...resolved.map(([, h]) => h)]));
    this.nodeAddresses = new Set(await this.readNodeAddresses());
    const hooks = [...governed.map((ep) => [undefined, hookedOf(ep), ep.end] as const), ...resolved.map(([iface, h]) => [iface, h, 'pod'] as const)];
    for (const [iface, h, end] of hooks) {
      try {
        this.hook(h, end);
        if (iface) this.secondaryHooks.set(iface.id, hookKey(h.netns, h.ifindex));
      } catch (err) {
        if (!isKernelError(err)) throw err; // its interface went since it was listed: the DEL that comes cleans up
      }
    }
    this.restored = true;
    await this.writeOrLeaveToReconcile();
    this.log.info({ ...report, hooked: this.endpoints.size }, 'policy datapath restored');
  }

  /**
   * What policy reads that the source has not listed yet. Until it has, nothing is written: the maps keep the
   * policy last written (by this daemon or, after a restart, by the one before), which a partial view would
   * replace with a wrong one, cutting the connections of peers not listed yet (D-14).
   */
  private unlisted(): string[] {
    const s = this.source;
    return [
      ...(s.ready() ? [] : ['Pod']),
      ...[...POLICY_KINDS, 'Namespace'].filter((k) => !s.listed(k)),
      ...(s.peersListed() ? [] : ['Pod of other nodes']),
    ];
  }

  /**
   * An ADD's policy can be written only once the source has listed what policy reads: it waits for that as
   * long as an ADD waits for its pod (`source.podWaitMs`), then fails with TryAgainLater (the runtime retries).
   */
  private async untilListed(pod: { namespace: string; name: string } | undefined, network: string | undefined): Promise<void> {
    if (this.unlisted().length === 0) return;
    const source = this.enforcement?.config.source;
    const waitMs = source?.type === 'kubernetes' ? source.podWaitMs : 5000;
    let wake: (() => void) | undefined;
    const listed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), waitMs);
      wake = () => (clearTimeout(timer), resolve(true));
      this.listedWaiters.add(wake);
    }).finally(() => this.listedWaiters.delete(wake!));
    const missing = this.unlisted();
    if (listed || missing.length === 0) return;
    const who = pod ? `pod ${pod.namespace}/${pod.name}` : 'an endpoint';
    throw new PlexusError('TryAgainLater', `${who}: network "${network ?? CLUSTER}": its policy cannot be written yet: the source has not listed ${missing.join(', ')} (waited ${waitMs} ms)`);
  }

  /** The first write; an engine that does not answer yet is given the policy by the DPDK reconcile when it does. */
  private async writeOrLeaveToReconcile(): Promise<void> {
    try {
      await this.write();
    } catch (err) {
      if (!this.engineBehind) throw err;
      this.log.warn({ err: errorText(err) }, 'the DPDK engine did not take the policy; it is sent again when the engine answers');
    }
  }

  close(): void {
    if (this.poller) clearInterval(this.poller);
    if (this.enginePoller) clearInterval(this.enginePoller);
    if (this.addressWatch) clearInterval(this.addressWatch);
    this.datapath?.close();
    this.netlink?.close();
  }

  private openDatapath(): PolicyDatapath | undefined {
    const e = this.enforcement;
    const routed = e?.config.routed;
    if (!e || !routed || !e.config.policy.enforce) return undefined;
    const { bpfObject, pinDir } = e.config.policy;
    const path = bpfObject ?? join(dirname(process.argv[1] ?? '.'), OBJECT_FILE);
    try {
      const dp = PolicyDatapath.open(path, pinDir ?? `${routed.pinDir}/policy`, (e) => this.record(e));
      this.netlink = Netlink.openSync(null);
      this.poller = setInterval(() => this.poll(), POLL_MS);
      this.poller.unref();
      this.addressWatch = setInterval(() => void this.checkNodeAddresses(), NODE_ADDRESSES_MS);
      this.addressWatch.unref();
      return dp;
    } catch (err) {
      // Not silent: a node that should enforce policy and cannot is worth an error in the log.
      this.log.error({ err: errorText(err), object: path }, 'the policy datapath could not load: policies are NOT enforced on this node');
      return undefined;
    }
  }

  /**
   * NetworkPolicy governs the cluster network; a routed endpoint of another network is a secondary attachment,
   * which the runner reports (and which is hooked inside the pod when a MultiNetworkPolicy names its network).
   */
  private governed(ep: EndpointInfo): boolean {
    return this.enforcement!.isClusterNetwork(ep.network);
  }

  /** The secondary networks some MultiNetworkPolicy names (its interfaces are hooked). */
  private governedNetworks(): Set<string> {
    return new Set(this.world.policies.flatMap((p) => (p.kind === 'MultiNetworkPolicy' ? p.networks ?? [] : [])));
  }

  private hook(h: Hooked, end: 'host' | 'pod'): void {
    const id = networkId(h.network);
    this.networkNames.set(id, h.network ?? CLUSTER);
    this.datapath!.hook(h.ifindex, id, end, h.netns);
    if (end === 'pod' && this.datapath!.portsChecked === false && !this.portsWarned) {
      this.portsWarned = true;
      this.log.warn('this kernel does not let tc programs ask for the netns cookie (Linux 6.13+): on secondary interfaces a packet is judged by its source address, which is not checked against its pod');
    }
    this.endpoints.set(hookKey(h.netns, h.ifindex), h);
  }

  /** Takes the filters off a hooked interface; false when it was not hooked. */
  private unhook(key: string): boolean {
    const h = this.endpoints.get(key);
    if (!this.datapath || !h) return false;
    this.endpoints.delete(key);
    this.datapath.unhook(h.ifindex, h.netns);
    return true;
  }

  /** The hookable interface of a secondary attachment: its ifindex in the pod; undefined when it has no kernel interface. */
  private async resolve(iface: PodInterface): Promise<Hooked | undefined> {
    let link;
    let cookie: bigint;
    try {
      link = await Netlink.within(iface.netns, (nl) => nl.getLink(iface.ifName));
      cookie = netnsCookie(iface.netns);
    } catch (err) {
      if (!isKernelError(err)) throw err; // the pod's netns is gone: nothing to enforce
      return undefined;
    }
    if (!link) {
      // A DPDK-bound VF or a vhost-user/memif port: no kernel interface, so no program can sit on it.
      if (!this.unenforceable.has(iface.id)) {
        this.unenforceable.add(iface.id);
        this.log.warn({ pod: iface.pod && `${iface.pod.namespace}/${iface.pod.name}`, network: iface.network, ifName: iface.ifName }, 'MultiNetworkPolicy names this network, but the interface is no kernel interface (DPDK, vhost-user, memif): it is NOT enforced there');
      }
      return undefined;
    }
    return { ifindex: link.index, netns: iface.netns, ips: iface.ips, network: iface.network, cookie, ...(iface.pod ? { pod: iface.pod } : {}) };
  }

  private async hookSecondary(iface: PodInterface): Promise<void> {
    if (this.secondaryHooks.has(iface.id)) return;
    const h = await this.resolve(iface);
    if (!h || !this.secondary.has(iface.id)) return; // not hookable, or detached meanwhile
    this.hook(h, 'pod');
    this.secondaryHooks.set(iface.id, hookKey(h.netns, h.ifindex));
  }

  /** Hooks the secondary interfaces of every network a MultiNetworkPolicy names now (a policy just came). */
  private async hookGoverned(): Promise<void> {
    if (!this.datapath) return;
    const networks = this.governedNetworks();
    for (const iface of [...this.secondary.values()]) {
      if (!networks.has(iface.network) || this.enginePorts.has(iface.id)) continue;
      try {
        await this.hookSecondary(iface);
      } catch (err) {
        this.log.warn({ err: errorText(err), network: iface.network, ifName: iface.ifName }, 'hooking a secondary interface failed; retried at the next change');
      }
    }
  }

  /** The pods behind the hooked interfaces, as the source knows them now. */
  private attachments(eps: Iterable<Hooked>): Attachment[] {
    // A pod may be on one network through several interfaces (S22): one endpoint with all their addresses.
    const out = new Map<string, Attachment>();
    for (const ep of eps) {
      if (!ep.pod) continue;
      const pod = this.source.getPod(ep.pod.namespace, ep.pod.name);
      const ref = `${ep.pod.namespace}/${ep.pod.name}`;
      if (!pod && !this.unknownPods.has(ref)) {
        this.unknownPods.add(ref);
        this.log.warn({ pod: ref }, 'a pod with an endpoint here is not in the source: no policy selects it by its labels');
      }
      const key = endpointKey(ep.network, ep.pod);
      const seen = out.get(key);
      if (seen) out.set(key, { ...seen, ips: [...seen.ips, ...ep.ips] });
      else out.set(key, { pod: pod ? policyPod(pod) : { namespace: ep.pod.namespace, name: ep.pod.name, labels: {}, ports: [] }, ips: ep.ips, ...(ep.network ? { network: ep.network } : {}) });
    }
    return [...out.values()];
  }

  /**
   * Compiles the current world over the hooked endpoints, with the other nodes' pods as peers, and writes it,
   * one write at a time. Changes that come while a write waits its turn are folded into that one.
   */
  private write(): Promise<void> {
    if (this.queued) return this.queued;
    const started = process.hrtime.bigint();
    const step = this.writing.then(async () => {
      this.queued = undefined;
      const missing = this.unlisted();
      this.metrics.waiting.set(missing.length > 0 ? 1 : 0);
      if (missing.length > 0) {
        if (this.heldBack?.join() !== missing.join()) this.log.warn({ unlisted: missing }, 'the source has not listed everything policy reads: the datapath keeps the policy last written until it has');
        this.heldBack = missing;
        return;
      }
      if (this.heldBack) this.log.info('the source has listed everything policy reads: writing the policy');
      this.heldBack = undefined;
      const kernel = this.attachments(this.endpoints.values());
      const governed = this.governedNetworks();
      const engine = this.engineAttachments(governed);
      const local = [...kernel, ...engine];
      const remote = this.remoteAttachments(local);
      // Most changes of a cluster's pods (status, probes) change nothing policy reads: nothing to write then.
      const ports = [...this.endpoints.values()].flatMap((h) => (h.cookie !== undefined && h.pod ? [{ netns: h.cookie, ifindex: h.ifindex, endpoint: endpointKey(h.network, h.pod) }] : []));
      const inputs = fingerprint([this.world.policies, this.world.namespaces, local, remote, [...this.nodeAddresses].sort(), ports]);
      if (inputs === this.written) return;
      const compiled = compile(this.world, local, this.allocator, remote);
      this.datapath?.writer.apply(compiled, kernel, [...this.nodeAddresses], undefined, ports);
      if (this.engine && (engine.length > 0 || this.engineJudging)) {
        const ports = [...this.enginePorts.values()].map(({ iface, engineNetwork }) => ({ port: enginePortName(iface.containerId, iface.ifName), engineNetwork }));
        const policy = enginePolicyOf(compiled, engine, governed, ports, '');
        policy.revision = createHash('sha256').update(JSON.stringify(policy)).digest('hex').slice(0, 32);
        this.engineBehind = true;
        await this.engine.publish(policy);
        this.engineBehind = false;
        this.engineJudging = policy.networks.length > 0;
        this.engineNads = new Map(engine.map((a) => [a.engineNetwork, a.network]));
        for (const a of engine) this.networkNames.set(networkId(a.network), a.network);
      }
      this.written = inputs;
      this.owners = new Map([...remote, ...local].flatMap((a) => a.ips.map((ip) => [ownerKey(networkId(a.network), addr16(ip)), endpointOf(a.pod, ip)])));
      this.metrics.endpoints.set(this.endpoints.size);
      this.metrics.peers.set(remote.length);
      this.metrics.updates.observe(Number(process.hrtime.bigint() - started) / 1e9);
    });
    this.queued = step;
    this.writing = step.catch(() => undefined);
    return step;
  }

  /** The DPDK ports on networks some MultiNetworkPolicy names, as attachments (one per pod and network). */
  private engineAttachments(governed: ReadonlySet<string>): EngineAttachment[] {
    const ports = [...this.enginePorts.values()].filter((p) => governed.has(p.iface.network) && p.iface.pod);
    for (const { iface } of ports) {
      if (iface.ips.length > 0 || this.unenforceable.has(iface.id)) continue;
      this.unenforceable.add(iface.id);
      this.log.warn({ pod: `${iface.pod!.namespace}/${iface.pod!.name}`, network: iface.network, ifName: iface.ifName },
        'a DPDK port with no address on a network a MultiNetworkPolicy names: its egress is enforced, its ingress cannot be (the engine finds a packet\'s destination by its address; give the NAD an ipam)');
    }
    const byNetwork = new Map<string, string>(ports.map((p) => [p.iface.network, p.engineNetwork]));
    const portsOf = new Map<string, string[]>();
    for (const { iface } of ports) {
      const key = endpointKey(iface.network, iface.pod!);
      portsOf.set(key, [...(portsOf.get(key) ?? []), enginePortName(iface.containerId, iface.ifName)]);
    }
    return this.attachments(ports.map(({ iface }) => ({ ifindex: 0, netns: iface.netns, ips: iface.ips, network: iface.network, pod: iface.pod! })))
      .map((a) => ({ ...a, network: a.network!, engineNetwork: byNetwork.get(a.network!)!, ports: portsOf.get(endpointKey(a.network, a.pod))! }));
  }

  /** The engine's flow events, named as the datapath's are; its verdict counters once a second. */
  private async pollEngine(): Promise<void> {
    if (!this.engine || !this.engineJudging) return;
    try {
      // At start, what an earlier daemon may have read already is skipped: the cursor goes to the end.
      const starting = this.engineSeq < 0;
      for (const f of await this.engine.client.flowsAfter(Math.max(0, this.engineSeq))) {
        this.engineSeq = f.seq;
        const nad = this.engineNads.get(f.network);
        if (nad && !starting) this.record(engineFlowRecord(f, networkId(nad)));
      }
      if (starting && this.engineSeq < 0) this.engineSeq = 0;
      if (++this.enginePolls % 4 === 0) this.engineCounters = await this.engine.client.policyCounters();
    } catch (err) {
      this.log.debug({ err: errorText(err) }, 'reading the DPDK engine\'s flow events failed; retried');
    }
  }

  /**
   * The pods of other nodes on the networks enforced here: their cluster addresses (status.podIPs, else their
   * network-status entry for the cluster network) and their addresses on each secondary network a
   * MultiNetworkPolicy names. A pod with an endpoint here is this node's, whatever a stale status says.
   */
  private remoteAttachments(local: readonly Attachment[]): Attachment[] {
    const here = new Set(local.map((a) => `${a.pod.namespace}/${a.pod.name}`));
    const networks = this.governedNetworks();
    const out: Attachment[] = [];
    for (const peer of this.source.peers()) {
      if (peer.pod.hostNetwork || here.has(`${peer.pod.namespace}/${peer.pod.name}`)) continue;
      const pod = policyPod(peer.pod);
      const clusterIps = peer.podIPs ?? peer.status?.find((s) => this.enforcement!.isClusterNetwork(s.name))?.ips?.map(withoutPrefix) ?? [];
      if (clusterIps.length) out.push({ pod, ips: clusterIps });
      for (const s of peer.status ?? []) {
        if (networks.has(s.name) && s.ips?.length) out.push({ pod, network: s.name, ips: s.ips.map(withoutPrefix) });
      }
    }
    return out;
  }

  /** The node's own addresses (its traffic into a pod is allowed on the cluster network, NP5). */
  private async readNodeAddresses(): Promise<string[]> {
    return (await this.netlink!.listAddresses()).filter((a) => a.scope !== 253).map((a) => a.address);
  }

  private async checkNodeAddresses(): Promise<void> {
    if (!this.restored) return;
    try {
      const now = await this.readNodeAddresses();
      if (now.length === this.nodeAddresses.size && now.every((a) => this.nodeAddresses.has(a))) return;
      this.nodeAddresses = new Set(now);
      await this.write();
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'reading the node\'s addresses failed');
    }
  }

  /** Moves the kernel's counters into the Prometheus counters by what they grew since the last scrape. */
  private collectCounters(): void {
    const engine = Object.entries(this.engineCounters).flatMap(([engineNetwork, c]) => {
      const nad = this.engineNads.get(engineNetwork);
      if (!nad) return [];
      const counters = { FORWARDED: c.forwarded, DROPPED_EGRESS: c.droppedEgress, DROPPED_INGRESS: c.droppedIngress, DROPPED_SPOOFED: c.droppedSpoofed, CUT: c.cut, EVENTS_LOST: c.eventsLost };
      return [[`engine:${nad}`, Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, BigInt(v)]))] as const];
    });
    for (const [network, counters] of [...(this.datapath?.counters() ?? []), ...engine]) {
      // The engine's counters are kept apart (their own running totals) and added under the NAD's name.
      const net = typeof network === 'string' ? network.slice('engine:'.length) : this.networkName(network);
      const seenKey = typeof network === 'string' ? network : net;
      for (const [name, value] of Object.entries(counters)) {
        const key = `${seenKey}|${name}`;
        const grown = Number(value - (this.countersSeen.get(key) ?? 0n));
        this.countersSeen.set(key, value);
        if (grown <= 0) continue;
        if (name === 'EVENTS_LOST') this.metrics.eventsLost.inc({ network: net }, grown);
        else this.metrics.verdicts.inc({ network: net, verdict: VERDICT_LABELS[name as keyof typeof VERDICT_LABELS] }, grown);
      }
    }
  }

  private poll(): void {
    try {
      this.datapath?.poll();
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'reading flow events failed');
    }
  }

  /**
   * A flow event: counted, and kept in the ring as what names it later (the owners and node addresses as they
   * are now: both are replaced, never changed, at each write), so the thousands a second nobody reads cost
   * little of the daemon's CPU, which the node's pods share.
   */
  private record(e: FlowEventRecord): void {
    const key = `${e.network}|${e.verdict}|${e.reason}`;
    this.flowCounts.set(key, (this.flowCounts.get(key) ?? 0) + 1);
    // Who owns each end is looked up now (the owners change at every write); naming waits.
    const src = this.owners.get(ownerKey(e.network, e.src));
    const dst = this.owners.get(ownerKey(e.network, e.dst));
    const { nodeAddresses } = this;
    this.flows.push(() => this.flowOf(e, src, dst, nodeAddresses));
  }

  private flowOf(e: FlowEventRecord, srcOwner: FlowEndpoint | undefined, dstOwner: FlowEndpoint | undefined, nodeAddresses: ReadonlySet<string>): Omit<Flow, 'seq'> {
    const v6 = (e.flags & FLOW.V6) !== 0;
    const cluster = e.network === networkId(undefined);
    const side = (addr: Buffer, owner: FlowEndpoint | undefined, port: number): FlowEndpoint => {
      const ip = addrText(addr);
      const who = owner ?? (cluster && nodeAddresses.has(ip) ? { ip, identity: 'host' as const } : { ip, identity: 'world' as const });
      return port ? { ...who, port } : who;
    };
    const reason = reasonOf(e.reason);
    const ports = e.proto === 6 || e.proto === 17 || e.proto === 132;
    return {
      time: new Date(Number(BOOT_EPOCH_NS + e.time) / 1e6).toISOString(),
      node: this.enforcement!.config.nodeName,
      network: this.networkName(e.network),
      verdict: e.verdict === VERDICT.DROPPED ? 'DROPPED' : 'FORWARDED',
      ...(reason ? { drop_reason: reason } : {}),
      ...(e.flags & FLOW.CUT ? { cut: true as const } : {}),
      protocol: protocolName(e.proto, v6),
      source: side(e.src, srcOwner, ports ? e.sport : 0),
      destination: side(e.dst, dstOwner, ports ? e.dport : 0),
      traffic_direction: e.flags & FLOW.TO_ENDPOINT ? 'INGRESS' : 'EGRESS',
      bytes: e.len,
    };
  }

  private networkName(id: number): string {
    return this.networkNames.get(id) ?? String(id);
  }

  /** Moves the flow events counted since the last scrape into plexus_policy_flows_total. */
  private collectFlows(): void {
    for (const [key, n] of this.flowCounts) {
      const [network, verdict, reason] = key.split('|').map(Number) as [number, number, number];
      this.metrics.flows.inc({ network: this.networkName(network), verdict: verdict === VERDICT.DROPPED ? 'DROPPED' : 'FORWARDED', reason: reasonOf(reason) ?? '' }, n);
    }
    this.flowCounts.clear();
  }
}

const reasonOf = (r: number): 'POLICY_DENIED_EGRESS' | 'POLICY_DENIED_INGRESS' | 'INVALID_SOURCE_IP' | undefined =>
  r === REASON.EGRESS ? 'POLICY_DENIED_EGRESS' : r === REASON.INGRESS ? 'POLICY_DENIED_INGRESS' : r === REASON.SPOOFED ? 'INVALID_SOURCE_IP' : undefined;

/** plexus_policy_verdicts_total's verdict label per counter of the datapath. */
const VERDICT_LABELS = { FORWARDED: 'new_connection_allowed', DROPPED_EGRESS: 'dropped_egress', DROPPED_INGRESS: 'dropped_ingress', DROPPED_SPOOFED: 'dropped_spoofed', CUT: 'connection_cut' } as const;

/** CLOCK_MONOTONIC (bpf_ktime_get_ns, process.hrtime) to the Unix epoch, in nanoseconds. */
const BOOT_EPOCH_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** The owners' key: network id and the address's 16 bytes as the datapath reports them (no text to format per event). */
const ownerKey = (network: number, addr: Buffer): string => `${network}|${addr.toString('hex')}`;
/** A text that changes when what a write is compiled from changes (policies hold bigints, Maps and Sets). */
function fingerprint(inputs: unknown): string {
  return JSON.stringify(inputs, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Map ? [...v] : v instanceof Set ? [...v] : v));
}

/** network-status ips carry a prefix length (10.0.0.5/24); policy wants the address. */
const withoutPrefix = (ip: string): string => ip.split('/')[0]!;

/** An engine flow event in the datapath's record form (times as CLOCK_MONOTONIC, addresses as 16 bytes). */
function engineFlowRecord(f: EngineFlow, network: number): FlowEventRecord {
  return {
    time: BigInt(f.time) * 1_000_000n - BOOT_EPOCH_NS, src: addr16(f.src), dst: addr16(f.dst), ifindex: 0, network, sport: f.sport, dport: f.dport, proto: f.proto,
    verdict: f.verdict === 'DROPPED' ? VERDICT.DROPPED : VERDICT.FORWARDED,
    reason: f.reason === 'POLICY_DENIED_EGRESS' ? REASON.EGRESS : f.reason === 'POLICY_DENIED_INGRESS' ? REASON.INGRESS : f.reason === 'INVALID_SOURCE_IP' ? REASON.SPOOFED : REASON.NONE,
    flags: (f.v6 ? FLOW.V6 : 0) | (f.cut ? FLOW.CUT : 0) | (f.reason === 'POLICY_DENIED_INGRESS' ? FLOW.TO_ENDPOINT : 0), len: f.len,
  };
}

function hookedOf(ep: EndpointInfo): Hooked {
  return { ifindex: ep.ifindex, netns: ep.netns, ips: ep.ips, ...(ep.pod ? { pod: ep.pod } : {}) };
}

function endpointOf(pod: PolicyPod, ip: string): FlowEndpoint {
  return { ip, namespace: pod.namespace, pod_name: pod.name, labels: Object.entries(pod.labels).map(([k, v]) => `${k}=${v}`).sort() };
}

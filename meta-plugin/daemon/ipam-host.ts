/**
 * The IPAM service as this daemon hosts it: opens the Ipam engine on this node, keeps its pools in step with
 * the config, the source's IPPool manifests and the pools inline ranges imply, collects garbage after CNI GC
 * and from the source's view of which pods exist, serves operator views, and gives the plexus-ipam plugin
 * its pools and StatefulSet stickiness.
 */
import type { Logger } from 'pino';
import { errorText } from '../../core/errors';
import { podKey } from '../../cni/ids';
import {
  IPAM_PLUGIN_TYPE, Ipam, ImplicitPools, IpamPlugin, NO_POD_NAMESPACE, inlinePoolOf, openIpam, parseCniIpamConfig, poolSpecFromManifest,
  type GcReport, type PoolSpec,
} from '../../ipam';
import type { ValidAttachment } from '../../cni/valid-attachments';
import { toConfList } from '../planner/resolve';
import type { NadObject, PodObject } from '../planner/types';
import type { Source } from '../source/source';
import { KubeClient } from '../source/kube/client';
import type { DaemonConfig } from './config';

export const IPPOOL_KIND = 'IPPool';
const IPAMCLAIM_KIND = 'IPAMClaim';
const CLAIMS_SEEN_KEY = 'ipamclaims-seen';

/**
 * The API client of `ipam.store: {type: kubernetes}`: its own kubeconfig, else the Kubernetes source's, else the
 * pod's service account; requests bounded as the source's are.
 */
function kubeApiFor(config: DaemonConfig): KubeClient | undefined {
  const store = config.ipam.store;
  if (store?.type !== 'kubernetes') return undefined;
  const source = config.source.type === 'kubernetes' ? config.source : undefined;
  return new KubeClient(store.kubeconfig ?? source?.kubeconfig, source?.requestTimeoutMs ?? 10_000);
}

export interface IpamHostOptions {
  /** Published in the node's registration for other nodes (Ipam.placement()). */
  nodeInfo?: Readonly<Record<string, string>>;
  /** Injected clock (ms) for cooldowns and the GC grace period. */
  clock?: () => number;
}

/** A pod a StatefulSet owns (metadata.ownerReferences, when the source keeps them): sticky addresses. */
export function ownedByStatefulSet(pod: PodObject | undefined): boolean {
  const refs = (pod as { ownerReferences?: unknown } | undefined)?.ownerReferences;
  return Array.isArray(refs) && refs.some((r) => (r as { kind?: unknown } | null)?.kind === 'StatefulSet');
}

export class IpamHost {
  /** Pools other components own, read at every refresh. */
  private readonly kept: (() => PoolSpec[])[] = [];
  /** The pools networks' inline ranges imply: shared with plexus-ipam (plugin()). */
  readonly implicit: ImplicitPools;
  /** Pods (ns/name) holding addresses here that the source has listed: only those can be judged gone. */
  private readonly listed = new Set<string>();
  private gcTimer: NodeJS.Timeout | undefined;
  private collecting: Promise<GcReport | undefined> | null = null;

  private constructor(
    readonly ipam: Ipam,
    private readonly config: DaemonConfig,
    private readonly source: Source,
    private readonly log: Logger,
  ) {
    this.implicit = new ImplicitPools(ipam, log);
  }

  static async open(config: DaemonConfig, source: Source, log: Logger, opts: IpamHostOptions = {}): Promise<IpamHost> {
    const ipam = await openIpam({ config: config.ipam, node: config.nodeName, stateDir: config.stateDir, nodeInfo: opts.nodeInfo, clock: opts.clock, kubeApi: kubeApiFor(config) });
    const service = new IpamHost(ipam, config, source, log);
    service.claimsSeen = new Set(await ipam.readNodeMeta<string[]>(CLAIMS_SEEN_KEY).catch(() => undefined) ?? []);
    for (const w of ipam.warnings) log.warn({ warning: w }, 'IPAM recovery');
    service.keepPools(() => service.implicit.specs());
    service.refreshPools();
    // Before the first request: the implicit pools of before the restart (they may hold addresses), then
    // those the source's NADs imply, so GC and operators see every pool from the start.
    await service.implicit.restore().catch((e: unknown) => log.warn({ err: errorText(e) }, 'implicit IPAM pools not restored'));
    await service.registerSourcePools();
    service.notePods();
    service.noteClaims();
    source.onChange(() => {
      service.refreshPools();
      service.notePods();
      service.noteClaims();
      void service.registerSourcePools();
    });
    service.startGc();
    return service;
  }

  /** IPAMClaims (ns/name) seen in the source's complete list, kept in the node store across restarts. */
  private claimsSeen = new Set<string>();
  private claimsSaved: Promise<void> = Promise.resolve();

  /**
   * S38: an IPAMClaim's addresses are freed when the claim is deleted, never before. A claim seen in the
   * source's complete list that a later complete list lacks was deleted: its addresses go. The claims seen are
   * kept in the node store, so a claim deleted while plexusd was down is released once the claims are listed
   * after the restart. A claim never seen (an annotation naming a claim that has no object) is never released
   * this way: absence alone is not a deletion.
   */
  noteClaims(): void {
    if (!this.source.listed(IPAMCLAIM_KIND)) return; // until the claims are listed, an absence means nothing
    const now = new Set(this.source.otherObjects(IPAMCLAIM_KIND).map((c) => {
      const m = (c['metadata'] ?? {}) as { namespace?: string; name?: string };
      return `${m.namespace ?? 'default'}/${m.name ?? ''}`;
    }));
    const before = this.claimsSeen;
    this.claimsSeen = now;
    for (const key of before) {
      if (now.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      this.ipam.releaseClaim({ namespace, name }).then(
        (released) => this.log.info({ claim: key, released }, 'IPAMClaim deleted: its addresses are released'),
        (e: unknown) => {
          this.claimsSeen.add(key);
          this.saveClaims();
          this.log.warn({ claim: key, err: errorText(e) }, 'IPAMClaim addresses not released; retried at the next change');
        },
      );
    }
    if (before.size !== now.size || [...now].some((k) => !before.has(k))) this.saveClaims();
  }

  /** Persist the claims seen, one write at a time, each writing the set as it is then. */
  private saveClaims(): void {
    this.claimsSaved = this.claimsSaved
      .then(() => this.ipam.writeNodeMeta(CLAIMS_SEEN_KEY, [...this.claimsSeen].sort()))
      .catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'IPAMClaims seen not saved; a claim deleted while plexusd is down will keep its addresses'));
  }

  /** The config's pools, then IPPool manifests (a bad manifest is reported and skipped), then the rest. */
  refreshPools(): void {
    const specs: PoolSpec[] = [...(this.config.ipam.pools ?? [])];
    for (const doc of this.source.otherObjects(IPPOOL_KIND)) {
      try {
        specs.push(poolSpecFromManifest(doc));
      } catch (e) {
        this.log.warn({ kind: IPPOOL_KIND, err: errorText(e) }, 'IPPool manifest skipped');
      }
    }
    for (const more of this.kept) specs.push(...more());
    try {
      this.ipam.setPools(specs);
    } catch (e) {
      this.log.error({ err: errorText(e) }, 'IPAM pools not updated: the new set is invalid; the previous one stays');
    }
  }

  /** Let another component own pools that refreshes must keep. */
  keepPools(provider: () => PoolSpec[]): void {
    this.kept.push(provider);
  }

  /**
   * Register the implicit pools of the plexus-ipam networks in the source's NADs (when the source can list
   * them). A definition that conflicts is reported here and refused again at that network's ADD.
   */
  async registerSourcePools(): Promise<void> {
    const nads = this.source.listNads();
    for (const nad of nads) {
      for (const { network, section } of plexusIpamSections(nad)) {
        try {
          const inline = inlinePoolOf(parseCniIpamConfig({ name: network, ipam: section }).ipam);
          if (inline) await this.implicit.poolFor(network, inline);
        } catch (e) {
          this.log.warn({ nad: podKey(nad), network, err: errorText(e) }, 'implicit IPAM pool of a NAD not registered');
        }
      }
    }
  }

  /** A pod the source lists now (for the GC's re-check and StatefulSet stickiness). */
  private sourcePod(key: string): PodObject | undefined {
    const slash = key.indexOf('/');
    return this.source.getPod(key.slice(0, slash), key.slice(slash + 1));
  }

  /** Note which pods holding addresses here the source lists: from then on, leaving the source means gone. */
  private notePods(): void {
    if (!this.source.ready()) return;
    for (const p of this.ipam.pods()) {
      const key = podKey(p);
      if (p.namespace !== NO_POD_NAMESPACE && this.sourcePod(key)) this.listed.add(key);
    }
  }

  /**
   * plexus-ipam over this node's IPAM: it shares the implicit pools (restored and pre-registered at start,
   * kept when the config's or the manifests' pools change) and gives a StatefulSet's pods sticky addresses
   * without their asking.
   */
  plugin(log: Logger): IpamPlugin {
    return new IpamPlugin(this.ipam, { log, implicit: this.implicit, sticky: (pod) => this.isSticky(pod) });
  }

  /** Whether a pod gets sticky addresses without asking: a StatefulSet owns it. */
  isSticky(pod: { namespace: string; name: string }): boolean {
    return ownedByStatefulSet(this.source.getPod(pod.namespace, pod.name));
  }

  private startGc(): void {
    const seconds = this.config.ipam.gcIntervalSeconds ?? 60;
    if (seconds <= 0) return;
    this.gcTimer = setInterval(() => void this.gcFromSource(), seconds * 1000);
    this.gcTimer.unref();
  }

  /**
   * Garbage collection driven by the source (issue 3): the addresses of a pod the source listed and no
   * longer lists are released once it has stayed unlisted for the grace period (gcGraceMs), re-checked
   * against the source right before release. Pods the source never listed are never released this way:
   * pod-less CNI calls (namespace `_cni`), containers a runtime runs without a manifest, a source with no
   * Pod manifests at all, pods deleted while the daemon was down. CNI GC and DEL cover those.
   */
  gcFromSource(): Promise<GcReport | undefined> {
    this.collecting ??= this.collect().finally(() => (this.collecting = null));
    return this.collecting;
  }

  private async collect(): Promise<GcReport | undefined> {
    if (!this.source.ready()) return undefined;
    this.notePods();
    // Only pods the source was seen listing can be "gone" (notePods); the grace period and the re-check right
    // before release cover a source that empties for a moment (a manifest directory being rewritten).
    const gone: { namespace: string; name: string }[] = [];
    const holding = new Set<string>();
    for (const p of this.ipam.pods()) {
      const key = podKey(p);
      holding.add(key);
      if (this.listed.has(key) && !this.sourcePod(key)) gone.push({ namespace: p.namespace, name: p.name });
    }
    for (const key of this.listed) if (!holding.has(key)) this.listed.delete(key);
    try {
      const report = await this.ipam.gc({ gonePods: gone, recheck: (c) => c.pod === undefined || !this.sourcePod(c.pod) });
      if (report.released.length || report.waiting.length) {
        this.log.info({ released: report.released.map((c) => c.id), waiting: report.waiting.length }, 'IPAM garbage collection (source)');
      }
      return report;
    } catch (e) {
      this.log.warn({ err: errorText(e) }, 'IPAM garbage collection (source) failed');
      return undefined;
    }
  }

  /** After CNI GC: every address not held by a kept attachment is a candidate (grace period, re-check). */
  async afterGc(kept: ValidAttachment[], log: Logger): Promise<void> {
    const report = await this.ipam.gc({ attachments: kept.map((k) => ({ containerId: k.containerID, ifName: k.ifname })) });
    log.info({ released: report.released.length, waiting: report.waiting.length }, 'IPAM garbage collection');
  }


  async view(name: string): Promise<string | undefined> {
    switch (name) {
      case 'v1/ipam/pools':
        return JSON.stringify(await this.ipam.pools(), null, 2);
      case 'v1/ipam/blocks':
        return JSON.stringify(await this.ipam.blocks(), null, 2);
      case 'v1/ipam/pods':
        return JSON.stringify(this.ipam.pods(), null, 2);
      default:
        return undefined;
    }
  }

  async close(): Promise<void> {
    if (this.gcTimer) clearInterval(this.gcTimer);
    await this.collecting;
    await this.claimsSaved;
    return this.ipam.close();
  }
}

/** The `ipam` sections of a NAD's plugins that use plexus-ipam, with the network name they are called with. */
function plexusIpamSections(nad: NadObject): { network: string; section: Record<string, unknown> }[] {
  if (!nad.config?.trim()) return [];
  let list;
  try {
    list = toConfList(JSON.parse(nad.config), nad.name, '1.1.0', `network attachment definition ${podKey(nad)}`);
  } catch {
    return []; // the planner reports a broken NAD when a pod uses it
  }
  const out: { network: string; section: Record<string, unknown> }[] = [];
  for (const plugin of list.plugins) {
    const ipam = (plugin as { ipam?: unknown }).ipam;
    if (typeof ipam === 'object' && ipam !== null && (ipam as { type?: unknown }).type === IPAM_PLUGIN_TYPE) {
      out.push({ network: list.name, section: ipam as Record<string, unknown> });
    }
  }
  return out;
}

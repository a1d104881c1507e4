/**
 * The daemon's IPAM service: opens the address service on this node, keeps its pools in step with the
 * config and the source's IPPool manifests, collects garbage after CNI GC, and serves operator views.
 */
import type { Logger } from 'pino';
import { errorText } from '../cni/errors';
import { Ipam, openIpam, type PoolSpec } from '../../ipam';
import { parseIpamConfig, poolSpecFromManifest } from '../../ipam/pool-schema';
import type { ValidAttachment } from '../../delegates/conflist';
import type { Source } from '../source/source';
import type { DaemonConfig } from './config';

export const IPPOOL_KIND = 'IPPool';

export class IpamService {
  /** Pools other components own (plexus-ipam's inline ranges), read at every refresh. */
  private readonly kept: (() => PoolSpec[])[] = [];

  private constructor(
    readonly ipam: Ipam,
    private readonly config: DaemonConfig,
    private readonly source: Source,
    private readonly log: Logger,
  ) {}

  static async open(config: DaemonConfig, source: Source, log: Logger): Promise<IpamService> {
    const ipam = await openIpam({ config: config.ipam, node: config.nodeName, stateDir: config.stateDir });
    const service = new IpamService(ipam, config, source, log);
    for (const w of ipam.warnings) log.warn({ warning: w }, 'IPAM recovery');
    service.refreshPools();
    source.onChange(() => service.refreshPools());
    return service;
  }

  /** The config's pools, then IPPool manifests (a bad manifest is reported and skipped), then the rest. */
  refreshPools(): void {
    const specs: PoolSpec[] = [...(parseIpamConfig(this.config.ipam).config.pools ?? [])];
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

  /** Let another component (plexus-ipam's inline ranges) own pools that refreshes must keep. */
  keepPools(provider: () => PoolSpec[]): void {
    this.kept.push(provider);
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
      case 'metrics':
        return this.ipam.metricsText();
      default:
        return undefined;
    }
  }

  close(): Promise<void> {
    return this.ipam.close();
  }
}

/**
 * The daemon's CNI request handler: decode, plan, run, publish status, answer. The only place that logs a
 * request's outcome (STYLE 8): one child logger per request bound to {cmd, containerId, ifName, pod}.
 */
import type { Logger } from 'pino';
import { PlexusError, errorText } from '../../core/errors';
import { CniRequest, Env, parseRequest } from '../../cni/request';
import { LATEST_VERSION, configVersion, isSupportedVersion, versionInfo } from '../../cni/version';
import { podKey } from '../../cni/ids';
import type { ValidAttachment } from '../../delegates/conflist';
import { plan as makePlan } from '../planner/planner';
import { NETWORKS_ANNOTATION, parseNetworksAnnotation } from '../planner/annotation';
import { RESOURCE_NAME_ANNOTATION } from '../planner/devices';
import type { Plan, PodObject } from '../planner/types';
import type { NetworkConfList } from '../../cni/network-config';
import type { Runner } from '../runner/runner';
import type { Source } from '../source/source';
import type { DaemonConfig } from './config';
import type { ConfDir } from './conf-dir';
import { KeyedMutex, Semaphore } from './locks';
import type { PluginName } from './server';

export interface Reply {
  status: number;
  body: string;
}

export interface HandlerDeps {
  config: DaemonConfig;
  source: Source;
  runner: Runner;
  confDir: ConfDir;
  log: Logger;
  /** Devices the device plugin gave a pod, per resource (the SR-IOV work implements the real lookup). */
  devicesFor(pod: PodObject | null, resourceNames: string[]): Promise<Record<string, string[]>>;
  isReady(): boolean;
  /** The CNI IPAM plugin plexus-ipam, served by this daemon's IPAM service. */
  ipamPlugin?: { handle(req: CniRequest): Promise<string> };
  /** plexus-routed, served in-process (meta-plugin/daemon/routed.ts). */
  routed?: { handle(req: CniRequest, log: Logger): Promise<string> };
  /**
   * Called after GC tore down stale sandboxes, with every attachment (container ID, delegate ifname) that
   * remains: the IPAM service collects addresses held by anything else.
   */
  afterGc?(kept: ValidAttachment[], log: Logger): Promise<void>;
}

export class CniHandler {
  private readonly podLocks = new KeyedMutex();
  private readonly slots: Semaphore;
  /**
   * plexus-ipam requests come from delegates while their pod's ADD holds a slot and the pod's lock, so they
   * get slots and lock keys of their own: sharing either would deadlock.
   */
  private readonly ipamSlots: Semaphore;

  constructor(private deps: HandlerDeps) {
    this.slots = new Semaphore(deps.config.limits.maxConcurrentRequests);
    this.ipamSlots = new Semaphore(deps.config.limits.maxConcurrentRequests);
  }

  /** The routed datapath, when this node runs it (`bin/plexus-routed` invocations land here). */
  setRouted(routed: NonNullable<HandlerDeps['routed']>): void {
    this.deps.routed = routed;
  }

  /** The IPAM service opens after the handler exists (it needs the loaded source). */
  setIpamPlugin(plugin: NonNullable<HandlerDeps['ipamPlugin']>): void {
    this.deps.ipamPlugin = plugin;
  }

  get inFlight(): number {
    return this.slots.inFlight + this.ipamSlots.inFlight;
  }

  async handle(env: Env, configText: string, invokedAs: PluginName = 'plexus'): Promise<Reply> {
    let req: CniRequest | undefined;
    let log = this.deps.log;
    const started = process.hrtime.bigint();
    try {
      if (env['CNI_COMMAND'] === 'VERSION') return ok(JSON.stringify(versionInfo()));
      req = parseRequest(env, configText);
      log = log.child({ ...requestBindings(req), ...(invokedAs === 'plexus' ? {} : { plugin: invokedAs }) });
      const body = invokedAs === 'plexus-ipam'
        ? await this.ipam(req, log)
        : await this.slots.run(() => this.podLocks.run(lockKey(req!), () => (invokedAs === 'plexus-routed' ? this.routed(req!, log) : this.dispatch(req!, log))));
      log.info({ ms: msSince(started) }, `${req.command} done`);
      return ok(body);
    } catch (e) {
      const err = e instanceof PlexusError ? e : new PlexusError('Internal', errorText(e), { cause: e });
      log.error({ code: err.code, cniCode: err.cniCode, err: err.message, ms: msSince(started) }, `${req?.command ?? env['CNI_COMMAND'] ?? 'request'} failed`);
      return { status: httpStatusFor(err), body: JSON.stringify(err.toCni(errorVersion(req, configText))) };
    }
  }

  private async ipam(req: CniRequest, log: Logger): Promise<string> {
    const plugin = this.deps.ipamPlugin;
    if (!plugin) throw new PlexusError('NotAvailable', 'plexus-ipam: this daemon runs no IPAM service');
    const key = `ipam:${req.containerId ?? ''}@${req.ifName ?? ''}`;
    log.debug('plexus-ipam request');
    return this.ipamSlots.run(() => this.podLocks.run(key, () => plugin.handle(req)));
  }

  private async routed(req: CniRequest, log: Logger): Promise<string> {
    const routed = this.deps.routed;
    if (!routed) throw new PlexusError('NotAvailable', 'plexus-routed: this daemon runs no routed datapath (its config has no `routed` section)');
    return routed.handle(req, log);
  }

  private async dispatch(req: CniRequest, log: Logger): Promise<string> {
    switch (req.command) {
      case 'ADD':
        return this.add(req, log);
      case 'DEL':
        await this.del(req, log);
        return '';
      case 'CHECK':
        await this.deps.runner.check(req, log);
        return '';
      case 'GC': {
        const kept = await this.deps.runner.gc(validAttachments(req.config), [this.clusterConf(req)], req.path, log);
        await this.deps.afterGc?.(kept, log);
        return '';
      }
      case 'STATUS':
        if (!this.deps.isReady()) throw new PlexusError('NotAvailable', 'plexus daemon is starting');
        await this.deps.runner.status(this.clusterConfForStatus(req), req.path, log);
        return '';
      default:
        throw new PlexusError('InvalidEnv', `unexpected command ${req.command}`);
    }
  }

  private async add(req: CniRequest, log: Logger): Promise<string> {
    const existing = this.deps.runner.recordOf(req);
    if (existing) {
      // The runtime must DEL before a second ADD (CNI 2.1); a retried ADD after a crash still converges.
      log.warn('ADD for a container that already has attachments: removing them first');
      await this.deps.runner.delRecord(existing, req.netns ?? '', req.path, log);
    }
    const pod = this.podOf(req);
    const plan = await this.planFor(req, pod);
    for (const w of plan.warnings) log.warn({ warning: w }, 'annotation problem');
    const { result, record } = await this.deps.runner.add(req, plan, log);
    if (req.podRef && record.status) await this.deps.source.publishStatus(req.podRef, record.status);
    return JSON.stringify(result);
  }

  private async del(req: CniRequest, log: Logger): Promise<void> {
    const rec = await this.deps.runner.del(req, log);
    if (rec?.pod) await this.deps.source.publishStatus(rec.pod, null);
  }

  /** The pod as the source knows it; a UID that disagrees with the runtime's means a stale view (retry). */
  private podOf(req: CniRequest): PodObject | null {
    if (!req.podRef) return null;
    const pod = this.deps.source.getPod(req.podRef.namespace, req.podRef.name) ?? null;
    if (pod && req.podRef.uid && pod.uid && pod.uid !== req.podRef.uid) {
      throw new PlexusError('PodMismatch', `pod ${podKey(req.podRef)}: runtime UID ${req.podRef.uid} differs from source UID ${pod.uid}`);
    }
    return pod;
  }

  async planFor(req: CniRequest, pod: PodObject | null): Promise<Plan> {
    const c = this.deps.config;
    const resources = resourceNamesOf(this.deps.source, pod);
    const devices = resources.length > 0 ? await this.deps.devicesFor(pod, resources) : {};
    return makePlan({
      podRef: req.podRef,
      pod,
      ifName: req.ifName!,
      cniVersion: req.cniVersion,
      runtimeConfig: runtimeConfigOf(req.config),
      settings: {
        clusterNetwork: c.clusterNetwork,
        multusNamespace: c.multusNamespace,
        defaultNetworks: [...c.defaultNetworks],
        systemNamespaces: [...c.systemNamespaces],
        namespaceIsolation: c.namespaceIsolation,
        globalNamespaces: [...c.globalNamespaces],
      },
      lookupNad: (ns, name) => this.deps.source.getNad(ns, name),
      confFiles: this.deps.confDir.files(),
      devices,
    });
  }

  /** STATUS: a cluster network that cannot be resolved means "not available" (50), not an error of ours. */
  private clusterConfForStatus(req: CniRequest): NetworkConfList {
    try {
      return this.clusterConf(req);
    } catch (e) {
      throw new PlexusError('NotAvailable', `cluster network "${this.deps.config.clusterNetwork}" is not available: ${errorText(e)}`, { cause: e });
    }
  }

  /** The cluster network's config as it would be planned now (for STATUS and GC). */
  private clusterConf(req: CniRequest): NetworkConfList {
    const c = this.deps.config;
    const p = makePlan({
      podRef: null,
      pod: null,
      ifName: 'eth0' as never,
      cniVersion: req.cniVersion,
      runtimeConfig: {},
      settings: { clusterNetwork: c.clusterNetwork, multusNamespace: c.multusNamespace, defaultNetworks: [], systemNamespaces: [], namespaceIsolation: false, globalNamespaces: [] },
      lookupNad: (ns, name) => this.deps.source.getNad(ns, name),
      confFiles: this.deps.confDir.files(),
      devices: {},
    });
    return p.attachments[0]!.conf;
  }
}

/**
 * Resource names of the NADs a pod's annotation selects, so devices are looked up only when needed. The
 * annotation is read by the planner's own parser; an invalid one selects nothing (the planner ignores it).
 */
function resourceNamesOf(source: Source, pod: PodObject | null): string[] {
  const ann = pod?.annotations[NETWORKS_ANNOTATION];
  if (!pod || !ann) return [];
  let parsed: ReturnType<typeof parseNetworksAnnotation>;
  try {
    parsed = parseNetworksAnnotation(ann, pod.namespace);
  } catch {
    return []; // S21 errors are the planner's to report
  }
  if (!parsed.ok) return [];
  const names = new Set<string>();
  for (const sel of parsed.selections) {
    const rn = source.getNad(sel.namespace, sel.name)?.annotations[RESOURCE_NAME_ANNOTATION];
    if (rn) names.add(rn);
  }
  return [...names];
}

function runtimeConfigOf(config: Record<string, unknown>): Record<string, unknown> {
  const rc = config['runtimeConfig'];
  return rc && typeof rc === 'object' && !Array.isArray(rc) ? (rc as Record<string, unknown>) : {};
}

function validAttachments(config: Record<string, unknown>): ValidAttachment[] {
  const raw = config['cni.dev/valid-attachments'] ?? config['cni.dev/attachments'] ?? [];
  if (!Array.isArray(raw)) throw new PlexusError('InvalidConfig', '"cni.dev/valid-attachments" must be a list');
  return raw.map((a, i) => {
    const v = a as Partial<ValidAttachment> | null;
    if (!v || typeof v.containerID !== 'string' || typeof v.ifname !== 'string') {
      throw new PlexusError('InvalidConfig', `"cni.dev/valid-attachments"[${i}] needs string "containerID" and "ifname"`);
    }
    return { containerID: v.containerID, ifname: v.ifname };
  });
}

const lockKey = (req: CniRequest): string =>
  req.podRef ? `pod:${podKey(req.podRef)}` : req.containerId ? `ctr:${req.containerId}` : `cmd:${req.command}`;

function requestBindings(req: CniRequest): Record<string, unknown> {
  const b: Record<string, unknown> = { cmd: req.command };
  if (req.containerId) b['containerId'] = req.containerId;
  if (req.ifName) b['ifName'] = req.ifName;
  if (req.podRef) b['pod'] = podKey(req.podRef);
  return b;
}

function errorVersion(req: CniRequest | undefined, configText: string): string {
  if (req) return req.cniVersion;
  try {
    const v = configVersion(JSON.parse(configText) as Record<string, unknown>);
    return isSupportedVersion(v) ? v : LATEST_VERSION;
  } catch {
    return LATEST_VERSION;
  }
}

/** HTTP status carries no CNI meaning; the shim only tells 200 from the rest. 503 marks "not ready". */
function httpStatusFor(err: PlexusError): number {
  if (err.cniCode === 50 || err.cniCode === 51) return 503;
  if (err.cniCode >= 1 && err.cniCode <= 7) return 400;
  return 500;
}

const ok = (body: string): Reply => ({ status: 200, body });
const msSince = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

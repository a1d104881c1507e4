/**
 * The daemon's CNI request handler: decode, plan, run, publish status, answer. The only place that logs a
 * request's outcome (STYLE 8): one child logger per request bound to {cmd, containerId, ifName, pod}.
 */
import type { Logger } from 'pino';
import { PlexusError, errorText } from '../../core/errors';
import { KeyedMutex, Semaphore } from '../../core/locks';
import { podKey } from '../../cni/ids';
import { CniRequest, Env, parseRequest } from '../../cni/request';
import { LATEST_VERSION, configVersion, isSupportedVersion, versionInfo } from '../../cni/version';
import { parseValidAttachments, type ValidAttachment } from '../../cni/valid-attachments';
import type { NetworkConfList } from '../../cni/network-config';
import type { DelegateEnv } from '../../delegates/contract';
import { IPAM_PLUGIN_TYPE } from '../../ipam';
import type { Registry } from '../../delegates/registry';
import type { PluginName } from '../api/protocol';
import { clusterNetworkConf, plan as makePlan, resourceNamesFor } from '../planner/planner';
import type { DeviceLookup } from '../planner/devices';
import type { Plan, PlanSettings, PodObject } from '../planner/types';
import type { Runner } from '../runner/runner';
import type { AttachmentRecord, SandboxRecord } from '../runner/sandbox-records';
import { parseResult } from '../../cni/result';
import type { PodRef } from '../../cni/ids';
import { NETWORKS_ANNOTATION } from '../planner/annotation';
import type { Source } from '../source/source';
import type { DaemonConfig } from './config';
import type { ConfDir } from './conf-dir';
import type { DaemonMetrics } from './metrics';
import type { CniReply } from './server';

export interface HandlerDeps {
  readonly config: DaemonConfig;
  readonly source: Source;
  readonly runner: Runner;
  /** The built-in delegates, served to runtimes that exec them by name (bin/plexus-ipam, bin/plexus-routed, bin/plexus-sriov, bin/plexus-dpdk). */
  readonly registry: Registry;
  readonly confDir: ConfDir;
  readonly log: Logger;
  /** Where each answered request is counted (`request(command, plugin, result, ms)`). */
  readonly metrics: Pick<DaemonMetrics, 'request'>;
  /** Devices the device plugin gave a pod, per resource (the SR-IOV work implements the real lookup). */
  readonly devices: DeviceLookup;
  isReady(): boolean;
  /**
   * Called after GC tore down stale sandboxes, with every attachment (container ID, delegate ifname) that
   * remains: the IPAM service collects addresses held by anything else.
   */
  afterGc(kept: ValidAttachment[], log: Logger): Promise<void>;
}

export class CniHandler {
  private readonly podLocks = new KeyedMutex();
  private readonly slots: Semaphore;
  private active = 0;
  /** The daemon settings the planner reads, from the config once. */
  private readonly settings: PlanSettings;

  constructor(private readonly deps: HandlerDeps) {
    const c = deps.config;
    this.slots = new Semaphore(c.limits.maxConcurrentRequests);
    this.settings = {
      clusterNetwork: c.clusterNetwork,
      multusNamespace: c.multusNamespace,
      defaultNetworks: [...c.defaultNetworks],
      systemNamespaces: [...c.systemNamespaces],
      namespaceIsolation: c.namespaceIsolation,
      globalNamespaces: [...c.globalNamespaces],
    };
  }

  /** Requests being answered now, whatever name they came under (shutdown waits for them). */
  get inFlight(): number {
    return this.active;
  }

  async handle(env: Env, configText: string, invokedAs: PluginName = 'plexus'): Promise<CniReply> {
    let req: CniRequest | undefined;
    let log = this.deps.log;
    const started = process.hrtime.bigint();
    this.active++;
    try {
      if (env['CNI_COMMAND'] === 'VERSION') return { ok: true, output: JSON.stringify(versionInfo()) };
      req = parseRequest(env, configText);
      const r = req;
      log = log.child({ ...requestBindings(r), ...(invokedAs === 'plexus' ? {} : { plugin: invokedAs }) });
      // What the request's own log line reports besides its duration (ADD: the time its delegates took).
      const done: Record<string, number> = {};
      const output = invokedAs === 'plexus' ? await this.serialised(r, () => this.dispatch(r, log, done)) : await this.builtin(invokedAs, r, log);
      const ms = msSince(started);
      log.info({ ms, ...done }, `${r.command} done`);
      this.deps.metrics.request(r.command, invokedAs, 'ok', ms);
      return { ok: true, output };
    } catch (e) {
      const err = e instanceof PlexusError ? e : new PlexusError('Internal', errorText(e), { cause: e });
      const ms = msSince(started);
      log.error({ code: err.code, cniCode: err.cniCode, err: err.message, ms }, `${req?.command ?? env['CNI_COMMAND'] ?? 'request'} failed`);
      this.deps.metrics.request(req?.command ?? 'invalid', invokedAs, String(err.cniCode), ms);
      return { ok: false, error: err, cniVersion: errorVersion(req, configText) };
    } finally {
      this.active--;
    }
  }

  /** S34: one pod's requests one at a time; pods in parallel up to maxConcurrentRequests. */
  private serialised<T>(req: CniRequest, fn: () => Promise<T>): Promise<T> {
    return this.slots.run(() => this.podLocks.run(lockKey(req), fn));
  }

  /**
   * A runtime exec'd a built-in by name. plexus-ipam has slots and per-attachment locks of its own (its
   * requests come from inside a pod's ADD, which holds this pod's lock); any other runs under the pod's lock.
   */
  private async builtin(name: Exclude<PluginName, 'plexus'>, req: CniRequest, log: Logger): Promise<string> {
    const delegate = this.deps.registry.builtin(name);
    if (!delegate) throw new PlexusError('NotAvailable', `${name}: ${NOT_SERVED[name] ?? 'not served by this daemon'}`);
    const timeoutMs = this.deps.config.limits.delegateTimeoutSeconds * 1000;
    const run = () => delegate.exec({ command: req.command, env: delegateEnvOf(req), config: req.config, timeoutMs, log });
    const out = name === IPAM_PLUGIN_TYPE ? await run() : await this.serialised(req, run);
    return out === undefined ? '' : JSON.stringify(out);
  }

  private async dispatch(req: CniRequest, log: Logger, done: Record<string, number>): Promise<string> {
    switch (req.command) {
      case 'ADD':
        return this.add(req, log, done);
      case 'DEL':
        await this.del(req, log);
        return '';
      case 'CHECK':
        await this.deps.runner.check(req, log);
        return '';
      case 'GC': {
        const kept = await this.deps.runner.gc(parseValidAttachments(req.config), [this.clusterConf(req.cniVersion)], req.path, log);
        await this.deps.afterGc(kept, log);
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

  private async add(req: CniRequest, log: Logger, done: Record<string, number>): Promise<string> {
    const existing = this.deps.runner.recordOf(req);
    if (existing) {
      // The runtime must DEL before a second ADD (CNI 2.1); a retried ADD after a crash still converges.
      log.warn('ADD for a container that already has attachments: removing them first');
      await this.deps.runner.delRecord(existing, req.netns ?? '', req.path, log);
    }
    try {
      const pod = await this.podOf(req);
      const plan = await this.planFor(req, pod);
      for (const w of plan.warnings) log.warn({ warning: w }, 'annotation problem');
      const { result, record, delegatesMs } = await this.deps.runner.add(req, plan, log);
      done['delegatesMs'] = Math.round(delegatesMs * 100) / 100;
      if (req.podRef && record.status) {
        await this.deps.source.publishStatus(req.podRef, record.status);
        // One event per attachment, as Multus records them (`kubectl describe pod` shows them).
        for (const s of record.status) this.deps.source.event(req.podRef, { type: 'Normal', reason: 'AddedInterface', message: `Add ${s.interface ?? ''} [${(s.ips ?? []).join(', ')}] from ${s.name}` });
        await this.writeClaims(req.podRef, record.attachments, log);
      }
      return JSON.stringify(result);
    } catch (e) {
      if (req.podRef) this.deps.source.event(req.podRef, { type: 'Warning', reason: 'AttachFailed', message: errorText(e) });
      throw e;
    }
  }

  private async del(req: CniRequest, log: Logger): Promise<void> {
    const rec = await this.deps.runner.del(req, log);
    // A pod's deletion never waits on the source: clearing network-status is best effort.
    if (rec?.pod) await this.deps.source.publishStatus(rec.pod, null).catch((e: unknown) => log.warn({ err: errorText(e) }, 'network-status not cleared'));
  }

  /** The pod as the source knows it; a UID that disagrees with the runtime's means a stale view (retry). */
  private async podOf(req: CniRequest): Promise<PodObject | null> {
    if (!req.podRef) return null;
    const pod = (await this.deps.source.podForAdd(req.podRef)) ?? null;
    if (pod && req.podRef.uid && pod.uid && pod.uid !== req.podRef.uid) {
      throw new PlexusError('PodMismatch', `pod ${podKey(req.podRef)}: runtime UID ${req.podRef.uid} differs from source UID ${pod.uid}`);
    }
    return pod;
  }

  private async planFor(req: PlanTarget, pod: PodObject | null): Promise<Plan> {
    const lookupNad = (ns: string, name: string) => this.deps.source.getNad(ns, name);
    const resources = resourceNamesFor(pod, lookupNad);
    // The kubelet checkpoint is matched by UID: the runtime's, else the source's.
    const uid = req.podRef?.uid ?? pod?.uid;
    const who = pod ? { namespace: pod.namespace, name: pod.name, ...(uid ? { uid } : {}) } : null;
    const answer = who && resources.length > 0 ? await this.deps.devices.devicesFor(who, resources) : { devices: {} };
    const plan = makePlan({
      podRef: req.podRef,
      pod,
      ifName: req.ifName!,
      cniVersion: req.cniVersion,
      runtimeConfig: runtimeConfigOf(req.config),
      settings: this.settings,
      lookupNad,
      confFiles: this.deps.confDir.files(),
      devices: answer.devices,
      ...(answer.problem ? { devicesProblem: answer.problem } : {}),
    });
    const networks = pod?.annotations[NETWORKS_ANNOTATION];
    if (networks !== undefined) plan.networks = networks;
    return plan;
  }

  /**
   * S37: the addresses of attachments made for an IPAMClaim (`ipam-claim-reference`) go into the claim's status.
   * A claim whose status cannot be written keeps its addresses all the same: logged, never a failed ADD.
   */
  private async writeClaims(pod: PodRef, attachments: readonly AttachmentRecord[], log: Logger): Promise<void> {
    for (const att of attachments) {
      const claim = att.runtimeConfig['ipamClaimReference'];
      if (typeof claim !== 'string' || att.result === undefined) continue;
      const ips = (parseResult(att.result, att.conf.cniVersion).ips ?? []).map((i) => i.address);
      await this.deps.source.claimStatus(pod.namespace, claim, ips).then(
        () => log.info({ claim: `${pod.namespace}/${claim}`, ips }, 'IPAMClaim status written'),
        (e: unknown) => log.warn({ claim: `${pod.namespace}/${claim}`, err: errorText(e) }, 'IPAMClaim status not written'),
      );
    }
  }

  /**
   * Hot-plug: `pod`'s networks annotation differs from the one its attachments in `rec` were made from. Under
   * the pod's lock (a DEL or another change waits), the runner attaches what was added and detaches what was
   * removed in the recorded netns; network-status follows, with an event per interface. A failure changes
   * nothing (rolled back), is logged and recorded as a Warning event, and is retried at the next change.
   */
  async hotplug(rec: SandboxRecord, pod: PodObject): Promise<void> {
    const ref = rec.pod!;
    const log = this.deps.log.child({ pod: podKey(ref), containerId: rec.containerId, op: 'hotplug' });
    await this.slots.run(() => this.podLocks.run(`pod:${podKey(ref)}`, async () => {
      const current = this.deps.runner.recordAt(rec.containerId, rec.ifName);
      const networks = pod.annotations[NETWORKS_ANNOTATION];
      if (!current || current.networks === networks) return; // deleted meanwhile, or already done
      const req: PlanTarget = { podRef: ref, ifName: current.ifName, cniVersion: current.cniVersion, config: {} };
      try {
        const plan = await this.planFor(req, pod);
        const { added, removed } = await this.deps.runner.hotplug(current, plan, log);
        if (current.status) await this.deps.source.publishStatus(ref, current.status);
        await this.writeClaims(ref, added, log);
        for (const a of added) this.deps.source.event(ref, { type: 'Normal', reason: 'AddedInterface', message: `Add ${a.ifName} from ${a.statusName} (hot-plug)` });
        for (const a of removed) this.deps.source.event(ref, { type: 'Normal', reason: 'RemovedInterface', message: `Remove ${a.ifName} from ${a.statusName} (hot-plug)` });
        log.info({ added: added.map((a) => `${a.statusName}:${a.ifName}`), removed: removed.map((a) => `${a.statusName}:${a.ifName}`) }, 'hot-plug done');
      } catch (e) {
        log.warn({ err: errorText(e) }, 'hot-plug failed; retried at the next change');
        this.deps.source.event(ref, { type: 'Warning', reason: 'HotplugFailed', message: errorText(e) });
      }
    }));
  }

  /** STATUS: a cluster network that cannot be resolved means "not available" (50), not an error of ours. */
  private clusterConfForStatus(req: CniRequest): NetworkConfList {
    try {
      return this.clusterConf(req.cniVersion);
    } catch (e) {
      throw new PlexusError('NotAvailable', `cluster network "${this.deps.config.clusterNetwork}" is not available: ${errorText(e)}`, { cause: e });
    }
  }

  /** The CNI name of the cluster network's config as planned now (policy tells its endpoints by it). */
  clusterNetworkName(): string | undefined {
    try {
      return this.clusterConf(LATEST_VERSION).name;
    } catch {
      return undefined;
    }
  }

  /** The cluster network's config as it would be planned now (for STATUS and GC). */
  private clusterConf(cniVersion: string): NetworkConfList {
    return clusterNetworkConf({
      settings: this.settings,
      lookupNad: (ns, name) => this.deps.source.getNad(ns, name),
      confFiles: this.deps.confDir.files(),
      cniVersion,
    });
  }
}

function runtimeConfigOf(config: Record<string, unknown>): Record<string, unknown> {
  const rc = config['runtimeConfig'];
  return rc && typeof rc === 'object' && !Array.isArray(rc) ? (rc as Record<string, unknown>) : {};
}

/** Why a built-in a runtime exec'd is not served here (plexus-ipam always is). */
const NOT_SERVED: Partial<Record<PluginName, string>> = {
  'plexus-routed': 'this daemon runs no routed datapath (its config has no `routed` section)',
  'plexus-sriov': 'this daemon runs no SR-IOV delegate (its config has no `sriov` section)',
  'plexus-dpdk': 'this daemon drives no DPDK engine (its config has no `dpdk` section)',
};

/** The CNI env of a runtime's request, as a delegate call carries it. */
function delegateEnvOf(req: CniRequest): DelegateEnv {
  return { containerId: req.containerId ?? '', netns: req.netns ?? '', ifName: req.ifName ?? '', args: req.argsRaw, path: req.path };
}

/** What a plan needs of a request: a runtime's, or a hot-plug's made from the pod's record. */
type PlanTarget = Pick<CniRequest, 'podRef' | 'ifName' | 'config'> & { cniVersion: string };

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

const msSince = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

/**
 * Runs a plan: ADD attaches networks in order and rolls back on failure (S32); DEL tears every attachment
 * down in reverse, past failures (S33); CHECK verifies every attachment; GC removes what the runtime no longer
 * knows. Works only from the record (`records.ts`), never from the current NADs, once ADD has begun.
 */
import type { Logger } from 'pino';
import { PlexusError, context, errorText } from '../../core/errors';
import { CniRequest, isNetnsPath } from '../../cni/request';
import { CniResult, convertResult, parseResult } from '../../cni/result';
import type { ContainerId, IfName } from '../../cni/ids';
import type { DelegateRegistry, Prestarted } from '../../delegates/contract';
import type { ValidAttachment } from '../../cni/valid-attachments';
import { NetworkCall, addNetwork, checkNetwork, delNetwork, gcNetwork, negotiateVersion, prestartNetwork, statusNetwork } from '../../delegates/conflist';
import type { Plan, PlannedAttachment } from '../planner/types';
import type { NetworkConfList } from '../../cni/network-config';
import { NetworkStatus, defaultGateways, networkStatusOf } from '../status/network-status';
import { AttachmentRecord, RecordStore, SandboxRecord } from './sandbox-records';
import { UndoStack } from '../../core/undo-stack';
import { DefaultRouteOps, applyDefaultRoute, gatewaysOf } from './default-route';
import { cniFilePath, prepareDeviceInfo, readDeviceInfo, removeDeviceInfo } from './device-info';

export interface RunnerDeps {
  records: RecordStore;
  registry: DelegateRegistry;
  binDirs: string[];
  delegateTimeoutMs: number;
  /** Start each next plugin's process while the current one works (`prestartDelegates`, D-13). */
  prestartDelegates?: boolean;
  routes: DefaultRouteOps;
  /** Checks that an interface exists in a netns (CHECK). */
  linkExists(netns: string, ifName: string): Promise<boolean>;
  deviceInfoDir: string;
  /** Told of each secondary network's pod interface (MultiNetworkPolicy enforcement). */
  watcher?: AttachmentWatcher;
}

/** A pod's interface on a secondary network (one of its NADs), as the runner's watcher learns of it. */
export interface PodInterface {
  /** `<containerId>@<ifName>`: unique on the node. */
  readonly id: string;
  readonly containerId: string;
  /** The NAD, `namespace/name`. */
  readonly network: string;
  readonly pod?: { readonly namespace: string; readonly name: string };
  readonly ifName: string;
  readonly netns: string;
  /** The addresses the delegate's result gives the interface (without prefix length). */
  readonly ips: readonly string[];
  /** The network config its delegates ran with (which delegate serves it: a DPDK port has no kernel interface). */
  readonly conf: NetworkConfList;
}

/**
 * Told of every secondary attachment once its delegate has added it, before the pod's ADD (or hot-plug)
 * returns, and of every one before its delegate's DEL. A failure of `attached` fails the ADD; `detaching`
 * never fails a DEL.
 */
export interface AttachmentWatcher {
  attached(iface: PodInterface): Promise<void>;
  detaching(iface: PodInterface): Promise<void>;
}

/** The pod interface of a recorded secondary attachment; undefined for the cluster network and one not added. */
export function podInterfaceOf(rec: SandboxRecord, att: AttachmentRecord): PodInterface | undefined {
  if (att.isDefault || !att.nad || att.state !== 'added' || !rec.netns) return undefined;
  const result = (att.result ?? {}) as { interfaces?: Array<{ name?: string; sandbox?: string }>; ips?: Array<{ address?: string; interface?: number }> };
  const index = (result.interfaces ?? []).findIndex((i) => i.name === att.ifName && typeof i.sandbox === 'string' && i.sandbox !== '');
  const ips = (result.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === index).map((ip) => String(ip.address).split('/')[0]!);
  return {
    id: `${rec.containerId}@${att.ifName}`, containerId: rec.containerId, network: `${att.nad.namespace}/${att.nad.name}`,
    ...(rec.pod ? { pod: { namespace: rec.pod.namespace, name: rec.pod.name } } : {}),
    ifName: att.ifName, netns: rec.netns, ips, conf: att.conf,
  };
}

export class Runner {
  private readonly versionCache = new Map<string, string[]>();

  constructor(private readonly deps: RunnerDeps) {}

  private call(rec: SandboxRecord, att: AttachmentRecord, netns: string, path: string[], log: Logger, spent?: { ms: number }): NetworkCall {
    return {
      ...(spent ? { spent } : {}),
      conf: att.conf,
      runtimeConfig: att.runtimeConfig,
      env: { containerId: rec.containerId, netns, ifName: att.ifName, args: rec.cniArgs, path: [...this.deps.binDirs, ...path] },
      timeoutMs: this.deps.delegateTimeoutMs,
      log: log.child({ network: att.statusName, ifName: att.ifName }),
      registry: this.deps.registry,
    };
  }

  /**
   * 1. record the whole plan as `adding` (one durable write: after a crash, DEL tears down every planned
   *    attachment, which CNI DEL semantics make harmless for those never started); the first plugin's process
   *    starts meanwhile, but gets its config only once the record is durable (D-3, D-13);
   * 2. run the delegates in order, pushing an undo before each (S32: the first failure rolls back); each next
   *    plugin's process is started while the current one works and handed its config after (D-13);
   * 3. apply default-route (S19), build network-status, and write the final record before answering.
   */
  async add(req: CniRequest, plan: Plan, log: Logger): Promise<{ result: CniResult; record: SandboxRecord; delegatesMs: number }> {
    const rec = newRecord(req);
    if (plan.networks !== undefined) rec.networks = plan.networks;
    const spent = { ms: 0 };
    const undo = new UndoStack();
    let current: AttachmentRecord | undefined;
    const prestart = this.deps.prestartDelegates ?? false;
    let warm: Prestarted | undefined;
    const callOf = (att: AttachmentRecord): NetworkCall => ({ ...this.call(rec, att, req.netns!, req.path, log, spent), prestart });
    try {
      for (const planned of plan.attachments) rec.attachments.push(await this.prepareAttachment(rec, planned, req.netns!, req.path, log));
      // The first plugin's process loads while the record is synced; it gets its config after (D-3).
      if (prestart) warm = prestartNetwork(callOf(rec.attachments[0]!));
      this.deps.records.put(rec);
      for (const [i, att] of rec.attachments.entries()) {
        current = att;
        // CNI 2.2: after a failed delegate ADD, the delegate still gets a DEL, so undo is pushed first.
        undo.push(`${att.index}:${att.statusName}`, () => this.undoAttachment(rec, att, req.netns!, req.path, log));
        const adding = addNetwork({ ...callOf(att), ...(warm ? { first: warm } : {}) });
        // S29/S34 hold: the next network's first plugin only loads meanwhile, and gets its config after this one.
        const next = rec.attachments[i + 1];
        warm = prestart && next ? prestartNetwork(callOf(next)) : undefined;
        att.result = await adding;
        att.state = 'added';
        await this.announce(rec, att);
      }
      current = undefined;
      await applyDefaultRoute(rec, this.deps.routes);
      rec.status = statusOf(rec);
      this.deps.records.put(rec);
      undo.commit();
    } catch (e) {
      warm?.abandon();
      await this.rollBack(rec, undo, log);
      const where = current ? `failed to add network "${current.statusName}" (${current.ifName})` : 'failed to finish ADD';
      throw context(e, `${where} for ${podText(req)}`);
    }
    const def = rec.attachments[0]!;
    return { result: convertResult(parseResult(def.result, def.conf.cniVersion), req.cniVersion), record: rec, delegatesMs: spent.ms };
  }

  /** The record of one planned attachment: version negotiated when the config named none, device info set. */
  private async prepareAttachment(rec: SandboxRecord, planned: PlannedAttachment, netns: string, path: string[], log: Logger): Promise<AttachmentRecord> {
    const att = toRecord(planned);
    if (att.conf.cniVersionInjected) {
      att.conf = { ...att.conf, cniVersion: await negotiateVersion(this.call(rec, att, netns, path, log), this.versionCache) };
    }
    this.attachDeviceInfo(rec, att);
    return att;
  }

  private async rollBack(rec: SandboxRecord, undo: UndoStack, log: Logger): Promise<void> {
    const failures = await undo.unwind();
    for (const f of failures) log.warn({ network: f.what, err: errorText(f.error) }, 'rollback of attachment failed; kept for DEL');
    // Keep only what could not be undone; attachments never started are simply dropped.
    const failed = new Set(failures.map((f) => f.what));
    rec.attachments = rec.attachments.filter((a) => failed.has(`${a.index}:${a.statusName}`));
    if (rec.attachments.length === 0) this.deps.records.remove(rec.containerId, rec.ifName);
    else this.deps.records.put(rec);
  }

  /**
   * D2-D4. A device-plugin device: its DP file copied to the attachment's CNI file. No device, but a plugin
   * that takes `CNIDeviceInfoFile` (declared, or a built-in's such as plexus-dpdk's): it gets the path and may
   * write the file itself (D4, e.g. vhost-user or memif device-info), which network-status then carries.
   */
  private attachDeviceInfo(rec: SandboxRecord, att: AttachmentRecord): void {
    let file: string | undefined;
    if (att.resourceName && att.deviceId) {
      file = prepareDeviceInfo(this.deps.deviceInfoDir, att.resourceName, att.deviceId, rec.containerId, att.ifName);
    } else if (att.conf.plugins.some((p) => p.capabilities?.['CNIDeviceInfoFile'] === true || this.deps.registry.implicitCapabilities?.(p.type).includes('CNIDeviceInfoFile'))) {
      file = cniFilePath(this.deps.deviceInfoDir, rec.containerId, att.ifName);
    }
    if (!file) return;
    att.deviceInfoFile = file;
    // D4: only plugins that declare the capability get it (filtered per plugin by conflist.ts).
    att.runtimeConfig = { ...att.runtimeConfig, CNIDeviceInfoFile: file };
  }

  /**
   * Rollback of one attachment. A delegate whose ADD failed returned nothing and must clean up after
   * itself (CNI 2.2); its DEL is still sent, but if that fails too (a config that can never work, such as
   * a missing macvlan master) it is logged, not kept: keeping it would make every later DEL fail forever.
   */
  private async undoAttachment(rec: SandboxRecord, att: AttachmentRecord, netns: string, path: string[], log: Logger): Promise<void> {
    try {
      await this.delAttachment(rec, att, netns, path, log);
    } catch (e) {
      if (att.state === 'added') throw e;
      log.warn({ network: att.statusName, ifName: att.ifName, err: errorText(e) }, 'DEL after failed ADD failed; nothing was recorded as added');
    }
  }

  /** Tells the watcher of a secondary attachment just added (its failure fails the ADD, which rolls back). */
  private async announce(rec: SandboxRecord, att: AttachmentRecord): Promise<void> {
    const iface = this.deps.watcher && podInterfaceOf(rec, att);
    if (iface) await this.deps.watcher!.attached(iface);
  }

  private async delAttachment(rec: SandboxRecord, att: AttachmentRecord, netns: string, path: string[], log: Logger, first?: Prestarted): Promise<void> {
    try {
      const iface = this.deps.watcher && podInterfaceOf(rec, att);
      if (iface) {
        try {
          await this.deps.watcher!.detaching(iface);
        } catch (e) {
          log.warn({ network: att.statusName, ifName: att.ifName, err: errorText(e) }, 'forgetting the interface\'s policy failed; the DEL goes on');
        }
      }
      try {
        await delNetwork({ ...this.call(rec, att, netns, path, log), prestart: this.deps.prestartDelegates ?? false, ...(first ? { first } : {}) }, att.result);
      } catch (e) {
        // The interface stays (its DEL is retried later): its policy must stay with it.
        if (iface) await this.deps.watcher!.attached(iface).catch((err: unknown) => log.warn({ network: att.statusName, err: errorText(err) }, 'the interface\'s policy could not be put back'));
        throw e;
      }
      if (att.deviceInfoFile) removeDeviceInfo(att.deviceInfoFile);
    } finally {
      first?.abandon(); // unused if anything failed before delNetwork took it; a no-op once it ran
    }
  }

  /**
   * Hot-plug: brings a running pod's annotation attachments to what `plan` (made from its changed
   * annotation) asks, in the recorded netns. Attachments that stay are not touched (matched by network, and by
   * interface name where the pod chose one); added ones get free `net<k>` names when theirs is taken. Adds come
   * first, each recorded as `adding` before its delegate runs; the first failure rolls back every add and
   * changes nothing else. Then removals, in reverse; one that fails is kept (a later DEL retries it) and named
   * in the error. The cluster network and default networks never change.
   */
  async hotplug(rec: SandboxRecord, plan: Plan, log: Logger): Promise<{ added: AttachmentRecord[]; removed: AttachmentRecord[] }> {
    const wanted = plan.attachments.filter((a) => a.origin === 'annotation');
    const have = rec.attachments.filter((a) => a.origin === 'annotation');
    const kept = new Set<AttachmentRecord>();
    const toAdd: PlannedAttachment[] = [];
    // Exact matches first (same network, same name), then same network under a generated name.
    const pending = wanted.filter((w) => {
      const same = have.find((h) => !kept.has(h) && h.statusName === w.statusName && h.ifName === w.ifName);
      if (same) kept.add(same);
      return !same;
    });
    for (const w of pending) {
      const moved = /^net\d+$/.test(w.ifName) ? have.find((h) => !kept.has(h) && h.statusName === w.statusName) : undefined;
      if (moved) kept.add(moved);
      else toAdd.push(w);
    }
    const toRemove = have.filter((h) => !kept.has(h));
    const used = new Set(rec.attachments.map((a) => a.ifName));
    for (const w of toAdd) {
      if (w.resourceName) throw new PlexusError('DeviceUnavailable', `${recordPodText(rec)}: network ${w.statusName} needs a device of ${w.resourceName}, which the kubelet allocates at pod creation only: it cannot be hot-plugged`);
      if (!used.has(w.ifName)) {
        used.add(w.ifName);
        continue;
      }
      if (!/^net\d+$/.test(w.ifName)) throw new PlexusError('InterfaceConflict', `${recordPodText(rec)}: network ${w.statusName} asks for interface ${w.ifName}, which the pod already has (S15)`);
      let k = 1;
      while (used.has(`net${k}`)) k++;
      w.ifName = `net${k}` as IfName;
      used.add(w.ifName);
    }
    const undo = new UndoStack();
    const added: AttachmentRecord[] = [];
    let next = Math.max(0, ...rec.attachments.map((a) => a.index)) + 1;
    try {
      for (const w of toAdd) {
        const att = await this.prepareAttachment(rec, { ...w, index: next++ }, rec.netns, [], log);
        rec.attachments.push(att);
        added.push(att);
        this.deps.records.put(rec);
        undo.push(`${att.index}:${att.statusName}`, () => this.undoAttachment(rec, att, rec.netns, [], log));
        att.result = await addNetwork(this.call(rec, att, rec.netns, [], log));
        att.state = 'added';
        await this.announce(rec, att);
      }
      undo.commit();
    } catch (e) {
      const failures = await undo.unwind();
      const failed = new Set(failures.map((f) => f.what));
      rec.attachments = rec.attachments.filter((a) => !added.includes(a) || failed.has(`${a.index}:${a.statusName}`));
      this.deps.records.put(rec);
      throw context(e, `hot-plug of ${recordPodText(rec)}: adding ${added.at(-1)?.statusName ?? 'a network'} failed; nothing changed`);
    }
    const removed: AttachmentRecord[] = [];
    const failed: string[] = [];
    for (const att of [...toRemove].reverse()) {
      try {
        await this.delAttachment(rec, att, rec.netns, [], log);
        removed.push(att);
      } catch (e) {
        failed.push(`${att.statusName} (${att.ifName}): ${errorText(e)}`);
      }
    }
    rec.attachments = rec.attachments.filter((a) => !removed.includes(a));
    if (failed.length === 0 && plan.networks !== undefined) rec.networks = plan.networks;
    else if (failed.length === 0) delete rec.networks;
    rec.status = statusOf(rec);
    this.deps.records.put(rec);
    if (failed.length > 0) throw new PlexusError('DeleteIncomplete', `hot-plug of ${recordPodText(rec)}: failed to remove ${failed.join('; ')}`);
    return { added, removed };
  }

  /** Every secondary pod interface the records hold (a restarted daemon's watcher learns them again). */
  podInterfaces(): PodInterface[] {
    return this.deps.records.list().flatMap((rec) => rec.attachments.flatMap((att) => podInterfaceOf(rec, att) ?? []));
  }

  recordOf(req: CniRequest): SandboxRecord | undefined {
    return this.recordAt(req.containerId!, req.ifName!);
  }

  recordAt(containerId: ContainerId, ifName: IfName): SandboxRecord | undefined {
    return this.deps.records.get(containerId, ifName);
  }

  /**
   * S33: every attachment is torn down in reverse; one failing does not stop the others; the record keeps
   * only what failed, so a repeated DEL retries exactly that and releases nothing twice.
   */
  async del(req: CniRequest, log: Logger): Promise<SandboxRecord | undefined> {
    const rec = this.deps.records.get(req.containerId!, req.ifName!);
    if (!rec) return undefined;
    return this.delRecord(rec, req.netns ?? '', req.path, log);
  }

  async delRecord(rec: SandboxRecord, netns: string, path: string[], log: Logger): Promise<SandboxRecord> {
    const failed: { att: AttachmentRecord; error: unknown }[] = [];
    const order = [...rec.attachments].reverse();
    const prestart = this.deps.prestartDelegates ?? false;
    let warm: Prestarted | undefined;
    for (const [i, att] of order.entries()) {
      const deleting = this.delAttachment(rec, att, netns, path, log, warm);
      // The next network's last plugin loads meanwhile (D-13); it gets its config once this one is done.
      const next = order[i + 1];
      warm = prestart && next ? prestartNetwork(this.call(rec, next, netns, path, log), 'DEL') : undefined;
      try {
        await deleting;
      } catch (error) {
        failed.push({ att, error }); // S33: the others are still deleted
      }
    }
    if (failed.length > 0) {
      rec.attachments = rec.attachments.filter((a) => failed.some((f) => f.att === a));
      this.deps.records.put(rec);
      const msg = failed.map((f) => `${f.att.statusName} (${f.att.ifName}): ${errorText(f.error)}`).join('; ');
      throw new PlexusError('DeleteIncomplete', `failed to delete ${failed.length} attachment(s) of ${recordPodText(rec)}: ${msg}`);
    }
    this.deps.records.remove(rec.containerId, rec.ifName);
    return rec;
  }

  /** CHECK every attachment: the interface is there, and each delegate's own CHECK passes. */
  async check(req: CniRequest, log: Logger): Promise<void> {
    const rec = this.deps.records.get(req.containerId!, req.ifName!);
    if (!rec) throw new PlexusError('UnknownContainer', `no attachments recorded for container ${req.containerId} interface ${req.ifName}`);
    const problems: string[] = [];
    for (const att of rec.attachments) {
      try {
        if (att.state !== 'added') throw new PlexusError('CheckFailed', 'ADD did not complete');
        // Built-ins that verify their own interface may have none in the kernel (vhost-user, a DPDK-bound VF).
        const own = att.conf.plugins.some((p) => this.deps.registry.verifiesInterface?.(p.type));
        if (!own && !(await this.deps.linkExists(req.netns!, att.ifName))) {
          throw new PlexusError('CheckFailed', `interface ${att.ifName} is missing from ${req.netns}`);
        }
        await checkNetwork(this.call(rec, att, req.netns!, req.path, log), att.result);
      } catch (e) {
        problems.push(`${att.statusName} (${att.ifName}): ${errorText(e)}`);
      }
    }
    if (problems.length > 0) throw new PlexusError('CheckFailed', `CHECK failed for ${recordPodText(rec)}: ${problems.join('; ')}`);
  }

  /**
   * GC (CNI 2.1): tear down every recorded sandbox not in `cni.dev/valid-attachments`, then forward GC to
   * each delegate network with the attachments of it that remain valid. Errors are collected, not fatal.
   */
  /** Returns every attachment (container ID, delegate interface) of the sandboxes that remain. */
  async gc(valid: ValidAttachment[], extraNetworks: NetworkConfList[], path: string[], log: Logger): Promise<ValidAttachment[]> {
    const keep = new Set(valid.map((v) => `${v.containerID}@${v.ifname}`));
    const errors: string[] = [];
    const remaining: SandboxRecord[] = [];
    for (const rec of this.deps.records.list((f, e) => errors.push(`record ${f}: ${errorText(e)}`))) {
      if (keep.has(`${rec.containerId}@${rec.ifName}`)) {
        remaining.push(rec);
        continue;
      }
      try {
        log.info({ containerId: rec.containerId, pod: rec.pod }, 'GC: removing stale attachments');
        // As libcni's GC: DEL with the recorded netns, or none when it is gone.
        await this.delRecord(rec, rec.netns && isNetnsPath(rec.netns) ? rec.netns : '', path, log);
      } catch (e) {
        errors.push(errorText(e));
      }
    }
    for (const [conf, attachments] of networksOf(remaining, extraNetworks)) {
      const env = { containerId: '', netns: '', ifName: '', args: '', path: [...this.deps.binDirs, ...path] };
      try {
        await gcNetwork({ conf, runtimeConfig: {}, env, timeoutMs: this.deps.delegateTimeoutMs, log, registry: this.deps.registry }, attachments);
      } catch (e) {
        errors.push(errorText(e));
      }
    }
    if (errors.length > 0) throw new PlexusError('DelegateFailed', `GC finished with errors: ${errors.join('; ')}`);
    return remaining.flatMap((rec) => rec.attachments.map((a) => ({ containerID: rec.containerId, ifname: a.ifName })));
  }

  /** STATUS is forwarded to the cluster network's plugins (CNI 2.1). */
  async status(clusterConf: NetworkConfList, path: string[], log: Logger): Promise<void> {
    const env = { containerId: '', netns: '', ifName: '', args: '', path: [...this.deps.binDirs, ...path] };
    for (const p of clusterConf.plugins) {
      if (!this.deps.registry.available(p.type, env.path)) {
        throw new PlexusError('NotAvailable', `cluster network "${clusterConf.name}": plugin "${p.type}" not found in [${env.path.join(' ')}]`);
      }
    }
    try {
      await statusNetwork({ conf: clusterConf, runtimeConfig: {}, env, timeoutMs: this.deps.delegateTimeoutMs, log, registry: this.deps.registry });
    } catch (e) {
      const err = e instanceof PlexusError && (e.cniCode === 50 || e.cniCode === 51) ? e : null;
      throw err ?? new PlexusError('NotAvailable', `cluster network "${clusterConf.name}" is not ready: ${errorText(e)}`, { cause: e });
    }
  }
}

function newRecord(req: CniRequest): SandboxRecord {
  return {
    kind: 'plexusSandboxV1',
    containerId: req.containerId as ContainerId,
    ifName: req.ifName as IfName,
    netns: req.netns ?? '',
    pod: req.podRef,
    cniArgs: req.argsRaw,
    cniVersion: req.cniVersion,
    createdAt: new Date().toISOString(),
    attachments: [],
  };
}

function toRecord(p: PlannedAttachment): AttachmentRecord {
  const att: AttachmentRecord = {
    index: p.index,
    origin: p.origin,
    statusName: p.statusName,
    isDefault: p.isDefault,
    ifName: p.ifName,
    conf: p.conf,
    runtimeConfig: p.runtimeConfig,
    state: 'adding',
  };
  if (p.nad) att.nad = p.nad;
  if (p.defaultRoute) att.defaultRoute = p.defaultRoute;
  if (p.resourceName) att.resourceName = p.resourceName;
  if (p.deviceId) att.deviceId = p.deviceId;
  return att;
}

/** S24-S27: one entry per attachment; the cluster network reports its default route if it kept it. */
export function statusOf(rec: SandboxRecord): NetworkStatus[] {
  const someoneElseHasDefault = rec.attachments.some((a) => a.defaultRoute !== undefined && !a.isDefault);
  return rec.attachments.map((att) => {
    const input: Parameters<typeof networkStatusOf>[0] = {
      statusName: att.statusName,
      isDefault: att.isDefault,
      result: att.result,
      cniVersion: att.conf.cniVersion,
    };
    if (att.defaultRoute !== undefined) input.defaultRoute = gatewaysOf(att);
    else if (att.isDefault && !someoneElseHasDefault && att.result !== undefined) {
      const gws = defaultGateways(parseResult(att.result, att.conf.cniVersion));
      if (gws.length > 0) input.defaultRoute = gws;
    }
    const info = att.deviceInfoFile ? readDeviceInfo(att.deviceInfoFile) : undefined;
    if (info) input.deviceInfo = info;
    return networkStatusOf(input);
  });
}

function networksOf(records: SandboxRecord[], extra: NetworkConfList[]): Map<NetworkConfList, ValidAttachment[]> {
  const byName = new Map<string, { conf: NetworkConfList; valid: ValidAttachment[] }>();
  for (const conf of extra) byName.set(conf.name, { conf, valid: [] });
  for (const rec of records) {
    for (const att of rec.attachments) {
      const entry = byName.get(att.conf.name) ?? { conf: att.conf, valid: [] };
      entry.valid.push({ containerID: rec.containerId, ifname: att.ifName });
      byName.set(att.conf.name, entry);
    }
  }
  return new Map([...byName.values()].map((e) => [e.conf, e.valid]));
}

const podText = (req: CniRequest): string =>
  req.podRef ? `pod ${req.podRef.namespace}/${req.podRef.name}` : `container ${req.containerId}`;
const recordPodText = (rec: SandboxRecord): string =>
  rec.pod ? `pod ${rec.pod.namespace}/${rec.pod.name}` : `container ${rec.containerId}`;

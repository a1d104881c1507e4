/**
 * plexus-sriov (built in): a VF the device plugin gave the pod, configured as the network says, restored
 * exactly on DEL. Everything sriov-cni does (`../shared/specs/sriov-and-devices.md` 1.3-1.5) and what it
 * gets wrong fixed: the whole original state recorded before the first change, every step undone on failure
 * (sriov-cni leaves a half-applied PF config), the mode recorded (its DPDK DEL fails once), DEL that still
 * restores after a netns deletion, a daemon restart or a second DEL, a real CHECK, and GC.
 *
 * ADD, under one lock per VF:
 *   1. a VF still recorded for a live netns is refused; a stale record is repaired first (restored, cleared);
 *   2. the record with the original PF-side and netdev state, before anything changes;
 *   3. PF side: VLAN, admin MAC (read back until it shows), rates, spoofchk, trust, link state;
 *   4. addresses from the network's IPAM (plexus-ipam unless it names another);
 *   5. kernel mode: the netdev into the pod and configured there (vf-netdev.ts); DPDK mode: nothing to move,
 *      the addresses are reported, not applied;
 *   6. the record marked attached, with the result CHECK compares.
 */
import type { Logger } from 'pino';
import { writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PlexusError, context, errorText } from '../core/errors';
import { KeyedMutex } from '../core/locks';
import { UndoStack } from '../core/undo-stack';
import { removeFileDurably } from '../core/atomic-file';
import { type CniResult, convertResult, parseResult } from '../cni/result';
import { configVersion } from '../cni/version';
import { parseCniArgs, podRefFromArgs } from '../cni/request';
import { attachmentKey, parseValidAttachments } from '../cni/valid-attachments';
import { type Delegate, type DelegateRegistry, dispatchCommand, ipamSectionOf, type PluginCall, runIpam } from '../delegates/contract';
import { formatCidr, hasErrno, isNetns, Netlink, parseCidr, type VfChange, type VfInfo } from '../kernel';
import { parseSriovNetConf, PCI_ADDRESS, SRIOV_TYPE, type SriovNetConf, type SriovOptions } from './config';
import type { PfControl } from './pf';
import type { VfRecord, VfRecords } from './records';
import { type Sysfs, USERSPACE_DRIVERS, type VfDevice } from './sysfs';
import { configureInPod, moveIntoPod, returnToHost } from './vf-netdev';

export interface SriovDeps {
  readonly options: SriovOptions;
  readonly sysfs: Sysfs;
  readonly pf: PfControl;
  /** The daemon's own (host) netns, where PFs and free VFs live. */
  readonly host: Netlink;
  readonly records: VfRecords;
  /** Where the network's `ipam.type` is found. */
  readonly delegates: DelegateRegistry;
}

const ZERO_MAC = '00:00:00:00:00:00';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const networkOf = (config: Record<string, unknown>): string => (typeof config['name'] === 'string' ? config['name'] : '');

export class SriovDelegate implements Delegate {
  /** Device Info D3/D4 and Multus's deviceID, taken whether or not a migrated sriov-cni config declares them. */
  readonly capabilities = ['CNIDeviceInfoFile', 'deviceID'] as const;
  readonly verifiesInterface = true;
  private readonly vfLocks = new KeyedMutex();

  constructor(private readonly deps: SriovDeps) {}

  exec(call: PluginCall): Promise<unknown> {
    return dispatchCommand(call, { ADD: (c) => this.add(c), DEL: (c) => this.del(c), CHECK: (c) => this.check(c), GC: (c) => this.gc(c) });
  }


  private async add(call: PluginCall): Promise<CniResult> {
    const conf = parseSriovNetConf(call.config, call.env.args);
    const { containerId, ifName } = call.env;
    try {
      return await this.vfLocks.run(conf.pci, () => this.addLocked(call, conf));
    } catch (err) {
      throw context(err, `${SRIOV_TYPE}: failed to attach VF ${conf.pci} as ${ifName} of container ${containerId.slice(0, 12)} to network "${conf.network}"`);
    }
  }

  private async addLocked(call: PluginCall, conf: SriovNetConf): Promise<CniResult> {
    const { containerId, netns, ifName } = call.env;
    const { records, sysfs, host } = this.deps;
    const held = records.get(conf.pci);
    if (held) await this.reclaim(held, call);
    const dev = sysfs.vf(conf.pci);
    const originalVf = await this.vfState(dev);
    const rec: VfRecord = {
      pci: dev.pci, pf: dev.pf, pfPci: dev.pfPci, vfIndex: dev.index, mode: dev.mode, phase: 'configuring',
      containerId, ifName, netns, network: conf.network, originalVf, settings: settingsOf(conf),
    };
    const who = podRefFromArgs(parseCniArgs(call.env.args));
    if (who) rec.pod = who;
    if (dev.mode === 'kernel') {
      const link = await host.getLink(dev.netdev!);
      if (!link?.mac) throw new PlexusError('DeviceUnavailable', `VF ${dev.pci}: its netdev ${dev.netdev} is not in this node's network namespace`);
      rec.originalNetdev = { name: link.name, mac: link.mac, mtu: link.mtu, altNames: link.altNames };
    }
    records.put(rec); // 2: before anything changes
    // Two stacks: on failure the PF side is restored first, then the rest, as DEL does (some drivers refuse a
    // netdev MAC change while the PF still holds the new admin MAC or trust).
    const pfUndo = new UndoStack();
    const undo = new UndoStack();
    try {
      await this.applyPfSide(dev, conf, originalVf, pfUndo);
      const ipam = conf.ipam ? await this.ipamAdd(call, conf, undo) : undefined;
      let podLink;
      if (dev.mode === 'kernel') {
        await moveIntoPod(host, dev.netdev!, ifName, netns);
        undo.push('return the VF netdev to the host', async () => {
          await returnToHost(host, { netns, name: ifName }, rec.originalNetdev!);
        });
        const { macRetries: retries, macRetryDelayMs: retryDelayMs } = this.deps.options;
        podLink = await configureInPod(netns, ifName, { ...(conf.mac ? { mac: conf.mac } : {}), ...(conf.mtu ? { mtu: conf.mtu } : {}), retries, retryDelayMs }, ipam);
        rec.podMac = podLink.mac!;
      }
      const pfMtu = (await host.getLink(dev.pf))?.mtu;
      const mac = podLink?.mac ?? conf.mac ?? (originalVf.mac !== ZERO_MAC ? originalVf.mac : undefined);
      const mtu = podLink?.mtu ?? pfMtu;
      const result: CniResult = {
        cniVersion: '1.1.0',
        interfaces: [{ name: ifName, ...(mac ? { mac } : {}), ...(mtu ? { mtu } : {}), sandbox: netns, pciID: dev.pci }],
        ...(ipam?.ips ? { ips: ipam.ips.map((c) => ({ ...c, interface: 0 })) } : {}),
        ...(ipam?.routes ? { routes: ipam.routes } : {}),
        ...(ipam?.dns ? { dns: ipam.dns } : {}),
      };
      if (conf.deviceInfoFile) this.writeDeviceInfo(conf.deviceInfoFile, dev, rec);
      rec.phase = 'attached';
      rec.result = result;
      records.put(rec);
      pfUndo.commit();
      undo.commit();
      call.log.debug({ pci: dev.pci, pf: dev.pf, vf: dev.index, mode: dev.mode }, 'VF attached');
      return convertResult(result, configVersion(call.config));
    } catch (err) {
      const failures = [...(await pfUndo.unwind()), ...(await undo.unwind())];
      for (const f of failures) call.log.warn({ err: errorText(f.error), step: f.what, pci: dev.pci }, 'rollback step failed');
      this.finish(rec, failures.map((f) => `${f.what}: ${errorText(f.error)}`), call.log);
      throw err;
    }
  }

  /** A record for the VF already exists: refuse while its netns lives, else repair it first (stale marker). */
  private async reclaim(held: VfRecord, call: PluginCall): Promise<void> {
    const { containerId, ifName } = call.env;
    if (held.phase === 'attached' && held.containerId === containerId && held.ifName === ifName) {
      throw new PlexusError('InterfaceConflict', `VF ${held.pci} is already attached as ${ifName} of this container`);
    }
    if (held.phase !== 'released' && held.netns && isNetns(held.netns)) {
      const pod = held.pod ? ` (pod ${held.pod.namespace}/${held.pod.name})` : '';
      throw new PlexusError(
        'DeviceUnavailable',
        `VF ${held.pci} is already allocated to container ${held.containerId.slice(0, 12)}${pod}, whose netns ${held.netns} still exists`,
      );
    }
    call.log.info({ pci: held.pci, container: held.containerId.slice(0, 12), phase: held.phase }, 'VF record of a gone sandbox: restoring the VF before reuse');
    const problems = await this.release(held, call.log);
    this.finish(held, problems, call.log);
    if (problems.length > 0) {
      throw new PlexusError('DeviceUnavailable', `VF ${held.pci} could not be restored from its earlier use: ${problems.join('; ')}`);
    }
  }

  private async vfState(dev: VfDevice): Promise<VfInfo> {
    const vf = (await this.deps.pf.listVfs(dev.pf)).find((v) => v.vf === dev.index);
    if (!vf) throw new PlexusError('DeviceUnavailable', `VF ${dev.pci}: PF ${dev.pf} does not report VF ${dev.index}`);
    return vf;
  }

  /** 3. sriov-cni's order; each applied setting pushes its own restore. */
  private async applyPfSide(dev: VfDevice, conf: SriovNetConf, original: VfInfo, undo: UndoStack): Promise<void> {
    for (const [change, restore] of pfChanges(conf, original)) {
      await this.setVf(dev, change);
      undo.push(`restore ${change.kind} of VF ${dev.pci}`, () => this.setVf(dev, restore));
      if (change.kind === 'mac') await this.awaitAdminMac(dev, change.mac);
    }
  }

  private async setVf(dev: Pick<VfDevice, 'pf' | 'index' | 'pci'>, change: VfChange): Promise<void> {
    try {
      await this.deps.pf.setVf(dev.pf, dev.index, change);
    } catch (err) {
      throw context(err, `PF ${dev.pf} refused ${change.kind} for VF ${dev.index} (${dev.pci})`);
    }
  }

  /** Drivers apply an admin MAC asynchronously: read it back, bounded. */
  private async awaitAdminMac(dev: VfDevice, mac: string): Promise<void> {
    const { macRetries, macRetryDelayMs } = this.deps.options;
    for (let i = 0; i < macRetries; i++) {
      if ((await this.vfState(dev)).mac === mac) return;
      await sleep(macRetryDelayMs);
    }
    throw new PlexusError('KernelFailure', `PF ${dev.pf} did not report MAC ${mac} for VF ${dev.index} after ${macRetries} reads`);
  }

  private async ipamAdd(call: PluginCall, conf: SriovNetConf, undo: UndoStack): Promise<CniResult> {
    const result = parseResult(await this.ipam('ADD', call, conf.ipam!), configVersion(call.config));
    undo.push('release addresses', () => this.ipam('DEL', call, conf.ipam!).then(() => undefined));
    if ((result.ips ?? []).length === 0) throw new PlexusError('PoolExhausted', `IPAM ${String(conf.ipam!['type'])} returned no address`);
    return result;
  }

  private ipam(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', call: PluginCall, ipam: Record<string, unknown>): Promise<unknown> {
    return runIpam(this.deps.delegates, command, call, ipam);
  }

  /** Device Info D4: no device plugin file was there, so plexus-sriov writes the `pci` one itself. */
  private writeDeviceInfo(path: string, dev: VfDevice, rec: VfRecord): void {
    if (existsSync(path)) return;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    const info = { type: 'pci', version: '1.1.0', pci: { 'pci-address': dev.pci, 'pf-pci-address': dev.pfPci } };
    writeFileSync(path, JSON.stringify(info), { mode: 0o444 });
    rec.deviceInfoFile = path;
  }

  /** DEL: restore from the record (whatever happened since), then release the addresses. Never fails. */
  private async del(call: PluginCall): Promise<undefined> {
    const { containerId, ifName } = call.env;
    const rec = this.recordOf(call.config, containerId, ifName);
    if (rec) {
      await this.vfLocks.run(rec.pci, async () => {
        const current = this.deps.records.get(rec.pci); // re-read under the lock: a racing DEL may have finished
        if (!current || current.containerId !== containerId || current.ifName !== ifName) return;
        this.finish(current, await this.release(current, call.log), call.log);
      });
    }
    const ipam = ipamSectionOf(call.config);
    if (ipam) await this.ipam('DEL', call, ipam);
    return undefined;
  }

  private recordOf(config: Record<string, unknown>, containerId: string, ifName: string): VfRecord | undefined {
    const id = typeof config['deviceID'] === 'string' ? config['deviceID'].toLowerCase() : undefined;
    const byId = id && PCI_ADDRESS.test(id) ? this.deps.records.get(id) : undefined;
    if (byId && byId.containerId === containerId && byId.ifName === ifName) return byId;
    return this.deps.records.find(containerId, ifName);
  }

  /**
   * Puts the VF back as the record says: PF side first (some drivers refuse netdev changes while trust is
   * off; the admin MAC is always restored), then the netdev (from the pod's netns, or from the host where the
   * kernel returned it when that netns died). Returns what could not be restored.
   */
  private async release(rec: VfRecord, log: Logger): Promise<string[]> {
    const { sysfs, host } = this.deps;
    if (!sysfs.exists(rec.pci)) {
      log.warn({ pci: rec.pci }, 'VF no longer exists (PF reset or VFs disabled): nothing to restore');
      return [];
    }
    const problems: string[] = [];
    // The PF by its PCI address: its netdev may have been renamed since ADD.
    const pf = sysfs.netdevs(rec.pfPci)[0] ?? rec.pf;
    const dev = { pf, index: rec.vfIndex, pci: rec.pci };
    const current = await this.deps.pf.listVfs(pf).then((vfs) => vfs.find((v) => v.vf === rec.vfIndex)).catch(() => undefined);
    for (const restore of pfRestores(rec, current)) {
      await this.setVf(dev, restore).catch((e: unknown) => {
        // A setting the driver does not support was never applied (a crash mid-ADD records them all).
        if (!hasErrno(e, 'EOPNOTSUPP')) problems.push(errorText(e));
      });
    }
    if (rec.mode === 'kernel' && rec.originalNetdev) {
      const orig = rec.originalNetdev;
      let back = false;
      try {
        if (rec.netns && isNetns(rec.netns)) back = await returnToHost(host, { netns: rec.netns, name: rec.ifName }, orig);
        if (!back) {
          // The pod's netns is gone (the kernel moved the VF home under its pod name) or it never left.
          const name = sysfs.netdevs(rec.pci).find(() => true);
          const link = name ? await host.getLink(name) : undefined;
          if (link && (link.name !== orig.name || link.mac !== orig.mac || link.mtu !== orig.mtu)) {
            back = await returnToHost(host, { netns: null, name: link.name }, orig);
          } else back = link !== undefined;
        }
        if (!back) {
          // The kernel moves a VF home from a dying netns asynchronously, and a netns another process still
          // holds keeps it: keep the record, so the VF is restored before it is handed out again.
          const driver = sysfs.driver(rec.pci);
          if (driver && !(USERSPACE_DRIVERS as readonly string[]).includes(driver)) {
            problems.push(`VF netdev not found in netns ${rec.netns} nor in the host (not home yet, or held by another netns)`);
          } else log.warn({ pci: rec.pci, netns: rec.netns }, 'VF netdev not found in the pod or the host, and no kernel driver bound');
        }
      } catch (e) {
        problems.push(`return the netdev to the host: ${errorText(e)}`);
      }
    }
    return problems;
  }

  /** Clean: the record goes. Otherwise it stays, marked released, and the VF is repaired before reuse. */
  private finish(rec: VfRecord, problems: string[], log: Logger): void {
    if (problems.length === 0) {
      if (rec.deviceInfoFile) removeFileDurably(rec.deviceInfoFile);
      this.deps.records.remove(rec.pci);
      return;
    }
    log.warn({ pci: rec.pci, problems }, 'VF not fully restored: kept for repair before its next use');
    this.deps.records.put({ ...rec, phase: 'released', releaseProblems: problems });
  }

  /** CNI CHECK: the VF in the pod as ADD left it, and the PF still holding the settings; 108 listing problems. */
  private async check(call: PluginCall): Promise<undefined> {
    const conf = parseSriovNetConf(call.config, call.env.args);
    const { containerId, ifName, netns } = call.env;
    const rec = this.recordOf(call.config, containerId, ifName);
    const who = `${SRIOV_TYPE}: ${ifName} of container ${containerId.slice(0, 12)}`;
    if (!rec || rec.phase !== 'attached') throw new PlexusError('CheckFailed', `${who}: no VF attached`);
    const problems: string[] = [];
    if (rec.pci !== conf.pci) problems.push(`attached VF is ${rec.pci}, the config names ${conf.pci}`);
    const vf = await this.deps.pf.listVfs(rec.pf).then((vfs) => vfs.find((v) => v.vf === rec.vfIndex));
    if (!vf) problems.push(`PF ${rec.pf} no longer reports VF ${rec.vfIndex}`);
    else problems.push(...pfProblems(settingsOf(conf), vf));
    if (rec.mode === 'kernel') problems.push(...(await podProblems(netns, ifName, rec, call.config)));
    if (problems.length > 0) throw new PlexusError('CheckFailed', `${who}: ${problems.join('; ')}`);
    if (conf.ipam) await this.ipam('CHECK', call, conf.ipam);
    return undefined;
  }

  /** CNI GC: VFs of this network held by attachments the runtime no longer lists are restored and freed. */
  private async gc(call: PluginCall): Promise<undefined> {
    const keep = new Set(parseValidAttachments(call.config).map((a) => attachmentKey(a.containerID, a.ifname)));
    const network = networkOf(call.config);
    const stale = (r: VfRecord | undefined): r is VfRecord =>
      r !== undefined && r.phase === 'attached' && r.network === network && !keep.has(attachmentKey(r.containerId, r.ifName));
    for (const listed of this.deps.records.list().filter(stale)) {
      await this.vfLocks.run(listed.pci, async () => {
        // Re-read under the lock: a DEL may have freed the VF and another pod's ADD taken it since the list.
        const rec = this.deps.records.get(listed.pci);
        if (!stale(rec) || rec.containerId !== listed.containerId || rec.ifName !== listed.ifName) return;
        this.finish(rec, await this.release(rec, call.log), call.log);
      });
    }
    const ipam = ipamSectionOf(call.config);
    if (ipam) await this.ipam('GC', call, ipam);
    return undefined;
  }

  /**
   * At daemon start: VFs a crash left mid-ADD, and VFs an earlier DEL could not fully restore, are put back
   * as their records say (records against sysfs and the PF).
   */
  async repair(log: Logger): Promise<void> {
    for (const rec of this.deps.records.list()) {
      if (rec.phase === 'attached') continue;
      await this.vfLocks.run(rec.pci, async () => {
        log.info({ pci: rec.pci, phase: rec.phase, container: rec.containerId.slice(0, 12) }, 'repairing a VF left half-configured');
        this.finish(rec, await this.release(rec, log), log);
      });
    }
  }
}

/** The settings a network asks for (what ADD applies, CHECK compares and DEL restores). */
function settingsOf(conf: SriovNetConf): VfRecord['settings'] {
  const { network: _n, pci: _p, ipam: _i, deviceInfoFile: _d, ...settings } = conf;
  return settings;
}

/** [change, its restore] pairs in sriov-cni's order: VLAN, admin MAC, rates, spoofchk, trust, link state. */
function pfChanges(conf: SriovNetConf, o: VfInfo): Array<[VfChange, VfChange]> {
  const out: Array<[VfChange, VfChange]> = [];
  if (conf.vlan) {
    out.push([
      { kind: 'vlan', vlan: conf.vlan.id, qos: conf.vlan.qos, proto: conf.vlan.proto },
      { kind: 'vlan', vlan: o.vlan, qos: o.qos, proto: o.vlanProto },
    ]);
  }
  if (conf.mac) out.push([{ kind: 'mac', mac: conf.mac }, { kind: 'mac', mac: o.mac }]);
  if (conf.rate) {
    out.push([
      { kind: 'rate', minTxRate: conf.rate.min, maxTxRate: conf.rate.max },
      { kind: 'rate', minTxRate: o.minTxRate, maxTxRate: o.maxTxRate },
    ]);
  }
  if (conf.spoofchk !== undefined) out.push([{ kind: 'spoofchk', on: conf.spoofchk }, { kind: 'spoofchk', on: o.spoofchk ?? true }]);
  if (conf.trust !== undefined) out.push([{ kind: 'trust', on: conf.trust }, { kind: 'trust', on: o.trust ?? false }]);
  if (conf.linkState) out.push([{ kind: 'linkState', state: conf.linkState }, { kind: 'linkState', state: o.linkState ?? 'auto' }]);
  return out;
}

/**
 * DEL's PF-side restores, PF first and admin MAC always (sriov-cni 1.5). A VLAN with no recorded VLAN
 * settings is left alone, as sriov-cni does; everything the network set goes back to the recorded value.
 */
function pfRestores(rec: VfRecord, current: VfInfo | undefined): VfChange[] {
  const restores = pfChanges({ network: rec.network, pci: rec.pci, ...rec.settings }, rec.originalVf).map(([, restore]) => restore);
  if (!rec.settings.mac && current?.mac !== rec.originalVf.mac) restores.push({ kind: 'mac', mac: rec.originalVf.mac });
  return restores;
}

/** What the PF reports against what the network asks for. */
function pfProblems(s: VfRecord['settings'], vf: VfInfo): string[] {
  const out: string[] = [];
  const differs = (what: string, want: unknown, have: unknown) => {
    if (want !== have) out.push(`${what} is ${String(have)}, expected ${String(want)}`);
  };
  if (s.vlan) {
    differs('VLAN', s.vlan.id, vf.vlan);
    differs('VLAN QoS', s.vlan.qos, vf.qos);
    differs('VLAN protocol', s.vlan.proto, vf.vlanProto);
  }
  if (s.mac) differs('admin MAC', s.mac, vf.mac);
  if (s.rate) {
    differs('min_tx_rate', s.rate.min, vf.minTxRate);
    differs('max_tx_rate', s.rate.max, vf.maxTxRate);
  }
  if (s.spoofchk !== undefined) differs('spoofchk', s.spoofchk, vf.spoofchk);
  if (s.trust !== undefined) differs('trust', s.trust, vf.trust);
  if (s.linkState) differs('link state', s.linkState, vf.linkState);
  return out;
}

/** The VF in the pod: there, with the MAC ADD gave it and the addresses the runtime holds. */
async function podProblems(netns: string, ifName: string, rec: VfRecord, config: Record<string, unknown>): Promise<string[]> {
  const pod = await Netlink.open(netns).catch(() => null);
  if (!pod) return [`netns ${netns} cannot be opened`];
  try {
    const link = await pod.getLink(ifName);
    if (!link) return [`${ifName} is not in the pod`];
    const out: string[] = [];
    if (rec.podMac && link.mac !== rec.podMac) out.push(`MAC is ${link.mac}, expected ${rec.podMac}`);
    if (!link.up) out.push(`${ifName} is down`);
    const canonical = (cidr: string) => {
      try {
        const c = parseCidr(cidr);
        return formatCidr(c.bytes, c.prefixLength);
      } catch {
        return cidr;
      }
    };
    const have = new Set((await pod.listAddresses(link.index)).map((a) => canonical(`${a.address}/${a.prefixLength}`)));
    const prev = config['prevResult'] === undefined ? rec.result : parseResult(config['prevResult'], configVersion(config));
    // The addresses prevResult gives this interface (by index into its interfaces, CNI 2.2; none: all).
    const index = (prev?.interfaces ?? []).findIndex((i) => i.name === ifName && i.sandbox !== undefined);
    const listed = (prev?.ips ?? []).filter((c) => c.interface === undefined || index < 0 || c.interface === index);
    for (const ip of listed) if (!have.has(canonical(ip.address))) out.push(`address ${ip.address} missing`);
    return out;
  } finally {
    pod.close();
  }
}

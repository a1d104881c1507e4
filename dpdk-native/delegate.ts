/**
 * plexus-dpdk (built in): a vhost-user or memif interface for a pod's DPDK application, served by a port of
 * plexus-dataplane on the pod's L2 network.
 *
 * Roles follow the Device Information spec (the container's point of view). The default for vhost-user is
 * `server`: the pod's virtio-user creates the socket and the engine connects as a client, so when the engine
 * restarts it reconnects to the pod's socket by itself and the pod's application never notices more than a
 * pause (the layout OVS-DPDK recommends with dpdkvhostuserclient). memif defaults to `client`: the engine
 * creates the socket and the pod's memif client reconnects to it when the engine comes back.
 *
 * Sockets live in `<dpdk.socketDir>/<pod UID>/<ifName>.sock` (short, for the 108-byte sun_path); the pod mounts
 * `<socketDir>` with `subPathExpr: $(POD_UID)` at `containerDir` (default /var/run/plexus), where its
 * application finds `<ifName>.sock` and, through network-status, the device-info naming it. Addresses from
 * IPAM are reported, not applied: there is no kernel interface.
 *
 * One record per attachment (`<stateDir>/dpdk/<port>.json`) is what DEL, CHECK, GC and the reconcile work from:
 * the daemon re-creates ports an engine restart lost and removes ports nothing records.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Ajv from 'ajv';
import type { Logger } from 'pino';
import { context, errorText, PlexusError } from '../core/errors';
import { KeyedMutex } from '../core/locks';
import { RecordDir } from '../core/record-dir';
import { removeDirIfEmpty, removeFileDurably } from '../core/atomic-file';
import { schemaProblems } from '../core/schema-problems';
import { type CniResult, convertResult, parseResult } from '../cni/result';
import { configVersion } from '../cni/version';
import { parseCniArgs, podRefFromArgs } from '../cni/request';
import { attachmentKey, parseValidAttachments } from '../cni/valid-attachments';
import { BUILTIN_PLUGIN_KEYS, type Delegate, type DelegateRegistry, dispatchCommand, ipamSectionOf, type PluginCall, runIpam } from '../delegates/contract';
import type { DpdkOptions } from './config';
import type { EngineClient } from './engine-client';
import { type PortSpec, sameSpec } from './ports';

export const DPDK_TYPE = 'plexus-dpdk';

const PLUGIN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'interface'],
  properties: {
    ...BUILTIN_PLUGIN_KEYS,
    type: { const: DPDK_TYPE },
    interface: { enum: ['vhost-user', 'memif'] },
    mode: { enum: ['client', 'server'] },
    memifMode: { enum: ['ethernet', 'ip'] },
    network: { type: 'string', pattern: '^[A-Za-z0-9_./-]{1,63}$' },
    mtu: { type: 'integer', minimum: 68, maximum: 9702 },
    queues: { type: 'integer', minimum: 1, maximum: 16 },
    containerDir: { type: 'string', pattern: '^/[^,=\\s]{1,60}$' },
  },
} as const;
const validate = new Ajv({ allErrors: true, strict: false }).compile(PLUGIN_SCHEMA);

interface DpdkNetConf {
  network: string;
  iface: 'vhost-user' | 'memif';
  /** The container's role (Device Information spec). */
  mode: 'client' | 'server';
  mtu?: number;
  queues: number;
  containerDir: string;
  ipam?: Record<string, unknown>;
  deviceInfoFile?: string;
}

function parseNetConf(config: Record<string, unknown>): DpdkNetConf {
  const name = typeof config['name'] === 'string' ? config['name'] : '?';
  const invalid = (why: string) => new PlexusError('InvalidConfig', `${DPDK_TYPE} network "${name}": ${why}`);
  if (!validate(config)) throw invalid(schemaProblems(validate.errors));
  const iface = config['interface'] as DpdkNetConf['iface'];
  if (config['memifMode'] === 'ip') throw invalid('memifMode "ip" is not supported: plexus-dataplane switches Ethernet frames');
  if (config['memifMode'] !== undefined && iface !== 'memif') throw invalid('memifMode is for memif interfaces');
  const network = (config['network'] as string | undefined) ?? name;
  if (!/^[A-Za-z0-9_./-]{1,63}$/.test(network)) throw invalid(`network ${JSON.stringify(network)}: give "network" explicitly`);
  const out: DpdkNetConf = {
    network,
    iface,
    mode: (config['mode'] as DpdkNetConf['mode'] | undefined) ?? (iface === 'vhost-user' ? 'server' : 'client'),
    containerDir: (config['containerDir'] as string | undefined) ?? '/var/run/plexus',
    queues: (config['queues'] as number | undefined) ?? 1,
  };
  if (typeof config['mtu'] === 'number') out.mtu = config['mtu'];
  const ipam = ipamSectionOf(config);
  if (ipam) out.ipam = ipam;
  const rc = config['runtimeConfig'] as Record<string, unknown> | undefined;
  if (typeof rc?.['CNIDeviceInfoFile'] === 'string') out.deviceInfoFile = rc['CNIDeviceInfoFile'];
  return out;
}

export interface DpdkRecord {
  containerId: string;
  ifName: string;
  netns: string;
  /** The NAD's network name (GC is per network). */
  cniNetwork: string;
  port: PortSpec;
  /** The socket as the container sees it (device-info `path`). */
  containerPath: string;
  pod?: { namespace: string; name: string; uid?: string };
  result: CniResult;
  deviceInfoFile?: string;
}

export interface DpdkDeps {
  readonly options: DpdkOptions;
  readonly engine: EngineClient;
  readonly stateDir: string;
  readonly delegates: DelegateRegistry;
}

const PORT_NAME = /^[0-9a-f]{12}-[A-Za-z0-9_.-]{1,15}$/;
/** The engine port of an attachment: unique on the node while it exists, and short (the engine keys ports by it). */
export const enginePortName = (containerId: string, ifName: string): string => `${containerId.slice(0, 12)}-${ifName}`;

/** The directory of a pod's sockets: its UID when the runtime says it (the pod can mount it by UID), else the sandbox's. */
const podDirName = (uid: string | undefined, containerId: string) => (uid && /^[A-Za-z0-9-]{1,64}$/.test(uid) ? uid : containerId.slice(0, 12));

export class DpdkDelegate implements Delegate {
  readonly capabilities = ['CNIDeviceInfoFile'] as const;
  readonly verifiesInterface = true;
  private readonly records: RecordDir<DpdkRecord>;
  private readonly locks = new KeyedMutex();

  constructor(private readonly deps: DpdkDeps) {
    this.records = new RecordDir(join(deps.stateDir, 'dpdk'), PORT_NAME, 'DPDK port name');
  }

  exec(call: PluginCall): Promise<unknown> {
    return dispatchCommand(call, { ADD: (c) => this.add(c), DEL: (c) => this.del(c), CHECK: (c) => this.check(c), GC: (c) => this.gc(c), STATUS: () => this.status() });
  }


  private async add(call: PluginCall): Promise<CniResult> {
    const conf = parseNetConf(call.config);
    const { containerId, ifName, netns } = call.env;
    const name = enginePortName(containerId, ifName);
    const who = podRefFromArgs(parseCniArgs(call.env.args));
    const dir = join(this.deps.options.socketDir, podDirName(who?.uid, containerId));
    const socket = join(dir, `${ifName}.sock`);
    if (Buffer.byteLength(socket) > 107) throw new PlexusError('InvalidConfig', `${DPDK_TYPE}: socket path ${socket} is longer than a unix socket allows (dpdk.socketDir too long)`);
    const port: PortSpec = { name, network: conf.network, kind: conf.iface, socket, role: conf.mode === 'server' ? 'client' : 'server', ...(conf.queues > 1 ? { queues: conf.queues } : {}) };
    return this.locks.run(name, async () => {
      if (this.records.get(name)) throw new PlexusError('InterfaceConflict', `${DPDK_TYPE}: ${ifName} of container ${containerId.slice(0, 12)} is already attached`);
      let ipam: CniResult | undefined;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        if (conf.ipam) ipam = parseResult(await this.ipam('ADD', call, conf.ipam), configVersion(call.config));
        await this.deps.engine.put(port);
        const containerPath = join(conf.containerDir, `${ifName}.sock`);
        const result: CniResult = {
          cniVersion: '1.1.0',
          interfaces: [{ name: ifName, sandbox: netns, socketPath: socket, ...(conf.mtu ? { mtu: conf.mtu } : {}) }],
          ...(ipam?.ips ? { ips: ipam.ips.map((c) => ({ ...c, interface: 0 })) } : {}),
          ...(ipam?.routes ? { routes: ipam.routes } : {}),
          ...(ipam?.dns ? { dns: ipam.dns } : {}),
        };
        const rec: DpdkRecord = { containerId, ifName, netns, cniNetwork: typeof call.config['name'] === 'string' ? call.config['name'] : '', port, containerPath, result };
        if (who) rec.pod = who;
        if (conf.deviceInfoFile) rec.deviceInfoFile = writeDeviceInfo(conf, conf.deviceInfoFile, containerPath);
        this.records.put(name, rec);
        return convertResult(result, configVersion(call.config));
      } catch (err) {
        await this.deps.engine.remove(name).catch(() => undefined);
        if (conf.ipam) await this.ipam('DEL', call, conf.ipam).catch(() => undefined);
        removeDirIfEmpty(dir);
        throw context(err, `${DPDK_TYPE}: failed to attach ${ifName} of container ${containerId.slice(0, 12)} to network "${conf.network}"`);
      }
    });
  }

  /** Idempotent; an engine that does not answer leaves its port to the reconcile, never fails the DEL. */
  private async del(call: PluginCall): Promise<undefined> {
    await this.detach(enginePortName(call.env.containerId, call.env.ifName), call.log);
    const ipam = ipamSectionOf(call.config);
    if (ipam) await this.ipam('DEL', call, ipam);
    return undefined;
  }

  /** The port, its socket, device-info file and record go (DEL and GC); the addresses are the caller's. */
  private async detach(name: string, log: Logger): Promise<void> {
    await this.locks.run(name, async () => {
      const rec = this.records.get(name);
      await this.deps.engine.remove(name).catch((e: unknown) => log.warn({ port: name, err: errorText(e) }, 'DPDK engine did not remove the port: the reconcile will'));
      if (!rec) return;
      if (rec.deviceInfoFile) removeFileDurably(rec.deviceInfoFile);
      // The socket is the attachment's whoever created it (a pod's virtio-user server leaves its file behind).
      rmSync(rec.port.socket!, { force: true });
      this.records.remove(name);
      removeDirIfEmpty(dirname(rec.port.socket!));
    });
  }

  private async check(call: PluginCall): Promise<undefined> {
    const conf = parseNetConf(call.config);
    const { containerId, ifName } = call.env;
    const name = enginePortName(containerId, ifName);
    const rec = this.records.get(name);
    const who = `${DPDK_TYPE}: ${ifName} of container ${containerId.slice(0, 12)}`;
    if (!rec) throw new PlexusError('CheckFailed', `${who}: not attached`);
    const problems: string[] = [];
    const live = (await this.deps.engine.ports()).find((p) => p.name === name);
    if (!live) problems.push('the engine has no such port');
    else if (!sameSpec(live, rec.port)) problems.push('the engine\'s port differs from the record');
    if (rec.port.network !== conf.network) problems.push(`attached to network ${rec.port.network}, the config says ${conf.network}`);
    if (rec.port.role === 'server' && !existsSync(rec.port.socket!)) problems.push(`socket ${rec.port.socket} is missing`);
    if (problems.length > 0) throw new PlexusError('CheckFailed', `${who}: ${problems.join('; ')}`);
    if (conf.ipam) await this.ipam('CHECK', call, conf.ipam);
    return undefined;
  }

  private async gc(call: PluginCall): Promise<undefined> {
    const keep = new Set(parseValidAttachments(call.config).map((a) => attachmentKey(a.containerID, a.ifname)));
    const network = typeof call.config['name'] === 'string' ? call.config['name'] : '';
    for (const rec of this.records.list()) {
      if (rec.cniNetwork !== network || keep.has(attachmentKey(rec.containerId, rec.ifName))) continue;
      await this.detach(rec.port.name, call.log);
    }
    const ipam = ipamSectionOf(call.config);
    if (ipam) await this.ipam('GC', call, ipam);
    return undefined;
  }

  private async status(): Promise<undefined> {
    if (!(await this.deps.engine.healthy())) throw new PlexusError('NotAvailable', `${DPDK_TYPE}: the DPDK engine at ${this.deps.engine.socketPath} does not answer`);
    return undefined;
  }

  private ipam(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', call: PluginCall, ipam: Record<string, unknown>): Promise<unknown> {
    return runIpam(this.deps.delegates, command, call, ipam);
  }

  /**
   * The engine's ports against the records: what a restarted engine lost is created again, what nothing
   * records (a DEL the engine missed) is removed; uplinks are the engine's own. Returns what it changed.
   */
  async reconcile(log: Logger): Promise<{ created: string[]; removed: string[] }> {
    const live = await this.deps.engine.ports();
    const recorded = new Map(this.records.list().map((r) => [r.port.name, r]));
    const created: string[] = [];
    const removed: string[] = [];
    for (const [name, rec] of recorded) {
      if (live.some((p) => p.name === name && sameSpec(p, rec.port))) continue;
      await this.locks.run(name, async () => {
        if (!this.records.get(name)) return;
        await this.deps.engine.put(rec.port).catch((e: unknown) => log.warn({ port: name, err: errorText(e) }, 'could not re-create a port'));
        created.push(name);
      });
    }
    for (const p of live) {
      if (recorded.has(p.name) || p.uplink) continue;
      await this.locks.run(p.name, async () => {
        if (PORT_NAME.test(p.name) && this.records.get(p.name)) return; // recorded meanwhile (any other name never is)
        await this.deps.engine.remove(p.name).catch((e: unknown) => log.warn({ port: p.name, err: errorText(e) }, 'could not remove an orphan port'));
        removed.push(p.name);
      });
    }
    if (created.length || removed.length) log.info({ created, removed }, 'DPDK engine reconciled with the records');
    else log.debug({ ports: live.length }, 'DPDK engine matches the records');
    return { created, removed };
  }
}

/** Device Information spec 1.1: vhost-user {mode, path} or memif {role, path, mode}, the container's view. */
function writeDeviceInfo(conf: DpdkNetConf, file: string, containerPath: string): string | undefined {
  if (existsSync(file)) return undefined;
  const info = conf.iface === 'vhost-user'
    ? { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: conf.mode, path: containerPath } }
    : { type: 'memif', version: '1.1.0', memif: { role: conf.mode === 'server' ? 'master' : 'slave', path: containerPath, mode: 'ethernet' } };
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, JSON.stringify(info), { mode: 0o444 });
  return file;
}

/**
 * `plexus-dataplane --config FILE`: the DPDK engine process. It loads the dpdk-native addon, initialises EAL
 * once (the poll loop runs on an EAL worker lcore; this Node thread only does control operations), and serves
 * a small HTTP API on a root-only unix socket, which plexusd drives:
 *
 *   GET    /healthz             200 once EAL runs
 *   GET    /v1/ports            every port: spec, link state and counters
 *   PUT    /v1/ports/NAME       create the port (idempotent: the same spec again is 200; another is 409)
 *   DELETE /v1/ports/NAME       remove it (idempotent: a port that is not there is 204 too)
 *   GET    /v1/stats            the poll loop's counters (loops, idle sleeps, learned MACs, current sleep)
 *                                and how many configured uplinks are not attached yet
 *   PUT    /v1/policy           the MultiNetworkPolicy of the engine's ports (policy-wire.ts), replacing the last
 *   GET    /v1/policy           its revision, the networks judged, and per network the verdict counters
 *   GET    /v1/flows?after=SEQ  flow events (new connections, drops) after SEQ, oldest first, from a bounded ring
 *
 * Uplinks (`dpdk.uplinks`) are the engine's own ports, created at start and retried until their interface
 * exists; they are listed with `uplink: true`, and PUT or DELETE of their names is refused (409).
 *
 * A separate process, so plexusd and the engine restart independently: the engine keeps forwarding while the
 * daemon restarts, and the daemon recreates the ports from its records when the engine restarts.
 * The config FILE is YAML or JSON; its `dpdk` section (or the whole file) is parsed by dpdk-native/config.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { removeDirIfEmpty } from '../../core/atomic-file';
import { dirname } from 'node:path';
import yaml from 'js-yaml';
import pino, { type Logger } from 'pino';
import { addrText } from '../../core/address';
import { errorText, PlexusError } from '../../core/errors';
import { type DpdkOptions, ealArgs, parseDpdkOptions, uplinkPortName } from '../config';
import type { EngineFlow } from '../engine-client';
import { type EnginePolicy, parseEnginePolicy, policyBlob } from '../policy-wire';
import { devargs, parsePortSpec, type PortSpec, queuesOf, sameSpec } from '../ports';
import { loadNative, type NativeEngine } from './native';

const MAX_BODY = 64 * 1024;
/** A policy over many pods is larger than a port spec. */
const MAX_POLICY_BODY = 32 * 1024 * 1024;
const UPLINK_RETRY_MS = 5000;
/** How often the loop's flow events are read, and how many the engine keeps for readers. */
const EVENTS_MS = 100;
const FLOW_RING = 10000;


class Engine {
  private readonly specs = new Map<string, PortSpec>();
  private readonly networks = new Map<string, number>();
  private policy: EnginePolicy | undefined;
  private readonly flows: EngineFlow[] = [];
  private seq = 0;
  /** The configured uplinks' ports: the engine's own, not the control API's to create or remove. */
  private readonly uplinks: Map<string, PortSpec>;

  constructor(
    private readonly native: NativeEngine,
    uplinks: DpdkOptions['uplinks'],
  ) {
    this.uplinks = new Map(Object.entries(uplinks).map(([network, u]) => {
      const spec: PortSpec = { name: uplinkPortName(u.iface), network, kind: u.driver, iface: u.iface };
      return [spec.name, spec];
    }));
  }

  /** Creates the uplinks not yet there (an interface may appear later: a VF created after boot). */
  ensureUplinks(log: Logger): void {
    for (const spec of this.uplinks.values()) {
      if (this.specs.has(spec.name)) continue;
      try {
        this.create(spec);
        log.info({ port: spec.name, network: spec.network, iface: spec.iface, driver: spec.kind }, 'uplink attached');
      } catch (e) {
        log.warn({ port: spec.name, network: spec.network, iface: spec.iface, err: errorText(e) }, 'uplink not attached yet; retrying');
      }
    }
  }

  get pendingUplinks(): number {
    return [...this.uplinks.keys()].filter((name) => !this.specs.has(name)).length;
  }

  private refuseUplink(name: string): void {
    if (this.uplinks.has(name)) throw new PlexusError('InterfaceConflict', `port ${name} is an uplink of the engine's configuration (dpdk.uplinks)`);
  }

  /** Replaces the policy; a policy the addon refuses changes nothing. */
  setPolicy(p: EnginePolicy): void {
    const blob = policyBlob(p, (n) => this.networkId(n));
    try {
      this.native.setPolicy(blob);
    } catch (e) {
      // ETIMEDOUT: the poll loop did not come round to let go of the old policy (the new one is in force)
      const kind = (e as { errno?: number }).errno === 110 ? 'KernelFailure' : 'InvalidConfig';
      throw new PlexusError(kind, `engine: policy: ${errorText(e)}`, { cause: e });
    }
    this.policy = p;
  }

  policyView(): unknown {
    const networks = this.policy?.networks ?? [];
    return {
      revision: this.policy?.revision ?? null,
      networks,
      endpoints: this.policy?.endpoints.length ?? 0,
      counters: Object.fromEntries([...this.networks].map(([name, id]) => [name, this.native.policyCounters(id)])),
    };
  }

  /** Moves the loop's flow events into the ring readers page through. */
  readFlows(): void {
    const names = new Map([...this.networks].map(([name, id]) => [id, name]));
    for (const e of this.native.policyEvents()) {
      const v6 = (e.flags & 1) !== 0;
      this.flows.push({
        seq: ++this.seq, time: Math.round(Number(BOOT_EPOCH_NS + BigInt(e.timeNs)) / 1e6), network: names.get(e.network) ?? String(e.network),
        src: addrText(e.src), dst: addrText(e.dst), sport: e.sport, dport: e.dport, proto: e.proto,
        verdict: e.verdict === 2 ? 'DROPPED' : 'FORWARDED',
        ...(e.reason ? { reason: REASONS[e.reason] ?? 'POLICY_DENIED_EGRESS' } : {}),
        v6, ...(e.flags & 4 ? { cut: true as const } : {}), len: e.len,
      });
    }
    if (this.flows.length > FLOW_RING) this.flows.splice(0, this.flows.length - FLOW_RING);
  }

  /** A reader whose cursor is past the last sequence number read an engine that has restarted since: all of them. */
  flowsAfter(seq: number): EngineFlow[] {
    return seq > this.seq ? [...this.flows] : this.flows.filter((f) => f.seq > seq);
  }

  private networkId(name: string): number {
    let id = this.networks.get(name);
    if (id === undefined) {
      // The addon's policy counts networks below 256 (addon/policy.h): a 256th is refused, not left unjudged.
      if (this.networks.size + 1 >= 256) throw new PlexusError('InvalidConfig', `engine: network ${name}: the engine has had 255 networks, its limit; restart it to start over`);
      id = this.networks.size + 1;
      this.networks.set(name, id);
    }
    return id;
  }

  /** true: created; false: it existed with the same spec. */
  put(spec: PortSpec): boolean {
    this.refuseUplink(spec.name);
    const have = this.specs.get(spec.name);
    if (have) {
      if (sameSpec(have, spec)) return false;
      throw new PlexusError('InterfaceConflict', `port ${spec.name} exists with another spec`);
    }
    this.create(spec);
    return true;
  }

  private create(spec: PortSpec): void {
    if (spec.socket) mkdirSync(dirname(spec.socket), { recursive: true, mode: 0o755 });
    if (spec.socket && spec.role === 'server' && existsSync(spec.socket)) unlinkSync(spec.socket); // a stale socket file
    try {
      this.native.addPort(spec.name, devargs(spec), this.networkId(spec.network), queuesOf(spec));
    } catch (e) {
      throw new PlexusError('KernelFailure', `engine: port ${spec.name}: ${errorText(e)}`, { cause: e });
    }
    this.specs.set(spec.name, spec);
  }

  remove(name: string): void {
    this.refuseUplink(name);
    if (!this.specs.has(name)) return;
    this.native.removePort(name);
    const spec = this.specs.get(name)!;
    this.specs.delete(name);
    if (spec.socket && spec.role === 'server') {
      try {
        unlinkSync(spec.socket);
      } catch {
        // already gone
      }
    }
    if (spec.socket) removeDirIfEmpty(dirname(spec.socket)); // the directory put() made for it
  }

  list(): unknown[] {
    const live = new Map(this.native.ports().map((p) => [p.name, p]));
    return [...this.specs.values()].map((spec) => {
      const p = live.get(spec.name);
      return { ...spec, ...(this.uplinks.has(spec.name) ? { uplink: true } : {}), linkUp: p?.linkUp ?? false, counters: p ? { rxPackets: p.rxPackets, rxBytes: p.rxBytes, txPackets: p.txPackets, txBytes: p.txBytes, txDropped: p.txDropped, flooded: p.flooded, faults: p.faults, policyDropped: p.policyDropped } : undefined };
    });
  }

  stats(): unknown {
    return { ...this.native.stats(), pendingUplinks: this.pendingUplinks };
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage, max = MAX_BODY): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) throw new PlexusError('InvalidConfig', `request body over ${max} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new PlexusError('DecodeFailure', 'request body is not JSON');
  }
}

const STATUS: Partial<Record<string, number>> = { InvalidConfig: 400, DecodeFailure: 400, InterfaceConflict: 409 };

async function route(engine: Engine, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://engine');
  const port = /^\/v1\/ports\/([^/]+)$/.exec(url.pathname);
  if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { ok: true });
  if (req.method === 'GET' && url.pathname === '/v1/ports') return send(res, 200, engine.list());
  if (req.method === 'GET' && url.pathname === '/v1/stats') return send(res, 200, engine.stats());
  if (url.pathname === '/v1/policy' && req.method === 'PUT') {
    engine.setPolicy(parseEnginePolicy(await readBody(req, MAX_POLICY_BODY)));
    return send(res, 200, engine.policyView());
  }
  if (req.method === 'GET' && url.pathname === '/v1/policy') return send(res, 200, engine.policyView());
  if (req.method === 'GET' && url.pathname === '/v1/flows') {
    const after = Number(url.searchParams.get('after') ?? '0');
    if (!Number.isSafeInteger(after) || after < 0) throw new PlexusError('InvalidConfig', 'after must be a sequence number');
    engine.readFlows();
    return send(res, 200, engine.flowsAfter(after));
  }
  if (port && req.method === 'PUT') {
    const spec = parsePortSpec(await readBody(req));
    if (spec.name !== decodeURIComponent(port[1]!)) throw new PlexusError('InvalidConfig', 'the port name in the path and the body differ');
    return send(res, engine.put(spec) ? 201 : 200, spec);
  }
  if (port && req.method === 'DELETE') {
    engine.remove(decodeURIComponent(port[1]!));
    return send(res, 204);
  }
  send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
}

/** addon/policy.h's drop reasons, named as hubble names them. */
const REASONS: Record<number, NonNullable<EngineFlow['reason']>> = { 1: 'POLICY_DENIED_EGRESS', 2: 'POLICY_DENIED_INGRESS', 3: 'INVALID_SOURCE_IP' };

/** CLOCK_MONOTONIC (the loop's event times) to the Unix epoch, in nanoseconds. */
const BOOT_EPOCH_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

function loadOptions(file: string): DpdkOptions {
  const raw = yaml.load(readFileSync(file, 'utf8'), { json: true }) as Record<string, unknown> | null;
  return parseDpdkOptions(raw && typeof raw === 'object' && 'dpdk' in raw ? raw['dpdk'] : raw);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--config');
  const file = i >= 0 ? process.argv[i + 1] : undefined;
  if (!file) throw new PlexusError('InvalidConfig', 'usage: plexus-dataplane --config FILE');
  const opts = loadOptions(file);
  const log = pino({ name: 'plexus-dataplane', level: opts.logLevel });
  const native = loadNative();
  const t0 = performance.now();
  native.init(ealArgs(opts), opts.mbufs, opts.maxSleepUs);
  log.info({ ms: Math.round(performance.now() - t0), lcores: opts.lcores, hugepages: opts.hugepages }, 'EAL initialised; poll loop running');
  const engine = new Engine(native, opts.uplinks);
  engine.ensureUplinks(log);
  setInterval(() => engine.pendingUplinks > 0 && engine.ensureUplinks(log), UPLINK_RETRY_MS).unref();
  setInterval(() => engine.readFlows(), EVENTS_MS).unref();
  mkdirSync(dirname(opts.socketPath), { recursive: true, mode: 0o755 });
  if (existsSync(opts.socketPath)) unlinkSync(opts.socketPath);
  const server = createServer((req, res) => {
    route(engine, req, res).catch((e: unknown) => {
      const err = e instanceof PlexusError ? e : new PlexusError('Internal', errorText(e));
      log.warn({ method: req.method, url: req.url, err: err.message }, 'control request failed');
      if (!res.headersSent) send(res, STATUS[err.kind] ?? 500, { code: err.cniCode, kind: err.kind, msg: err.message });
    });
  });
  const oldMask = process.umask(0o177);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => resolve());
  }).finally(() => process.umask(oldMask));
  chmodSync(opts.socketPath, 0o600);
  log.info({ socket: opts.socketPath }, 'plexus-dataplane ready');
  const stop = (signal: string) => {
    log.info({ signal }, 'stopping: ports removed, poll loop stopped');
    server.close();
    native.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`plexus-dataplane: ${errorText(e)}\n`);
  process.exit(1);
});

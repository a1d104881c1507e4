/**
 * `plexusd --config FILE`: the node daemon, assembled once, each part after what it needs (STYLE 22):
 *   1. config, the node claimed (a lock beside the socket) and our stateDir published beside it; 2. the source, loaded; 3. the routed node side (its underlay addresses are published with the
 *   IPAM registration); 4. the IPAM service; 5. the built-in delegates, registered before anything runs them;
 *   6. the runner and the request handler; 7. the socket: plexus-ipam is served at once (delegates replaying
 *   queued DELs call it), everything else answers "not ready"; 8. drain the DEL queue the shim filled while we
 *   were down (DESIGN decision 2); 9. ready; drain again, and keep retrying what could not be drained.
 * SIGTERM/SIGINT: stop accepting, finish requests in flight (bounded), then exit.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import pino, { Logger } from 'pino';
import { FileLock } from '../../core/file-lock';
import { UndoStack } from '../../core/undo-stack';
import { writeFileAtomic } from '../../core/atomic-file';
import { errorText, PlexusError } from '../../core/errors';
import { PlexusIpamDelegate } from '../../delegates/plexus-ipam';
import type { EndpointWatcher } from '../../delegates/contract';
import { Registry } from '../../delegates/registry';
import { RoutedDelegate } from '../../delegates/routed/delegate';
import { ROUTED_TYPE } from '../../delegates/routed/options';
import { IPAM_PLUGIN_TYPE } from '../../ipam';
import { openSriov, SRIOV_CNI_TYPE, SRIOV_TYPE, type SriovHost } from '../../sriov';
import { DPDK_TYPE, type DpdkHost, EngineClient, EnginePolicyChannel, openDpdk } from '../../dpdk-native';
import { stateDirFilePath } from '../api/protocol';
import { NoDevices } from '../planner/devices';
import { kernelLinkExists, kernelRouteOps } from '../runner/default-route-kernel';
import { Runner } from '../runner/runner';
import { RecordStore } from '../runner/sandbox-records';
import { FileSource } from '../source/file-source';
import { KubeSource } from '../source/kube-source';
import { NETWORKS_ANNOTATION } from '../planner/annotation';
import { findPrimaryConflist, type InstallOptions, installBinaries, uninstall, writePlexusConflist } from './install';
import type { Source } from '../source/source';
import { ConfDir } from './conf-dir';
import { DaemonConfig, loadDaemonConfig } from './config';
import { listQueuedDels } from '../api/del-queue';
import { drainDelQueue } from './del-queue-drain';
import { CniHandler } from './handler';
import { IpamHost } from './ipam-host';
import { PolicyHost } from './policy-host';
import { RoutedHost } from './routed-host';
import { DaemonMetrics } from './metrics';
import { listenUnix } from './server';
import { shimStateDirs } from './shim-state-dirs';

export async function startDaemon(given: DaemonConfig, log: Logger) {
  const install = installOptions(given);
  // Binaries first (harmless before the conflist: nothing sends pods here yet); the conflist once ready.
  if (install) log.info({ cniBinDir: install.cniBinDir, binaries: installBinaries(install.fromDir, install) }, 'Plexus binaries installed');
  const config = install && !given.clusterNetwork ? await withPrimaryNetwork(given, install, log) : given;
  let ready = false;
  let stopping = false;
  // Everything this start opens, closed in reverse by stop() or, if a later step fails, at once (STYLE 2).
  const opened = new UndoStack();
  try {
    const lock = claimNode(config.socketPath);
    opened.push('release the daemon lock', async () => lock.dispose());
    // Published at once, so a DEL the shim queues while we start lands where we drain; a directory an earlier
    // daemon published (another stateDir) is drained too.
    const previous = publishStateDir(config);
    const source = openSource(config, log.child({ component: 'source' }));
    await source.start();
    opened.push('stop the source', () => source.stop());
    const routed = config.routed ? await RoutedHost.open(config, log.child({ component: 'routed' })) : undefined;
    if (routed) opened.push('close the routed node', async () => routed.close());
    // The cluster network's name is the handler's to resolve; nothing asks before the handler exists.
    let clusterNetworkOf: CniHandler | undefined;
    // The DPDK engine's policy: compiled by the policy host, sent again by the DPDK reconcile to an engine that restarted.
    const engine = config.dpdk ? new EnginePolicyChannel(new EngineClient(config.dpdk.socketPath), config.policy.enforce) : undefined;
    const policies = new PolicyHost(source, log.child({ component: 'policy' }), {
      config, isClusterNetwork: (n) => clusterNetworkOf?.clusterNetworkName() === n, ...(engine ? { engine } : {}),
    });
    opened.push('close the policy datapath', async () => policies.close());
    const ipam = await IpamHost.open(config, source, log.child({ component: 'ipam' }), routed ? { nodeInfo: routed.node.nodeInfo() } : {});
    opened.push('close the IPAM service', () => ipam.close());
    routed?.followPlacement(ipam.ipam);
    const { registry, sriov, dpdk } = builtinDelegates(config, ipam, routed, policies, engine, log);
    if (dpdk) opened.push('stop the DPDK reconcile', async () => dpdk.close());
    if (sriov) {
      opened.push('close the SR-IOV host handle', async () => sriov.close());
      await sriov.delegate.repair(log.child({ component: SRIOV_TYPE }));
    }
    const records = new RecordStore(config.stateDir);
    const runner = new Runner({
      records, registry, binDirs: [...config.binDirs], delegateTimeoutMs: config.limits.delegateTimeoutSeconds * 1000, prestartDelegates: config.prestartDelegates,
      routes: kernelRouteOps, linkExists: kernelLinkExists, deviceInfoDir: config.deviceInfoDir,
      ...(policies.enforcing ? { watcher: policies } : {}),
    });
    const confDir = new ConfDir(config.confDir, log.child({ component: 'confdir' }));
    const metrics = new DaemonMetrics(config.nodeName, [ipam.ipam.registry, policies.registry]);
    const handler = new CniHandler({
      config, source, runner, registry, confDir, log, metrics, devices: sriov?.devices ?? new NoDevices(),
      isReady: () => ready,
      afterGc: (kept, gcLog) => ipam.afterGc(kept, gcLog),
    });
    clusterNetworkOf = handler;
    if (policies.enforcing) await policies.restore(routed ? await routed.endpoints() : [], runner.podInterfaces());
    await republishStatus(records, source, log);
    const server = await listenUnix(config.socketPath, {
      cni: (env, conf, invokedAs) => handler.handle(env, conf, invokedAs),
      ready: () => ready,
      accepting: (name) => name === IPAM_PLUGIN_TYPE || ready,
      status: (ns, name) => source.getStatus(ns, name),
      policy: (ns, name) => policies.describe(ns, name),
      ...(policies.enforcing ? { flows: policies.flows } : {}),
      view: async (name) => {
        if (name === 'metrics') return metrics.text();
        if (name === 'v1/source') return JSON.stringify(source.describe(), null, 2);
        return name === 'v1/routed/endpoints' ? routed?.endpointsView() : ipam.view(name);
      },
    }, log);
    opened.push('close the socket', () => new Promise<void>((resolve) => server.close(() => resolve())));
    // One drain at a time: the start-up passes and the periodic retry must not replay a DEL twice at once.
    let draining: Promise<void> | undefined;
    const dirs = () => [config.stateDir, ...(previous ? [previous] : []), ...shimStateDirs(confDir.files(), config)];
    const drain = () => (draining ??= drainAll(dirs(), config.stateDir, handler, log, () => stopping).finally(() => (draining = undefined)));
    await drain();
    ready = true;
    log.info({ socket: config.socketPath, node: config.nodeName }, 'plexusd ready');
    if (install) {
      // Only now can runtimes be sent here; the conflist stays when plexusd stops (restarts wait for it).
      const path = writePlexusConflist(install, config);
      log.info({ conflist: path, clusterNetwork: config.clusterNetwork }, 'Plexus conflist installed');
    }
    await drain();
    const hotplug = hotplugScanner(records, source, handler, log);
    source.onChange(() => hotplug(false));
    hotplug(true);
    const retry = setInterval(() => {
      void drain().catch((e: unknown) => log.error({ err: errorText(e) }, 'DEL queue drain failed; will retry'));
      hotplug(true);
    }, 10_000);
    retry.unref();

    /** Stop accepting, let requests in flight (and a queue replay) finish within the grace, close in reverse. */
    async function stop(): Promise<void> {
      ready = false;
      stopping = true;
      clearInterval(retry);
      const deadline = Date.now() + config.limits.shutdownGraceSeconds * 1000;
      server.close();
      server.closeIdleConnections();
      while (handler.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      server.closeAllConnections();
      await Promise.race([draining, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      for (const f of await opened.unwind()) log.warn({ step: f.what, err: errorText(f.error) }, 'shutdown step failed');
    }
    return { stop, handler, source, runner };
  } catch (err) {
    for (const f of await opened.unwind()) log.warn({ step: f.what, err: errorText(f.error) }, 'cleanup after a failed start failed');
    throw err;
  }
}

/**
 * One plexusd per socket, claimed before anything of the node is touched: a second daemon (a DaemonSet
 * rollout that overlaps, an operator's second start) is refused while the first is still starting, which
 * a live socket alone would not show yet. The lock names its holder; a dead holder's lock is broken.
 */
function claimNode(socketPath: string): FileLock {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  const lock = new FileLock(`${socketPath}.lock`, 0);
  FileLock.sweep(lock.path); // holder identities a SIGKILLed daemon left
  try {
    lock.acquire();
  } catch (e) {
    lock.dispose();
    throw new PlexusError('InvalidConfig', `another plexusd is already listening on ${socketPath} or starting (${errorText(e)})`, { cause: e });
  }
  return lock;
}

/** Writes our stateDir beside the socket; returns the other directory an earlier daemon had published there. */
function publishStateDir(config: DaemonConfig): string | undefined {
  const file = stateDirFilePath(config.socketPath);
  let previous: string | undefined;
  try {
    previous = readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    previous = undefined;
  }
  writeFileAtomic(file, `${config.stateDir}\n`);
  return previous && previous !== config.stateDir && isAbsolute(previous) ? previous : undefined;
}

/**
 * The built-in delegates (STYLE 3: one explicit registry): plexus-ipam, and plexus-routed, plexus-sriov and
 * plexus-dpdk when configured (each reaches IPAM through the registry).
 */
function builtinDelegates(
  config: DaemonConfig, ipam: IpamHost, routed: RoutedHost | undefined, policies: EndpointWatcher, engine: EnginePolicyChannel | undefined, log: Logger,
): { registry: Registry; sriov?: SriovHost; dpdk?: DpdkHost } {
  const registry = new Registry();
  registry.register(IPAM_PLUGIN_TYPE, new PlexusIpamDelegate(ipam.plugin(log.child({ component: IPAM_PLUGIN_TYPE })), config.limits.maxConcurrentRequests));
  if (routed) registry.register(ROUTED_TYPE, new RoutedDelegate({ node: routed.node, delegates: registry, watcher: policies }));
  const out: { registry: Registry; sriov?: SriovHost; dpdk?: DpdkHost } = { registry };
  if (config.sriov) {
    out.sriov = openSriov(config.sriov, config.stateDir, registry, log);
    registry.register(SRIOV_TYPE, out.sriov.delegate);
    if (config.sriov.serveSriovType) registry.register(SRIOV_CNI_TYPE, out.sriov.delegate);
  }
  if (config.dpdk) {
    out.dpdk = openDpdk(config.dpdk, config.stateDir, registry, log.child({ component: DPDK_TYPE }), engine!);
    registry.register(DPDK_TYPE, out.dpdk.delegate);
  }
  return out;
}

/**
 * Hot-plug (docs/kubernetes.md): each pod the source knows whose networks annotation differs from the one
 * its recorded attachments were made from (same UID) is brought up to date. A change of the source costs a
 * look at the pods' annotations in memory: the records are read only when one of them changed (a pod's
 * status updates do not count), and every 10 s (`full`), which retries a failed hot-plug. One scan at a time;
 * a change during a scan is scanned for after it.
 */
function hotplugScanner(records: RecordStore, source: Source, handler: CniHandler, log: Logger): (full: boolean) => void {
  let running: Promise<void> | undefined;
  let again = false;
  let seen = new Map<string, string | undefined>();
  const annotationsChanged = (): boolean => {
    const now = new Map(source.listPods().map((p) => [`${p.namespace}/${p.name}`, p.annotations[NETWORKS_ANNOTATION]]));
    const changed = now.size !== seen.size || [...now].some(([k, v]) => !seen.has(k) || seen.get(k) !== v);
    seen = now;
    return changed;
  };
  const scan = async () => {
    for (const rec of records.list()) {
      if (!rec.pod || rec.status === undefined) continue; // not a pod's, or its ADD has not finished
      const pod = source.getPod(rec.pod.namespace, rec.pod.name);
      if (!pod || (rec.pod.uid && pod.uid && pod.uid !== rec.pod.uid)) continue;
      if (pod.annotations[NETWORKS_ANNOTATION] === rec.networks) continue;
      await handler.hotplug(rec, pod);
    }
  };
  const run = (full: boolean): void => {
    if (!annotationsChanged() && !full) return;
    if (running) {
      again = true;
      return;
    }
    running = scan()
      .catch((e: unknown) => log.error({ err: errorText(e) }, 'hot-plug scan failed'))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          run(true);
        }
      });
  };
  return run;
}

/** The install section with its defaults resolved (cniConfDir: confDir; fromDir: beside this plexusd). */
function installOptions(config: DaemonConfig): (InstallOptions & { fromDir: string }) | undefined {
  const i = config.install;
  if (!i) return undefined;
  return { ...i, cniConfDir: i.cniConfDir ?? config.confDir, fromDir: i.fromDir ?? dirname(process.argv[1] ?? __filename) };
}

/**
 * A config that names no cluster network gets the primary conflist's (install.ts), waited for: on a new node
 * the primary CNI's own installer may write it after plexusd starts. Until then plexusd is not ready and writes
 * no conflist, so the runtime keeps the node NotReady rather than starting pods on half a setup.
 */
async function withPrimaryNetwork(config: DaemonConfig, install: InstallOptions, log: Logger): Promise<DaemonConfig> {
  for (let tries = 0; ; tries++) {
    try {
      const primary = findPrimaryConflist(install);
      log.info({ conflist: primary.file, clusterNetwork: primary.name }, 'cluster network: the primary conflist');
      return Object.freeze({ ...config, clusterNetwork: primary.name });
    } catch (e) {
      if (!(e instanceof PlexusError) || e.kind !== 'NetworkNotFound') throw e;
      if (tries % 30 === 0) log.warn({ err: errorText(e) }, 'waiting for the primary network\'s conflist (looked for every second); not ready until then');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** The configured source: a manifest directory, or the API server. */
function openSource(config: DaemonConfig, log: Logger): Source {
  const s = config.source;
  // Policy peers on other nodes are wanted where policy is enforced.
  const peers = config.policy.enforce && (config.routed !== undefined || config.dpdk !== undefined);
  if (s.type === 'file') return new FileSource(s.dir, log, s.rescanSeconds * 1000, s.statusDir ? { statusDir: s.statusDir, nodeName: config.nodeName } : undefined);
  return new KubeSource(s, config.nodeName, log, { peers });
}

/** Status survives restarts through the records (the file source keeps it in memory). */
async function republishStatus(records: RecordStore, source: Source, log: Logger): Promise<void> {
  for (const rec of records.list((f, e) => log.warn({ file: f, err: errorText(e) }, 'unreadable record'))) {
    if (rec.pod && rec.status) await source.publishStatus(rec.pod, rec.status);
  }
}

/** Every directory a shim may have queued DELs for us in: ours first, then the others (logged). */
async function drainAll(dirs: string[], own: string, handler: CniHandler, log: Logger, stopping: () => boolean): Promise<void> {
  for (const dir of [...new Set(dirs)]) {
    if (dir !== own && listQueuedDels(dir).length > 0) {
      log.info({ stateDir: dir, daemonStateDir: own }, 'a CNI config or an earlier daemon names another stateDir for this socket; draining its DEL queue too');
    }
    await drainDelQueue(dir, handler, log, stopping);
  }
}

function parseArgs(argv: string[]): { config: string; uninstall: boolean } {
  const i = argv.indexOf('--config');
  const eq = argv.find((a) => a.startsWith('--config='));
  const config = eq ? eq.slice('--config='.length) : i >= 0 ? argv[i + 1] : undefined;
  if (!config) throw new PlexusError('InvalidConfig', 'usage: plexusd [uninstall] --config FILE');
  return { config, uninstall: argv[0] === 'uninstall' };
}

/** `plexusd uninstall --config FILE`: the conflist, then the binaries, of the config's install section. */
function runUninstall(config: DaemonConfig, log: Logger): void {
  const install = installOptions(config);
  if (!install) throw new PlexusError('InvalidConfig', 'uninstall: the config has no install section (nothing was installed by plexusd)');
  log.info({ removed: uninstall(install), cniBinDir: install.cniBinDir, cniConfDir: install.cniConfDir }, 'Plexus uninstalled');
}

async function main(): Promise<void> {
  const bootLog = pino({ name: 'plexusd' });
  let config: DaemonConfig;
  let args: { config: string; uninstall: boolean };
  try {
    args = parseArgs(process.argv.slice(2));
    config = loadDaemonConfig(args.config);
  } catch (e) {
    bootLog.fatal({ err: errorText(e) }, 'invalid configuration');
    process.exit(2);
  }
  const log = pino({ name: 'plexusd', level: config.logLevel });
  if (args.uninstall) {
    runUninstall(config, log);
    return;
  }
  const daemon = await startDaemon(config, log);
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down: finishing requests in flight');
    daemon.stop().then(
      () => process.exit(0),
      (e) => {
        log.error({ err: errorText(e) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

if (require.main === module) {
  main().catch((e) => {
    // The stable code too, so an operator (and a test) can tell a store conflict (115) from a bad socket.
    process.stderr.write(`plexusd: ${e instanceof PlexusError ? `${e.code} (${e.cniCode}): ` : ''}${errorText(e)}\n`);
    process.exit(1);
  });
}

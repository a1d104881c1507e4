/**
 * `plexusd --config FILE`: the node daemon, assembled once, each part after what it needs (STYLE 22):
 *   1. config, and no other daemon on the socket; 2. the source, loaded; 3. the routed node side (its underlay addresses are published with the
 *   IPAM registration); 4. the IPAM service; 5. the built-in delegates, registered before anything runs them;
 *   6. the runner and the request handler; 7. the socket: plexus-ipam is served at once (delegates replaying
 *   queued DELs call it), everything else answers "not ready"; 8. drain the DEL queue the shim filled while we
 *   were down (DESIGN decision 2); 9. ready; drain again, and keep retrying what could not be drained.
 * SIGTERM/SIGINT: stop accepting, finish requests in flight (bounded), then exit.
 */
import pino, { Logger } from 'pino';
import { writeFileAtomic } from '../../core/atomic-file';
import { errorText, PlexusError } from '../../core/errors';
import { PlexusIpamDelegate } from '../../delegates/plexus-ipam';
import { Registry } from '../../delegates/registry';
import { RoutedDelegate } from '../../delegates/routed/delegate';
import { ROUTED_TYPE } from '../../delegates/routed/options';
import { IPAM_PLUGIN_TYPE } from '../../ipam';
import { stateDirFilePath } from '../api/protocol';
import { NoDevices } from '../planner/devices';
import { kernelLinkExists, kernelRouteOps } from '../runner/default-route-kernel';
import { Runner } from '../runner/runner';
import { RecordStore } from '../runner/sandbox-records';
import { FileSource } from '../source/file-source';
import type { Source } from '../source/source';
import { ConfDir } from './conf-dir';
import { DaemonConfig, loadDaemonConfig } from './config';
import { drainDelQueue } from './del-queue-drain';
import { CniHandler } from './handler';
import { IpamHost } from './ipam-host';
import { RoutedHost } from './routed-host';
import { DaemonMetrics } from './metrics';
import { listenUnix, removeStaleSocket } from './server';
import { shimStateDirs } from './shim-state-dirs';

export async function startDaemon(config: DaemonConfig, log: Logger) {
  let ready = false;
  await removeStaleSocket(config.socketPath); // another live plexusd on this socket: refuse before touching anything
  const source = new FileSource(config.source.dir, log.child({ component: 'source' }), config.source.rescanSeconds * 1000);
  await source.start();
  const routed = config.routed ? await RoutedHost.open(config, log.child({ component: 'routed' })) : undefined;
  const ipam = await IpamHost.open(config, source, log.child({ component: 'ipam' }), routed ? { nodeInfo: routed.node.nodeInfo() } : {});
  routed?.followPlacement(ipam.ipam);
  const registry = builtinDelegates(config, ipam, routed, log);
  const records = new RecordStore(config.stateDir);
  const runner = new Runner({
    records, registry, binDirs: [...config.binDirs], delegateTimeoutMs: config.limits.delegateTimeoutSeconds * 1000,
    routes: kernelRouteOps, linkExists: kernelLinkExists, deviceInfoDir: config.deviceInfoDir,
  });
  const confDir = new ConfDir(config.confDir, log.child({ component: 'confdir' }));
  const metrics = new DaemonMetrics(config.nodeName, [ipam.ipam.registry]);
  const handler = new CniHandler({
    config, source, runner, registry, confDir, log, metrics, devices: new NoDevices(),
    isReady: () => ready,
    afterGc: (kept, gcLog) => ipam.afterGc(kept, gcLog),
  });
  await republishStatus(records, source, log);
  const server = await listenUnix(config.socketPath, {
    cni: (env, conf, invokedAs) => handler.handle(env, conf, invokedAs),
    ready: () => ready,
    accepting: (name) => name === IPAM_PLUGIN_TYPE || ready,
    status: (ns, name) => source.getStatus(ns, name),
    view: async (name) => {
      if (name === 'metrics') return metrics.text();
      if (name === 'v1/source') return JSON.stringify(source.describe(), null, 2);
      return name === 'v1/routed/endpoints' ? routed?.endpointsView() : ipam.view(name);
    },
  }, log);
  writeFileAtomic(stateDirFilePath(config.socketPath), `${config.stateDir}\n`);
  // One drain at a time: the start-up passes and the periodic retry must not replay a DEL twice at once.
  let draining: Promise<void> | undefined;
  const drain = () => (draining ??= drainAll(config, confDir, handler, log).finally(() => (draining = undefined)));
  await drain();
  ready = true;
  log.info({ socket: config.socketPath, node: config.nodeName }, 'plexusd ready');
  await drain();
  const retry = setInterval(() => void drain(), 10_000);
  retry.unref();

  async function stop(): Promise<void> {
    ready = false;
    clearInterval(retry);
    const deadline = Date.now() + config.limits.shutdownGraceSeconds * 1000;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      const t = setInterval(() => {
        if (handler.inFlight === 0 || Date.now() > deadline) {
          clearInterval(t);
          server.closeAllConnections();
          resolve();
        }
      }, 20);
    });
    await source.stop();
    routed?.close();
    await ipam.close();
  }
  return { stop, handler, source, runner };
}

/** The built-in delegates (STYLE 3: one explicit registry): plexus-ipam, and plexus-routed when configured. */
function builtinDelegates(config: DaemonConfig, ipam: IpamHost, routed: RoutedHost | undefined, log: Logger): Registry {
  const registry = new Registry();
  registry.register(IPAM_PLUGIN_TYPE, new PlexusIpamDelegate(ipam.plugin(log.child({ component: IPAM_PLUGIN_TYPE })), config.limits.maxConcurrentRequests));
  if (routed) registry.register(ROUTED_TYPE, new RoutedDelegate({ node: routed.node, delegates: registry }));
  return registry;
}

/** Status survives restarts through the records (the file source keeps it in memory). */
async function republishStatus(records: RecordStore, source: Source, log: Logger): Promise<void> {
  for (const rec of records.list((f, e) => log.warn({ file: f, err: errorText(e) }, 'unreadable record'))) {
    if (rec.pod && rec.status) await source.publishStatus(rec.pod, rec.status);
  }
}

/** Our own queue, then those of CNI configs in confDir that point the shim at our socket with another stateDir. */
async function drainAll(config: DaemonConfig, confDir: ConfDir, handler: CniHandler, log: Logger): Promise<void> {
  await drainDelQueue(config.stateDir, handler, log);
  for (const dir of shimStateDirs(confDir.files(), config)) {
    log.warn({ stateDir: dir, daemonStateDir: config.stateDir }, 'a CNI config in confDir names another stateDir for this socket; draining its DEL queue too');
    await drainDelQueue(dir, handler, log);
  }
}

function parseArgs(argv: string[]): { config: string } {
  const i = argv.indexOf('--config');
  const eq = argv.find((a) => a.startsWith('--config='));
  const config = eq ? eq.slice('--config='.length) : i >= 0 ? argv[i + 1] : undefined;
  if (!config) throw new PlexusError('InvalidConfig', 'usage: plexusd --config FILE');
  return { config };
}

async function main(): Promise<void> {
  const bootLog = pino({ name: 'plexusd' });
  let config: DaemonConfig;
  try {
    config = loadDaemonConfig(parseArgs(process.argv.slice(2)).config);
  } catch (e) {
    bootLog.fatal({ err: errorText(e) }, 'invalid configuration');
    process.exit(2);
  }
  const log = pino({ name: 'plexusd', level: config.logLevel });
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

/**
 * `plexusd --config FILE`: the node daemon. Start-up order matters:
 *   1. load and validate the config; 2. open the socket (answers "not ready" meanwhile);
 *   3. load the source; 4. drain the DEL queue the shim filled while we were down (DESIGN decision 2);
 *   5. ready; drain again for DELs queued during step 4; keep retrying what could not be drained.
 * SIGTERM/SIGINT: stop accepting, finish requests in flight (bounded), then exit.
 */
import pino, { Logger } from 'pino';
import { errorText, PlexusError } from '../../core/errors';
import { parseRequest } from '../../cni/request';
import { listQueuedDels, removeQueuedDel } from '../api/del-queue';
import { FileSource } from '../source/file-source';
import { Registry } from '../../delegates/registry';
import { RecordStore } from '../runner/records';
import { Runner } from '../runner/runner';
import { kernelRouteOps, kernelLinkExists } from '../runner/default-route-kernel';
import { DaemonConfig, loadDaemonConfig } from './config';
import { ConfDir } from './conf-dir';
import { CniHandler } from './handler';
import { isPluginName, listenUnix } from './server';
import { IpamService } from './ipam-service';
import { ipamPluginFor } from './ipam-plugin';
import { RoutedService } from './routed';
import { writeFileAtomic } from '../../core/atomic-file';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';

export async function startDaemon(config: DaemonConfig, log: Logger) {
  let ready = false;
  const source = new FileSource(config.source.dir, log.child({ component: 'source' }), config.source.rescanSeconds * 1000);
  const records = new RecordStore(config.stateDir);
  const registry = new Registry();
  const runner = new Runner({
    records,
    registry,
    binDirs: [...config.binDirs],
    delegateTimeoutMs: config.limits.delegateTimeoutSeconds * 1000,
    routes: kernelRouteOps,
    linkExists: kernelLinkExists,
    deviceInfoDir: config.deviceInfoDir,
  });
  let ipam: IpamService | undefined;
  let routed: RoutedService | undefined;
  const handler = new CniHandler({
    config,
    source,
    runner,
    confDir: new ConfDir(config.confDir, log.child({ component: 'confdir' })),
    log,
    devicesFor: async () => ({}),
    isReady: () => ready,
    afterGc: (kept, gcLog) => ipam?.afterGc(kept, gcLog) ?? Promise.resolve(),
  });
  const server = await listenUnix(
    config.socketPath,
    {
      cni: (env, conf, invokedAs) => handler.handle(env, conf, invokedAs),
      ready: () => ready,
      accepting: (name) => (name === 'plexus-ipam' ? ipam !== undefined : ready),
      status: (ns, name) => source.getStatus(ns, name),
      view: async (name) => (name === 'v1/routed/endpoints' ? routed?.endpointsView() : ipam?.view(name)),
    },
    log,
  );
  await source.start();
  if (config.routed) {
    // Before the IPAM service: the node's underlay addresses and VTEP are published with its registration.
    routed = await RoutedService.open(config, (env, conf, name) => handler.handle(env, conf, name), log.child({ component: 'routed' }));
    registry.register('plexus-routed', routed.delegate);
    handler.setRouted(routed);
  }
  ipam = await IpamService.open(config, source, log.child({ component: 'ipam' }), routed ? { nodeInfo: routed.node.nodeInfo() } : {});
  handler.setIpamPlugin(ipamPluginFor(ipam, log.child({ component: 'plexus-ipam' })));
  routed?.followPlacement(ipam.ipam);
  // Status survives restarts through the records (the file source keeps it in memory).
  for (const rec of records.list((f, e) => log.warn({ file: f, err: errorText(e) }, 'unreadable record'))) {
    if (rec.pod && rec.status) await source.publishStatus(rec.pod, rec.status);
  }
  // One drain at a time: the start-up passes and the periodic retry must not replay a DEL twice at once.
  let draining: Promise<void> | undefined;
  const drain = () => (draining ??= drainDelQueue(config, handler, log).finally(() => (draining = undefined)));
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
    await ipam?.close();
  }
  return { stop, handler, source, runner };
}

/** Replay queued DELs oldest first; a DEL that fails stays queued and is retried later. */
async function drainDelQueue(config: DaemonConfig, handler: CniHandler, log: Logger): Promise<void> {
  for (const { file, item, error } of listQueuedDels(config.stateDir)) {
    if (!item) {
      quarantine(config, file, error ?? 'unreadable', log);
      continue;
    }
    try {
      parseRequest(item.env, item.config); // invalid items can never succeed: set them aside
    } catch (e) {
      quarantine(config, file, errorText(e), log);
      continue;
    }
    const reply = await handler.handle(item.env, item.config, isPluginName(item.invokedAs) ? item.invokedAs : 'plexus');
    if (reply.status === 200) {
      removeQueuedDel(config.stateDir, file);
      log.info({ file, containerId: item.env['CNI_CONTAINERID'] }, 'queued DEL done');
    } else {
      log.warn({ file, reply: reply.body }, 'queued DEL failed; will retry');
    }
  }
}

/** Never lose a queued request: move what cannot be replayed next to the queue, with the reason. */
function quarantine(config: DaemonConfig, file: string, reason: string, log: Logger): void {
  const dir = join(config.stateDir, 'del-queue', 'failed');
  try {
    const body = readFileSync(join(config.stateDir, 'del-queue', file), 'utf8');
    writeFileAtomic(join(dir, file), JSON.stringify({ reason, body }));
    removeQueuedDel(config.stateDir, file);
  } catch (e) {
    log.error({ file, err: errorText(e) }, 'cannot quarantine queued DEL');
    return;
  }
  log.error({ file, reason }, 'queued DEL cannot be replayed; moved to del-queue/failed');
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
    process.stderr.write(`plexusd: ${errorText(e)}\n`);
    process.exit(1);
  });
}

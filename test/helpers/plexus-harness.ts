/**
 * Integration harness: a "node" network namespace running a real bin/plexusd, "pods" as network namespaces,
 * and the CNI shim (bin/plexus) executed exactly as a container runtime does it (env + config on stdin),
 * inside the node. Everything a test creates is named with a random prefix and removed in `destroy()`:
 * namespaces by name, the daemon by PID, files by directory. Never pkill.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import yaml from 'js-yaml';
import { DaemonProcess, REPO_ROOT, nadManifest, podManifest, run, runAsync, waitLoaded, writeManifest } from '../../hack/cluster';

export { ipJson, run } from '../../hack/cluster';
export const ROOT = REPO_ROOT;
export const PLEXUS_BIN = join(ROOT, 'bin/plexus');
export const PLEXUSD_BIN = join(ROOT, 'bin/plexusd');
export const PLEXUSCTL_BIN = join(ROOT, 'bin/plexusctl');
export const CNI_BIN_DIR = '/usr/lib/cni';

export const rand = (n = 4) => randomBytes(n).toString('hex');
export const containerId = () => randomBytes(32).toString('hex');


export interface CniCall {
  containerId: string;
  netns?: string;
  ifName?: string;
  pod?: { namespace?: string; name: string; uid?: string };
  /** Full stdin; default: the plexus config of this cluster. */
  config?: string | Record<string, unknown>;
  env?: Record<string, string | undefined>;
  args?: string;
}

export interface CniOutput {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

export interface ClusterOptions {
  clusterNetwork?: Record<string, unknown>;
  daemon?: Record<string, unknown>;
  manifests?: Record<string, unknown>[];
  /** Runs once the node's netns exists, before the daemon starts (e.g. to expose an API server in it). */
  beforeDaemon?: (c: TestCluster) => Promise<void>;
}

export class TestCluster {
  readonly id = rand();
  readonly node = `plxt-${this.id}-node`;
  readonly dir = mkdtempSync(join(tmpdir(), `plexus-test-${this.id}-`));
  readonly socket = join(this.dir, 'plexus.sock');
  readonly stateDir = join(this.dir, 'state');
  readonly confDir = join(this.dir, 'cni');
  readonly manifestDir = join(this.dir, 'manifests');
  readonly hostLocalDir = join(this.dir, 'host-local');
  readonly logFile = join(this.dir, 'plexusd.log');
  private daemon: DaemonProcess | undefined;
  private readonly pods: string[] = [];
  private extraConfig: Record<string, unknown> = {};

  /** The config a runtime would pass to Plexus. */
  plexusConfig(version = '1.1.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: version, name: 'plexus', type: 'plexus', socketPath: this.socket, stateDir: this.stateDir, readinessTimeoutSeconds: 5, ...extra };
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster();
    await c.init(opts);
    return c;
  }

  private async init(opts: ClusterOptions): Promise<void> {
    for (const d of [this.stateDir, this.confDir, this.manifestDir, this.hostLocalDir]) mkdirSync(d, { recursive: true });
    run('ip', ['netns', 'add', this.node]);
    this.inNode('ip', ['link', 'set', 'lo', 'up']);
    const cluster = opts.clusterNetwork ?? this.ptpNetwork('cluster', '10.99.0.0/24');
    writeFileSync(join(this.confDir, '10-cluster.conflist'), JSON.stringify(cluster));
    if (opts.manifests) await this.writeManifests('objects.yaml', opts.manifests);
    this.extraConfig = opts.daemon ?? {};
    await opts.beforeDaemon?.(this);
    await this.startDaemon();
  }

  /** The default cluster network: Debian's ptp with host-local, like the demo. */
  ptpNetwork(name: string, subnet: string): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name,
      plugins: [{ type: 'ptp', ipam: { type: 'host-local', dataDir: this.hostLocalDir, ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] } }],
    };
  }

  hostLocal(subnet: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { type: 'host-local', dataDir: this.hostLocalDir, ranges: [[{ subnet, ...extra }]] };
  }

  readonly nad = nadManifest;
  readonly podManifest = podManifest;

  /** Writes manifests atomically and, when the daemon runs, waits until its source has loaded that file. */
  async writeManifests(file: string, objects: Record<string, unknown>[]): Promise<void> {
    const written = writeManifest(this.manifestDir, file, objects);
    if (this.daemon?.alive()) await waitLoaded(this.socket, written);
  }

  inNode(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}) {
    return run('ip', ['netns', 'exec', this.node, cmd, ...args], opts);
  }

  async startDaemon(readyTimeoutMs = 10_000): Promise<void> {
    const config = {
      socketPath: this.socket,
      stateDir: this.stateDir,
      binDirs: [CNI_BIN_DIR],
      confDir: this.confDir,
      clusterNetwork: 'cluster',
      source: { type: 'file', dir: this.manifestDir, rescanSeconds: 0.5 },
      deviceInfoDir: join(this.dir, 'devinfo'),
      logLevel: 'debug',
      ...this.extraConfig,
    };
    for (const [k, v] of Object.entries(config)) if (v === undefined) delete (config as Record<string, unknown>)[k]; // a test may drop a default
    const configPath = join(this.dir, 'plexusd.yaml');
    writeFileSync(configPath, yaml.dump(config));
    this.daemon = DaemonProcess.spawn({ netns: this.node, configPath, socket: this.socket, logFile: this.logFile });
    await this.daemon.waitReady(readyTimeoutMs);
  }

  /** The settings (merged over the test defaults) the next start of the daemon uses. */
  setDaemonConfig(daemonConfig: Record<string, unknown>): void {
    this.extraConfig = daemonConfig;
  }

  /** Restart the daemon, optionally with other settings (merged over the test defaults). */
  async restartDaemon(daemonConfig?: Record<string, unknown>): Promise<void> {
    await this.stopDaemon();
    if (daemonConfig) this.extraConfig = daemonConfig;
    await this.startDaemon();
  }

  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.daemon?.kill(signal, 60_000);
    this.daemon = undefined;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  makePod(): { name: string; path: string } {
    const name = `plxt-${this.id}-p${this.pods.length}`;
    run('ip', ['netns', 'add', name]);
    this.pods.push(name);
    return { name, path: `/var/run/netns/${name}` };
  }

  /** Run bin/plexus in the node exactly as a runtime would. */
  async cni(command: string, call: CniCall): Promise<CniOutput> {
    const pod = call.pod;
    const args = call.args ?? (pod ? `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace ?? 'default'};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${call.containerId}${pod.uid ? `;K8S_POD_UID=${pod.uid}` : ''}` : '');
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: call.containerId,
      CNI_NETNS: call.netns ?? '',
      CNI_IFNAME: call.ifName ?? 'eth0',
      CNI_PATH: CNI_BIN_DIR,
      CNI_ARGS: args,
    };
    for (const [k, v] of Object.entries(call.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const config = call.config === undefined ? this.plexusConfig() : call.config;
    const input = typeof config === 'string' ? config : JSON.stringify(config);
    return runProcess('ip', ['netns', 'exec', this.node, PLEXUS_BIN], env, input);
  }

  /** host-local leases currently held in this cluster (files named by address). */
  leases(): string[] {
    const out: string[] = [];
    let nets: string[] = [];
    try {
      nets = require('node:fs').readdirSync(this.hostLocalDir);
    } catch {
      return out;
    }
    for (const n of nets) {
      for (const f of require('node:fs').readdirSync(join(this.hostLocalDir, n)) as string[]) {
        if (/^[0-9a-f.:]+$/.test(f) && (f.includes('.') || f.includes(':'))) out.push(`${n}/${f}`);
      }
    }
    return out.sort();
  }

  async destroy(): Promise<void> {
    await this.stopDaemon('SIGKILL');
    for (const ns of [...this.pods, this.node]) run('ip', ['netns', 'del', ns], { allowFail: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** hack/cluster's runAsync, with stdout parsed as JSON when it is JSON. */
export async function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): Promise<CniOutput> {
  const out = await runAsync(cmd, args, { env, input });
  let json: unknown;
  try {
    json = out.stdout.trim() ? JSON.parse(out.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...out, json };
}

/**
 * DPDK peers for tests: plexus-dataplane as a process with its control API, and dpdk-testpmd as a pod's
 * application (in the pod's netns; unix sockets cross network namespaces). Both are stopped by PID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { jsonOf, unixHttp } from '../../core/unix-http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { expectEventually } from './eventually';
import { ROOT } from './plexus-harness';

export interface PortView {
  name: string;
  network: string;
  kind: string;
  linkUp: boolean;
  counters?: { rxPackets: number; txPackets: number; txDropped: number; flooded: number; faults: number; policyDropped: number };
}

/** The engine process and its control API. */
export class EngineProcess {
  /** Made when first used, not at construction: a describe that -t skips must leave nothing behind. */
  private madeDir = '';
  get dir(): string {
    return (this.madeDir ||= mkdtempSync(join(tmpdir(), 'plx-dp-')));
  }
  get socket(): string {
    return join(this.dir, 'engine.sock');
  }
  get socks(): string {
    return join(this.dir, 's');
  }
  private child: ChildProcess | undefined;
  private readonly prefix = `pxdp${randomBytes(3).toString('hex')}`;
  private out = '';

  /** `netns`: run the engine in a node's network namespace (`ip netns exec` execs it: the PID stays ours). */
  constructor(private readonly opts: { netns?: string; dpdk?: Record<string, unknown> } = {}) {}

  async start(): Promise<void> {
    const dpdk = { socketPath: this.socket, socketDir: this.socks, filePrefix: this.prefix, mbufs: 8191, maxSleepUs: 200, logLevel: 'info', ...this.opts.dpdk };
    writeFileSync(join(this.dir, 'engine.yaml'), JSON.stringify({ dpdk }));
    const cmd = [join(ROOT, 'bin/plexus-dataplane'), '--config', join(this.dir, 'engine.yaml')];
    this.child = this.opts.netns ? spawn('ip', ['netns', 'exec', this.opts.netns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.out = '';
    this.child.stdout!.on('data', (d: Buffer) => (this.out = (this.out + d.toString()).slice(-20000)));
    this.child.stderr!.on('data', (d: Buffer) => (this.out = (this.out + d.toString()).slice(-20000)));
    const child = this.child;
    // An engine that dies on its own (not by kill()) says how, so a test that then fails can be understood.
    child.once('exit', (code, signal) => {
      if (this.child === child) process.stderr.write(`plexus-dataplane exited by itself (code ${code}, signal ${signal}):\n${this.out.slice(-3000)}\n`);
    });
    await expectEventually(async () => expect((await this.call('GET', '/healthz')).status).toBe(200), { timeoutMs: 15_000, context: () => this.out.slice(-2000) });
  }

  /** The engine's log (pino JSON lines) and stderr, the last 20,000 characters. */
  output(): string {
    return this.out;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child;
    this.child = undefined;
    // A process a signal ended has no exit code but a signal code: waiting for its 'exit' would hang.
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const r = await unixHttp(this.socket, method, path, { body });
    return { status: r.status, json: jsonOf(r.body) };
  }

  async put(spec: Record<string, unknown>): Promise<void> {
    const r = await this.call('PUT', `/v1/ports/${spec['name']}`, spec);
    if (r.status !== 201 && r.status !== 200) throw new Error(`PUT ${spec['name']}: ${r.status} ${JSON.stringify(r.json)}`);
  }

  async ports(): Promise<Record<string, PortView>> {
    const list = (await this.call('GET', '/v1/ports')).json as PortView[];
    return Object.fromEntries(list.map((p) => [p.name, p]));
  }

  async destroy(): Promise<void> {
    await this.kill();
    if (this.madeDir) rmSync(this.madeDir, { recursive: true, force: true });
  }
}

/** dpdk-testpmd as a pod's application, in the pod's netns, polling on one lcore. */
export class Testpmd {
  private readonly child: ChildProcess;
  private out = '';

  /**
   * `mount`: run as the pod contract says (docs/dpdk.md): the pod's socket directory bind-mounted at
   * `containerDir`, in a mount namespace of its own (a tmpfs over /mnt holds the mount point, so nothing of the
   * host's filesystem changes); vdev paths then name the socket as the pod sees it.
   */
  constructor(netns: string, vdevs: string[], fwd: string[], opts: { prefix?: string; mount?: { hostDir: string; containerDir: string } } = {}) {
    const prefix = opts.prefix ?? `pxtp${randomBytes(3).toString('hex')}`;
    const testpmd = [
      'dpdk-testpmd', '--no-huge', '-m', '256', '--no-pci', '--lcores', '0@(0-1),1@0', '--file-prefix', prefix,
      '--log-level', 'lib.eal:error', ...vdevs.flatMap((v) => ['--vdev', v]),
      '--', '--total-num-mbufs', '8192', '--auto-start', '--stats-period', '1', ...fwd,
    ];
    const m = opts.mount;
    const args = m
      ? ['netns', 'exec', netns, 'unshare', '-m', 'sh', '-c', 'mount -t tmpfs plx /mnt && mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"', 'sh', m.containerDir, m.hostDir, ...testpmd]
      : ['netns', 'exec', netns, ...testpmd];
    this.child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.out = (this.out + d.toString()).slice(-20000)));
    this.child.stderr!.on('data', (d: Buffer) => (this.out = (this.out + d.toString()).slice(-20000)));
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill(signal);
    });
  }

  output(): string {
    return this.out;
  }
}


/**
 * Test support: a real etcd cluster on 127.0.0.1 (random free ports, temporary data directories), whose
 * members a test can SIGKILL and restart. Only processes started here are ever signalled, by PID.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const ETCD_BIN = process.env.PLEXUS_ETCD ?? '/usr/bin/etcd';
const ETCDCTL_BIN = path.join(path.dirname(ETCD_BIN), 'etcdctl');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
}

export class EtcdCluster {
  readonly members: Member[] = [];
  private readonly dir: string;
  private readonly token = `plexus-test-${process.pid}-${Date.now()}`;

  private constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-etcd-'));
  }

  static async start(size = 3): Promise<EtcdCluster> {
    const c = new EtcdCluster();
    for (let i = 0; i < size; i++) {
      c.members.push({
        name: `m${i}`, clientUrl: `http://127.0.0.1:${await freePort()}`, peerUrl: `http://127.0.0.1:${await freePort()}`,
        dataDir: path.join(c.dir, `m${i}`),
      });
    }
    try {
      for (const m of c.members) c.spawn(m);
      await c.waitHealthy();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  private spawn(m: Member): void {
    const cluster = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const proc = spawn(ETCD_BIN, [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', this.token,
      // Fast elections keep the test short; the data dir is a tmpfs-like temp dir anyway.
      '--heartbeat-interval', '50', '--election-timeout', '500', '--logger', 'zap', '--log-level', 'error',
    ], { stdio: 'ignore' });
    m.proc = proc;
    m.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  private ctl(args: string[], endpoints = this.endpoints): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(ETCDCTL_BIN, [`--endpoints=${endpoints.join(',')}`, '--command-timeout=2s', ...args], { env: { ...process.env, ETCDCTL_API: '3' } },
        (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
  }

  /** Wait until every running member answers and the cluster has a leader. */
  async waitHealthy(timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const running = this.members.filter((m) => m.proc && m.proc.exitCode === null).map((m) => m.clientUrl);
        await this.ctl(['endpoint', 'health'], running);
        await this.ctl(['put', '/plexus-test/health', String(Date.now())]);
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`etcd cluster not healthy after ${timeoutMs} ms: ${String(e)}`);
        await sleep(100);
      }
    }
  }

  /**
   * `etcdctl endpoint status` of the members that run, asked again until they all answer (a member just
   * restarted may not listen yet; etcdctl fails if any endpoint it is given does not answer).
   */
  private async status(timeoutMs = 10000): Promise<unknown[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.members.filter((m) => m.proc && m.proc.exitCode === null).map((m) => m.clientUrl);
      try {
        return JSON.parse(await this.ctl(['endpoint', 'status', '-w', 'json'], running)) as unknown[];
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
  }

  /** The store's revision as etcdctl reports it: every committed write (put or delete) bumps it by one. */
  async revision(): Promise<number> {
    const status = (await this.status()) as { Status: { header: { revision: number } } }[];
    return Math.max(...status.map((s) => s.Status.header.revision));
  }

  /** Index of the member that is leader now. */
  async leader(): Promise<number> {
    const out = (await this.status()) as { Endpoint: string; Status: { header: { member_id: number | string }; leader: number | string } }[];
    const lead = out.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
    const idx = this.members.findIndex((m) => m.clientUrl === lead?.Endpoint);
    if (idx < 0) throw new Error('no etcd leader');
    return idx;
  }

  async kill(i: number): Promise<void> {
    const m = this.members[i] as Member;
    if (m.proc?.pid !== undefined && m.proc.exitCode === null) process.kill(m.proc.pid, 'SIGKILL');
    await m.exited;
  }

  restart(i: number): void {
    this.spawn(this.members[i] as Member);
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

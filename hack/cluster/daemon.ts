/**
 * One plexusd as a process inside a node's netns: started with `nsenter --net` (not `ip netns exec`, which
 * gives the daemon a private mount namespace with its own /sys, so bpffs pins would die with it; nsenter
 * execs the command, so the child's PID is plexusd's), ready when /readyz answers, stopped by PID.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { unixHttp } from '../../core/unix-http';
import { join } from 'node:path';
import { REPO_ROOT, netnsPath, readText, sleep, track } from './process';

export interface DaemonStart {
  netns: string;
  configPath: string;
  socket: string;
  logFile: string;
  /** In its own session, outliving this process (the cluster CLI). */
  detached?: boolean;
}

export class DaemonProcess {
  private constructor(
    readonly pid: number,
    private readonly child: ChildProcess | undefined,
    private readonly start: DaemonStart,
  ) {}

  /** Starts plexusd; waits for nothing (see waitReady). */
  static spawn(start: DaemonStart): DaemonProcess {
    const out = openSync(start.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('nsenter', [`--net=${netnsPath(start.netns)}`, process.execPath, join(REPO_ROOT, 'bin/plexusd'), '--config', start.configPath], {
        stdio: ['ignore', out, out],
        detached: start.detached === true,
      });
    } finally {
      closeSync(out);
    }
    if (child.pid === undefined) throw new Error(`cannot start plexusd in ${start.netns}`);
    if (start.detached) child.unref();
    else track(child);
    child.on('error', () => undefined);
    return new DaemonProcess(child.pid, child, start);
  }

  alive(): boolean {
    if (this.child) return this.child.exitCode === null && this.child.signalCode === null;
    return pidAlive(this.pid);
  }

  /** Until /readyz answers 200; throws with the log's tail if the daemon exits or `stop()` says so. */
  async waitReady(timeoutMs: number, stop: () => string | undefined = () => undefined): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive()) throw new Error(`plexusd of ${this.start.netns} exited:\n${this.log(2000)}`);
      const why = stop();
      if (why) throw new Error(why);
      if ((await daemonGet(this.start.socket, '/readyz').catch(() => undefined))?.status === 200) return;
      await sleep(50);
    }
    throw new Error(`plexusd of ${this.start.netns} not ready after ${timeoutMs} ms:\n${this.log(2000)}`);
  }

  /** Sends `signal` by PID and waits until the process has exited. */
  async kill(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    if (!this.alive()) return;
    try {
      process.kill(this.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
    const deadline = Date.now() + timeoutMs;
    while (this.alive()) {
      if (Date.now() > deadline) throw new Error(`plexusd ${this.pid} of ${this.start.netns} still running ${timeoutMs} ms after ${signal}`);
      await sleep(20);
    }
  }

  /** The tail of the daemon's log. */
  log(maxChars = 20_000): string {
    try {
      return readFileSync(this.start.logFile, 'utf8').slice(-maxChars);
    } catch {
      return '';
    }
  }
}

/** Alive and not a zombie. */
export function pidAlive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

export function waitGoneSync(pid: number, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return true;
}

/** GET on the daemon's socket (2 s timeout). */
export function daemonGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return unixHttp(socketPath, 'GET', path, { timeoutMs: 2000 });
}

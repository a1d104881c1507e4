/**
 * Child processes for benchmarks: run a command to completion, or start one in the background. Every child is
 * remembered until it exits, so an interrupted benchmark can end exactly the processes it started, by PID
 * (`killStarted`), never by name.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** The whole environment of the child (PATH included); default: ours. */
  env?: NodeJS.ProcessEnv;
  /** SIGKILL the child after this long; it then resolves with code -1. */
  timeoutMs?: number;
}

const started = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  started.add(child);
  child.on('exit', () => started.delete(child));
  child.on('error', () => started.delete(child));
}

/** Sends SIGKILL to every child started here that has not exited yet (for SIGINT and fatal errors). */
export function killStarted(): void {
  for (const child of started) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`failed to run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    // A child that exits without reading its stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command and returns its stdout; a non-zero exit is an error carrying stderr. */
export async function must(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r.stdout;
}

/** A long-running child (a server): its output so far, whether it is still alive, and a kill by PID. */
export class Background {
  private readonly child: ChildProcess;
  private out = '';
  readonly exited: Promise<number>;

  constructor(readonly cmd: string, readonly args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(this.child);
    this.child.stdout?.on('data', (c: Buffer) => (this.out += c.toString()));
    this.child.stderr?.on('data', (c: Buffer) => (this.out += c.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('error', () => resolve(-1));
      this.child.on('close', (code) => resolve(code ?? -1));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** stdout and stderr interleaved, as far as read. */
  get output(): string {
    return this.out;
  }

  /** Ends the process (by its PID) if it still runs and waits for it; SIGKILL if SIGTERM is not enough. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.alive) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.alive && this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * The one process runner of hack/, test/ and bench/: run a command to completion (sync, or async as a runtime
 * runs a CNI plugin), or keep one in the background; and the few file and netns helpers every harness needs.
 * Every async child is remembered until it exits, so an interrupted run can end exactly the processes it
 * started, by PID (`killStarted`), never by name.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** A non-zero exit is returned instead of thrown. */
  allowFail?: boolean;
  /** The whole environment of the child; default: ours. */
  env?: NodeJS.ProcessEnv;
  /** Killed after this long (default 60 s for run, 120 s for runAsync): no command waits forever. */
  timeoutMs?: number;
}

/** The repository: found upwards from here, so the file also works bundled (bench/ bundles it into dist/). */
export const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = resolve(from); ; dir = resolve(dir, '..')) {
    if (existsSync(join(dir, 'Makefile')) && existsSync(join(dir, 'meta-plugin'))) return dir;
    if (dir === resolve(dir, '..')) return resolve(__dirname, '../..');
  }
}

/** Runs a command to completion; throws with its output unless allowFail. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): ExecResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input ?? '', env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000 });
  const res = { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (res.code !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')}: exit ${res.code}: ${(res.stderr || res.stdout).trim()}`);
  return res;
}

const started = new Set<ChildProcess>();

/** Remember `child` until it exits, for killStarted. */
export function track(child: ChildProcess): void {
  started.add(child);
  child.on('exit', () => started.delete(child));
  child.on('error', () => started.delete(child));
}

/** Sends SIGKILL to every async child started here that has not exited yet (for SIGINT and fatal errors). */
export function killStarted(): void {
  for (const child of started) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** Runs `cmd` with `opts.input` on stdin, collecting both outputs (as a runtime runs a CNI plugin). */
export function runAsync(cmd: string, args: string[], opts: Omit<RunOptions, 'allowFail'> = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000; // never wait forever: a hung child is killed and reported
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`failed to run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    // A child that exits without reading its stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command and returns its stdout; a non-zero exit is an error carrying stderr. */
export async function must(cmd: string, args: string[], opts: Omit<RunOptions, 'allowFail'> = {}): Promise<string> {
  const r = await runAsync(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  return r.stdout;
}

/** A long-running child (a server): its output so far, whether it is still alive, and a stop by PID. */
export class Background {
  private readonly child: ChildProcess;
  private out = '';
  readonly exited: Promise<number>;

  constructor(readonly cmd: string, readonly args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(this.child);
    this.child.stdout?.on('data', (c: Buffer) => (this.out += c.toString()));
    this.child.stderr?.on('data', (c: Buffer) => (this.out += c.toString()));
    this.exited = new Promise((resolvePromise) => {
      this.child.on('error', () => resolvePromise(-1));
      this.child.on('close', (code) => resolvePromise(code ?? -1));
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

export const netnsPath = (name: string): string => `/var/run/netns/${name}`;

/** `ip -j` inside a netns, parsed. */
export function ipJson(netns: string, args: string[]): any[] {
  const out = run('ip', ['-n', netns, '-j', ...args]).stdout.trim();
  return out ? JSON.parse(out) : [];
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

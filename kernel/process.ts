/**
 * Running a program to completion (a CNI plugin, as libcni's invoke package does): its env, its stdin, its
 * stdout and stderr collected, its exit status, a timeout that kills its whole session.
 *
 * Why not child_process.spawn: libuv forks, copying the page tables of a daemon of ~100 MiB, and its child does
 * more work before it execs; posix_spawn starts the child with clone(CLONE_VM | CLONE_VFORK), as Go's os/exec
 * (the runtime's side of CNI) does. Measured here from plexusd's process: 2.7 ms against 6.8 ms for /bin/true,
 * and a reference plugin's ADD 4 ms faster (docs/decisions.md D-13).
 *
 * The child's pipes become ordinary non-blocking stream sockets of the event loop. A run completes when both
 * of its output pipes are closed and it has exited, as child_process's 'close' does; it is reaped with
 * waitpid(pid) once the pipes close (libuv's own child handling reaps only the pids it spawned, so the two never
 * take each other's children).
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { type ChildExit, closeFd, pipe, reapChild, spawnProcess } from './libc';
import { withNetns } from './netns';

export interface ProgramOptions {
  /** The whole environment of the child (nothing is inherited). */
  env: Readonly<Record<string, string>>;
  /**
   * Written to its stdin, which is then closed. A promise: the program is started at once and its input
   * written when the promise fulfils; if it rejects, the program is killed without it and the run rejects
   * with that error (a plugin started ahead of its turn, Delegate.prestart).
   */
  input: string | Promise<string>;
  /** Its session is killed with SIGKILL this long after it was given its input. */
  timeoutMs: number;
  /** Start it inside this network namespace (default: the daemon's own). */
  netnsPath?: string;
}

export interface ProgramRun {
  /** The exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** It ran past `timeoutMs` and was killed. */
  timedOut: boolean;
}

/**
 * Reaps `pid` once its output pipes have closed. A child closes them by exiting, so its exit status is almost
 * always there at the first look; otherwise (it closed them and runs on, or is between closing its files and
 * becoming a zombie) the looks back off from the next loop turn to every 50 ms.
 */
function reapWhenDone(pid: number, done: (exit: ChildExit) => void, attempt = 0): void {
  let exit: ChildExit | null;
  try {
    exit = reapChild(pid);
  } catch {
    exit = { code: null, signal: null }; // ECHILD: reaped elsewhere, its status is lost (reported as a failure)
  }
  if (exit) return done(exit);
  const again = (): void => reapWhenDone(pid, done, attempt + 1);
  if (attempt < 3) setImmediate(again);
  else setTimeout(again, Math.min(50, 2 ** (attempt - 3)));
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/**
 * Runs `path` with `args` (argv[0] is `path`) to completion; it is started before this returns. Rejects only when it cannot be started (a
 * KernelError: ENOENT, EACCES, ETXTBSY...) or its input promise rejects; a program that fails is a resolved
 * run with its exit status.
 */
export async function runProgram(path: string, args: readonly string[], opts: ProgramOptions): Promise<ProgramRun> {
  // A promised input is always handled here, whatever happens to the program (an unhandled rejection would
  // end the daemon).
  if (typeof opts.input !== 'string') opts.input.catch(() => undefined);
  const env = Object.entries(opts.env).map(([k, v]) => `${k}=${v}`);
  const fds: number[] = [];
  const take = (): [number, number] => {
    const p = pipe();
    fds.push(...p);
    return p;
  };
  let pid: number | undefined;
  let stdin: [number, number];
  let stdout: [number, number];
  let stderr: [number, number];
  try {
    stdin = take();
    stdout = take();
    stderr = take();
    const child: [number, number, number] = [stdin[0], stdout[1], stderr[1]];
    withNetns(opts.netnsPath ?? null, () => {
      pid = spawnProcess(path, [path, ...args], env, child);
    });
  } catch (e) {
    for (const fd of fds) closeFd(fd);
    // Started, but the thread could not go back to its own netns: the program is not wanted.
    if (pid !== undefined) killAndReap(pid);
    throw e;
  }
  const child = pid!;
  // The child has its copies; the daemon keeps only its own ends.
  for (const fd of [stdin[0], stdout[1], stderr[1]]) closeFd(fd);

  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let open = 2;
    let timedOut = false;
    let withoutInput: { error: unknown } | undefined;
    // Once reaped, its pid may belong to someone else: nothing may signal it any more.
    let settled = false;
    const finish = (exit: ChildExit): void => {
      settled = true;
      clearTimeout(timer);
      if (withoutInput) return reject(withoutInput.error);
      const signal = exit.signal === null ? null : (SIGNAL_NAMES.get(exit.signal) ?? null);
      resolve({ code: exit.code, signal, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    };
    const reader = (fd: number, into: Buffer[]): Socket => {
      const s = new Socket({ fd, readable: true, writable: false });
      s.on('data', (c: Buffer) => into.push(c));
      s.on('error', () => undefined); // a read error ends the stream like EOF; 'close' follows
      s.on('close', () => {
        if (--open === 0) reapWhenDone(child, finish);
      });
      return s;
    };
    const readers = [reader(stdout[0], out), reader(stderr[0], err)];
    const input = new Socket({ fd: stdin[1], readable: false, writable: true });
    input.on('error', () => undefined); // a program may exit without reading its stdin (EPIPE)
    const kill = (): void => {
      if (!settled) signalSession(child);
      // Output of a killed run is not wanted, and a grandchild that left the session may hold the pipes open.
      for (const r of readers) r.destroy();
      input.destroy();
    };
    let timer: NodeJS.Timeout | undefined;
    // The timeout counts from when the program has its input: before, it only waits for it.
    const start = (text: string): void => {
      if (settled) return void input.destroy(); // it ended before its input came
      timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, opts.timeoutMs);
      input.end(text);
    };
    if (typeof opts.input === 'string') start(opts.input);
    else {
      opts.input.then(start, (error: unknown) => {
        withoutInput = { error };
        kill();
      });
    }
  });
}

/** SIGKILL to the program's session (it is its own session leader, so its pid is the group's id). */
function signalSession(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

function killAndReap(pid: number): void {
  signalSession(pid);
  reapWhenDone(pid, () => undefined);
}

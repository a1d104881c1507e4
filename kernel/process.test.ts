import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from './process';
import { KernelError } from './errno';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plexus-process-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sh = (script: string, input: string | Promise<string> = '', timeoutMs = 10_000) =>
  runProgram('/bin/sh', ['-c', script], { env: { PATH: '/usr/bin:/bin', DIR: dir }, input, timeoutMs });

/** Resolves once `path` exists. */
async function appears(path: string): Promise<void> {
  for (let i = 0; i < 500 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 10));
  if (!existsSync(path)) throw new Error(`${path} never appeared`);
}

/** True once `pid` is gone from /proc (reaped, not a zombie). */
async function reaped(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

test('stdin in, stdout and stderr out, the exit code; only the env given', async () => {
  const run = await sh('cat; echo "to stderr" >&2; echo "HOME=${HOME:-unset}"; exit 3', 'from stdin\n');
  expect(run).toEqual({ code: 3, signal: null, timedOut: false, stdout: 'from stdin\nHOME=unset\n', stderr: 'to stderr\n' });
});

test('a program killed by a signal reports the signal', async () => {
  expect(await sh('kill -TERM $$')).toMatchObject({ code: null, signal: 'SIGTERM' });
});

test('the child starts with no signal blocked or ignored (the daemon ignores SIGPIPE), in a session of its own', async () => {
  const run = await sh('grep -E "^Sig(Blk|Ign)" /proc/self/status; echo "session $(cut -d" " -f6 /proc/self/stat) pid $$"');
  expect(run.stdout).toMatch(/^SigBlk:\s+0+\nSigIgn:\s+0+\n/);
  const [, session, pid] = /session (\d+) pid (\d+)/.exec(run.stdout)!;
  expect(session).toBe(pid);
});

test('a program that cannot be started is a KernelError, and no descriptor is left open', async () => {
  const before = readdirSync('/proc/self/fd').length;
  await expect(runProgram(join(dir, 'missing'), [], { env: {}, input: '', timeoutMs: 1000 })).rejects.toMatchObject({ errnoName: 'ENOENT' });
  await expect(runProgram(join(dir, 'missing'), [], { env: {}, input: '', timeoutMs: 1000 })).rejects.toBeInstanceOf(KernelError);
  expect(readdirSync('/proc/self/fd').length).toBe(before);
});

const openFds = (): number => readdirSync('/proc/self/fd').length;

test('no descriptor is left open after a run, a timeout or a refused input', async () => {
  const before = openFds();
  await sh('cat', 'x');
  await sh('sleep 5', '', 100);
  await expect(sh('cat', Promise.reject(new Error('no')))).rejects.toThrow('no');
  for (let i = 0; i < 100 && openFds() !== before; i++) await new Promise((r) => setTimeout(r, 10)); // sockets close on the next turns
  expect(openFds()).toBe(before);
});

test('a program that exits before its input comes is not signalled afterwards (its pid may be reused)', async () => {
  let give!: (s: string) => void;
  const input = new Promise<string>((r) => (give = r));
  const kill = jest.spyOn(process, 'kill');
  try {
    const run = await sh('exit 4', input, 100);
    expect(run).toMatchObject({ code: 4, timedOut: false });
    give('late');
    await new Promise((r) => setTimeout(r, 300)); // past the timeout it would have armed
    expect(kill).not.toHaveBeenCalled();
  } finally {
    kill.mockRestore();
  }
});

test('a program that exits without reading a large input is not an error', async () => {
  expect(await sh('exit 0', 'x'.repeat(1 << 20))).toMatchObject({ code: 0 });
});

describe('input given later (a prestarted plugin)', () => {
  test('the program runs at once and reads its input when it comes; the timeout counts from then', async () => {
    let give!: (s: string) => void;
    const input = new Promise<string>((r) => (give = r));
    const running = sh('echo $$ > "$DIR/pid"; cat', input, 300);
    await appears(join(dir, 'pid'));
    await new Promise((r) => setTimeout(r, 500)); // longer than the timeout: it must not count yet
    give('late input');
    expect(await running).toMatchObject({ code: 0, timedOut: false, stdout: 'late input' });
  });

  test('an input that is refused kills the program before it reads anything; the run rejects with that error', async () => {
    let refuse!: (e: Error) => void;
    const input = new Promise<string>((_, r) => (refuse = r));
    const running = sh('echo $$ > "$DIR/pid"; cat > "$DIR/read"; touch "$DIR/acted"', input);
    await appears(join(dir, 'pid'));
    refuse(new Error('record not durable'));
    await expect(running).rejects.toThrow('record not durable');
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    expect(await reaped(pid)).toBe(true);
    expect(existsSync(join(dir, 'acted'))).toBe(false);
  });
});

test('the timeout kills the whole session, grandchildren included', async () => {
  const run = await sh('sleep 30 & echo $! > "$DIR/grandchild"; wait', '', 300);
  expect(run).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
  expect(await reaped(Number(readFileSync(join(dir, 'grandchild'), 'utf8')))).toBe(true);
});

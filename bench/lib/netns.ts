/**
 * Scratch network namespaces for benchmarks, with an undo stack (STYLE 2): every step that creates something
 * pushes its undo right after it succeeds, and `teardown` unwinds them in reverse. Benchmarks use `ip` as a
 * plain tool here; only product code is held to the kernel layer.
 */
import { runProgram } from '../../kernel';
import { must, runAsync } from '../../hack/cluster';

export const NETNS_DIR = '/var/run/netns';

export const ip = (...args: string[]): Promise<string> => must('ip', args);

/** `ip netns exec NS cmd...`: non-batch `ip` execs the command itself, so the PID is the command's. */
export const inNetns = (ns: string, cmd: string, ...args: string[]): string[] => ['netns', 'exec', ns, cmd, ...args];

export interface ExecResult {
  code: number;
  stdout: string;
}

/**
 * Runs `bin` straight inside the netns at `netnsPath` (the child inherits the netns of the thread that starts
 * it), so a measurement does not pay for an `ip netns exec` wrapper; stderr is dropped. It is started as a
 * container runtime starts a CNI plugin: Go's os/exec (containerd, CRI-O) uses clone(CLONE_VFORK), and so does
 * posix_spawn here, so neither side of a comparison pays for a fork of the benchmark's own Node process.
 */
export async function execInNetns(netnsPath: string, bin: string, env: Record<string, string>, input: string): Promise<ExecResult> {
  const r = await runProgram(bin, [], { env, input, timeoutMs: 120_000, netnsPath });
  return { code: r.code ?? -1, stdout: r.stdout };
}

export class UndoStack {
  private steps: { what: string; undo: () => Promise<unknown> }[] = [];
  private closed = false;

  /**
   * Records how to undo a step that just succeeded. After `unwind` (an interrupt arrived while a set-up was still
   * running) the step is undone at once and the set-up stops here.
   */
  async push(what: string, undo: () => Promise<unknown>): Promise<void> {
    if (!this.closed) {
      this.steps.push({ what, undo });
      return;
    }
    await undo().catch(() => undefined);
    throw new Error(`torn down while setting up (${what} undone)`);
  }

  /** Runs every undo in reverse order, once; returns the failures instead of stopping at the first. */
  async unwind(): Promise<string[]> {
    this.closed = true;
    const steps = this.steps.splice(0).reverse();
    const failures: string[] = [];
    for (const s of steps) {
      try {
        await s.undo();
      } catch (e) {
        failures.push(`failed to ${s.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failures;
  }
}

/** Deletes a netns; one that is already gone is success (DEL semantics, STYLE 9). */
export async function deleteNetns(name: string): Promise<void> {
  const r = await runAsync('ip', ['netns', 'del', name]);
  if (r.code !== 0 && !/No such file|not exist/i.test(r.stderr)) throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
}

/**
 * The namespaces of one benchmark fixture, all named `<prefix>-<role>`. Links created inside them need no undo of
 * their own: deleting a netns destroys every link in it, and the peer end of a veth with it.
 */
export class Scratch {
  readonly undo = new UndoStack();

  constructor(readonly prefix: string) {}

  /** Creates `<prefix>-<role>` with loopback up and returns its name. */
  async netns(role: string): Promise<string> {
    const name = `${this.prefix}-${role}`;
    // The undo goes first: an interrupt that kills `ip netns add` half-way must still find the netns to delete.
    await this.undo.push(`delete netns ${name}`, () => deleteNetns(name));
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** Idempotent; throws once with every failure if some undo failed. */
  async teardown(): Promise<void> {
    const failures = await this.undo.unwind();
    if (failures.length) throw new Error(failures.join('; '));
  }
}

/**
 * Network namespaces for kernel tests (STYLE 17): random names, `ip` as the independent witness, and cleanup by
 * name only (never pkill/killall).
 *
 *   const scope = new NetnsScope();
 *   afterEach(() => scope.cleanup());
 *   const ns = scope.make('plx-k');          // ip netns add plx-k-<random>
 *   ipJson(ns, 'link', 'show');              // ip -n <name> -j link show
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestNetns {
  /** The name `ip netns` knows it by. */
  readonly name: string;
  /** /run/netns/<name>: what product code receives as a netns path. */
  readonly path: string;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * `describe` for tests that need root (network namespaces): without root they fail with that reason instead of
 * being skipped, so a run that did not test the kernel never looks green.
 */
export function describeAsRoot(name: string, fn: () => void): void {
  describe(name, () => {
    beforeAll(() => {
      if (!isRoot()) throw new Error(`${name}: needs root (network namespaces); run the tests as root`);
    });
    fn();
  });
}

/** Runs a command without a shell; returns stdout; throws with stderr in the message. */
export function run(cmd: string, args: readonly string[], opts: { input?: string } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
      ...(opts.input === undefined ? {} : { input: opts.input }),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Runs `cmd args` inside the netns (`ip netns exec`). */
export function runIn(ns: TestNetns, cmd: string, args: readonly string[]): string {
  return run('ip', ['netns', 'exec', ns.name, cmd, ...args]);
}

/** `ip -n <ns> -j <args>` parsed; `ns` null = the host netns. */
export function ipJson<T = unknown>(ns: TestNetns | null, ...args: string[]): T {
  const out = run('ip', [...(ns ? ['-n', ns.name] : []), '-j', ...args]);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

/** `ip -n <ns> <args>`; `ns` null = the host netns. */
export function ip(ns: TestNetns | null, ...args: string[]): string {
  return run('ip', [...(ns ? ['-n', ns.name] : []), ...args]);
}

/** A short random suffix; interface names must stay under 16 bytes. */
export function randomSuffix(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

/** A random interface name such as "plx1a2b3c" (at most 15 bytes). */
export function randomIfName(prefix = 'plx'): string {
  const name = `${prefix}${randomSuffix()}`;
  if (name.length > 15) throw new Error(`interface name ${name} too long; use a shorter prefix`);
  return name;
}

export function makeNetns(prefix = 'plx-t'): TestNetns {
  const name = `${prefix}-${randomSuffix(4)}`;
  run('ip', ['netns', 'add', name]);
  return { name, path: `/run/netns/${name}` };
}

/** Deletes a netns by name; already gone is fine. Links inside it go with it. */
export function deleteNetns(name: string): void {
  try {
    run('ip', ['netns', 'del', name]);
  } catch (err) {
    if (!/No such file|not found|Invalid argument/i.test((err as Error).message)) throw err;
  }
}

/** Deletes a host-netns link by name; already gone is fine. */
export function deleteHostLink(name: string): void {
  try {
    run('ip', ['link', 'del', 'dev', name]);
  } catch (err) {
    if (!/Cannot find device|does not exist/i.test((err as Error).message)) throw err;
  }
}

/** Tracks what a test created and removes it, by name, in reverse order of creation. */
export class NetnsScope {
  private readonly undo: Array<() => void> = [];

  make(prefix = 'plx-t'): TestNetns {
    const ns = makeNetns(prefix);
    this.undo.push(() => deleteNetns(ns.name));
    return ns;
  }

  /** Remember a host-netns link to delete at cleanup. */
  hostLink(name: string): string {
    this.undo.push(() => deleteHostLink(name));
    return name;
  }

  /** Any other cleanup step (close a handle, stop a process by pid). */
  defer(step: () => void): void {
    this.undo.push(step);
  }

  /** Runs every cleanup step, even when some fail, and then reports the first failure. */
  cleanup(): void {
    let first: unknown;
    while (this.undo.length > 0) {
      const step = this.undo.pop() as () => void;
      try {
        step();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** `tc -n <ns> -j <args>` parsed (`tc` prints nothing at all for an empty list); `ns` null = the host netns. */
export function tcJson<T = unknown>(ns: TestNetns | null, ...args: string[]): T {
  const out = run('tc', [...(ns ? ['-n', ns.name] : []), '-j', ...args]);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

/** `bpftool -j <args>` parsed. */
export function bpftoolJson<T = unknown>(...args: string[]): T {
  const out = run('bpftool', ['-j', ...args]);
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

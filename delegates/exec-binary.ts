/**
 * The external-binary delegate: runs any CNI plugin binary the way libcni's invoke package does
 * (CNI spec 2.4): look the type up in the search path, pass the CNI env and the config on stdin, parse
 * stdout; retry the exec on "text file busy" (a binary being replaced); kill it after a timeout. A plugin's
 * process can also be started ahead of its turn and handed its config when the turn comes (`prestart`).
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { PlexusError, kindForCniCode } from '../core/errors';
import { hasErrno, type ProgramRun, runProgram } from '../kernel';
import { cniEnvOf, type Delegate, type PluginCall, type PluginCallEnv, type Prestarted } from './contract';

const TYPE_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const ETXTBSY_RETRIES = 5;

/** Find `type` in `dirs`, in order. The type is validated first: it must never be a path. */
export function findBinary(type: string, dirs: readonly string[]): string | undefined {
  if (!TYPE_RE.test(type)) return undefined;
  for (const dir of dirs) {
    const p = join(dir, type);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const envOf = (call: PluginCallEnv): Record<string, string> => ({ ...cniEnvOf(call), PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' });

function runOnce(bin: string, call: PluginCallEnv, input: string | Promise<string>): Promise<ProgramRun> {
  // The plugin runs in a session of its own, so a timeout kills it and anything it started (a shell's sleep).
  return runProgram(bin, [], { env: envOf(call), input, timeoutMs: call.timeoutMs });
}

/** Why a prestarted process is killed unused; never seen by a caller. */
const UNUSED = new Error('prestarted plugin not used');

export class BinaryDelegate implements Delegate {
  constructor(private readonly type: string) {}

  async exec(call: PluginCall): Promise<unknown> {
    const bin = this.find(call);
    return this.interpret(await this.spawnRetrying(bin, call), call);
  }

  /**
   * Starts the plugin's process now and hands it its config later: a CNI plugin reads its config from stdin
   * before it acts on anything, so until `run` it only loads. Undefined when the binary is not found; that
   * error, or a failure to start it, surfaces at its turn as `exec`'s would.
   */
  prestart(call: PluginCallEnv): Prestarted | undefined {
    let give!: (config: string) => void;
    let refuse!: (e: unknown) => void;
    const input = new Promise<string>((resolve, reject) => {
      give = resolve;
      refuse = reject;
    });
    let bin: string;
    try {
      bin = this.find(call);
    } catch {
      return undefined;
    }
    const pending = runOnce(bin, call, input);
    pending.catch(() => undefined); // an abandoned one rejects with UNUSED
    const started = envOf(call);
    let taken = false;
    return {
      run: async (c: PluginCall): Promise<unknown> => {
        // Only for the very call it was started for; anything else runs as usual.
        if (taken || c.command !== call.command || c.timeoutMs !== call.timeoutMs || !sameEnv(envOf(c), started)) {
          if (!taken) refuse(UNUSED);
          taken = true;
          return this.exec(c);
        }
        taken = true;
        give(JSON.stringify(c.config));
        let outcome: ProgramRun;
        try {
          outcome = await pending;
        } catch {
          return this.exec(c); // it could not be started (ETXTBSY...): as usual, with exec's retries and errors
        }
        return this.interpret(outcome, c);
      },
      abandon: (): void => {
        if (!taken) refuse(UNUSED);
        taken = true;
      },
    };
  }

  private find(call: PluginCallEnv): string {
    const bin = findBinary(this.type, call.env.path);
    if (!bin) throw new PlexusError('InvalidConfig', `failed to find plugin "${this.type}" in path [${call.env.path.join(' ')}]`);
    return bin;
  }

  /** What the plugin printed and how it exited, as the CNI result or error it means. */
  private interpret(outcome: ProgramRun, call: PluginCall): unknown {
    const stderr = outcome.stderr.trim();
    if (stderr) call.log.debug({ plugin: this.type, stderr: stderr.slice(0, 2000) }, 'delegate stderr');
    if (outcome.timedOut) {
      throw new PlexusError('DelegateTimeout', `plugin "${this.type}" ${call.command} timed out after ${call.timeoutMs} ms`);
    }
    if (outcome.code !== 0) throw failure(this.type, call.command, outcome);
    const text = outcome.stdout.trim();
    if (text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new PlexusError('DecodeFailure', `plugin "${this.type}" ${call.command} printed output that is not JSON`);
    }
  }

  private async spawnRetrying(bin: string, call: PluginCall): Promise<ProgramRun> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runOnce(bin, call, JSON.stringify(call.config));
      } catch (e) {
        if (hasErrno(e, 'ETXTBSY') && attempt < ETXTBSY_RETRIES) {
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        throw new PlexusError('IoFailure', `failed to execute plugin "${this.type}": ${(e as Error).message}`, { cause: e });
      }
    }
  }
}

function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
/** A delegate's error result keeps its CNI code when it is below 100 (the spec's range); others become 101. */
function failure(type: string, command: string, o: ProgramRun): PlexusError {
  let parsed: { code?: unknown; msg?: unknown; details?: unknown } | undefined;
  try {
    parsed = JSON.parse(o.stdout.trim()) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  const code = typeof parsed?.code === 'number' ? parsed.code : undefined;
  const msg = typeof parsed?.msg === 'string' ? parsed.msg : o.stderr.trim().split('\n').pop() || `exit ${o.code ?? o.signal}`;
  const spec = code !== undefined && code > 0 && code < 100;
  const kind = spec ? (kindForCniCode(code) ?? 'DelegateFailed') : 'DelegateFailed';
  const details = typeof parsed?.details === 'string' && parsed.details ? parsed.details : undefined;
  return new PlexusError(kind, `plugin "${type}" ${command} failed: ${msg}`, { ...(details ? { details } : {}), ...(spec ? { cniCode: code } : {}) });
}

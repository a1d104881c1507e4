/**
 * The external-binary delegate: runs any CNI plugin binary the way libcni's invoke package does
 * (CNI spec 2.4): look the type up in the search path, pass the CNI env and the config on stdin, parse
 * stdout; retry the exec on "text file busy" (a binary being replaced); kill it after a timeout.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { PlexusError, kindForCniCode } from '../core/errors';
import { cniEnvOf, type Delegate, type PluginCall } from './contract';

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

interface ExecOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function runOnce(bin: string, call: PluginCall): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], {
      env: { ...cniEnvOf(call), PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a timeout kills the plugin and anything it started (e.g. a shell's sleep).
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, call.timeoutMs);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined); // a plugin may exit without reading stdin
    child.stdin.end(JSON.stringify(call.config));
  });
}

export class BinaryDelegate implements Delegate {
  constructor(private readonly type: string) {}

  async exec(call: PluginCall): Promise<unknown> {
    const bin = findBinary(this.type, call.env.path);
    if (!bin) {
      throw new PlexusError('InvalidConfig', `failed to find plugin "${this.type}" in path [${call.env.path.join(' ')}]`);
    }
    const outcome = await this.spawnRetrying(bin, call);
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

  private async spawnRetrying(bin: string, call: PluginCall): Promise<ExecOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await runOnce(bin, call);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ETXTBSY' && attempt < ETXTBSY_RETRIES) {
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        throw new PlexusError('IoFailure', `failed to execute plugin "${this.type}": ${(e as Error).message}`, { cause: e });
      }
    }
  }
}

/** A delegate's error result keeps its CNI code when it is below 100 (the spec's range); others become 101. */
function failure(type: string, command: string, o: ExecOutcome): PlexusError {
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

/**
 * `plexus`: the CNI binary the container runtime executes. A small bundled script, Node core modules only
 * (DESIGN decision 1): it validates the invocation, forwards `{env, config}` to plexusd and prints the reply.
 *
 *   VERSION      answered here, no daemon needed.
 *   ADD, CHECK,  wait for the daemon to be ready for `readinessTimeoutSeconds` (default 30; STATUS 5),
 *   GC, STATUS   then fail with 11 (try again later), or 50 for STATUS (CNI spec 2.1).
 *   DEL          if the daemon cannot be reached, queue the request durably and succeed (decision 2).
 */
import { readFileSync } from 'node:fs';
import { basename, isAbsolute } from 'node:path';
import { PlexusError, errorText } from '../../core/errors';
import { CNI_ENV_KEYS, CniRequest, Env, parseRequest } from '../../cni/request';
import { LATEST_VERSION, SUPPORTED_VERSIONS, configVersion, versionInfo } from '../../cni/version';
import { enqueueDel } from '../api/del-queue';
import { DEFAULT_SOCKET_PATH, DEFAULT_STATE_DIR, isPluginName, stateDirFilePath, type PluginName } from '../api/protocol';
import { callWhenReady } from './client';

interface Output {
  code: number;
  stdout?: string;
  stderr?: string;
}

export async function runShim(env: Env, stdin: string): Promise<Output> {
  if (!env['CNI_COMMAND']) {
    // As the reference skel does when called by hand: say what this is.
    return { code: 0, stderr: `Plexus CNI plugin\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n` };
  }
  let errVersion = LATEST_VERSION as string;
  try {
    if (env['CNI_COMMAND'] === 'VERSION') return { code: 0, stdout: JSON.stringify(versionInfo()) };
    const req = parseRequest(env, stdin);
    errVersion = req.cniVersion;
    return await forward(req, env, stdin);
  } catch (e) {
    const err = e instanceof PlexusError ? e : new PlexusError('Internal', `plexus: ${errorText(e)}`, { cause: e });
    if (err.kind === 'DecodeFailure') errVersion = LATEST_VERSION;
    else errVersion = safeVersion(stdin) ?? errVersion;
    return { code: 1, stdout: JSON.stringify(err.toCni(errVersion)) };
  }
}

async function forward(req: CniRequest, env: Env, stdin: string): Promise<Output> {
  const name = invokedAs(env);
  // As plexus-ipam, our settings live in the delegate's `ipam` section; as plexus, at the top level.
  const section = name === 'plexus-ipam' ? objectKey(req.config, 'ipam') : req.config;
  const socketPath = stringKey(section, 'socketPath') ?? DEFAULT_SOCKET_PATH;
  const configuredStateDir = stringKey(section, 'stateDir');
  const payload = { env: pickCniEnv(env), config: stdin, invokedAs: name };
  const waitSeconds = numberKey(section, 'readinessTimeoutSeconds') ?? (req.command === 'STATUS' ? 5 : 30);
  // A DEL never waits long and never fails for want of a daemon: it is queued instead.
  const deadline = Date.now() + (req.command === 'DEL' ? 0 : waitSeconds * 1000);
  const reply = await callWhenReady(socketPath, payload, deadline);
  if (reply) return { code: reply.status === 200 ? 0 : 1, stdout: reply.body };
  if (req.command === 'DEL') {
    // Where the daemon will drain it: the stateDir it publishes beside its socket wins over the config's.
    const stateDir = daemonStateDir(socketPath) ?? configuredStateDir ?? DEFAULT_STATE_DIR;
    enqueueDel(stateDir, { env: payload.env, config: stdin, invokedAs: name, queuedAt: new Date().toISOString() });
    return { code: 0, stderr: `plexus: daemon at ${socketPath} unreachable; DEL queued in ${stateDir}\n` };
  }
  const kind = req.command === 'STATUS' ? 'NotAvailable' : 'TryAgainLater';
  throw new PlexusError(kind, `plexus daemon at ${socketPath} is not ready after ${waitSeconds}s`);
}

/** The name the runtime executed: the native forwarder passes it on; run directly, our own file name. */
function invokedAs(env: Env): PluginName {
  const name = env['PLEXUS_INVOKED_AS'] || basename(process.argv[1] ?? 'plexus');
  return isPluginName(name) ? name : 'plexus';
}

/** The stateDir a daemon on this socket published (an absolute path), if it ever started since boot. */
function daemonStateDir(socketPath: string): string | undefined {
  try {
    const dir = readFileSync(stateDirFilePath(socketPath), 'utf8').trim();
    return isAbsolute(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

function pickCniEnv(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of CNI_ENV_KEYS) if (env[k] !== undefined) out[k] = env[k]!;
  return out;
}

function objectKey(conf: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = conf[key];
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function stringKey(conf: Record<string, unknown>, key: string): string | undefined {
  const v = conf[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !isAbsolute(v)) {
    throw new PlexusError('InvalidConfig', `plexus config: "${key}" must be an absolute path`);
  }
  return v;
}

function numberKey(conf: Record<string, unknown>, key: string): number | undefined {
  const v = conf[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= 0 && v <= 3600)) {
    throw new PlexusError('InvalidConfig', `plexus config: "${key}" must be a number of seconds between 0 and 3600`);
  }
  return v;
}

function safeVersion(stdin: string): string | undefined {
  try {
    const v = configVersion(JSON.parse(stdin) as Record<string, unknown>);
    return (SUPPORTED_VERSIONS as readonly string[]).includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

if (require.main === module) {
  runShim(process.env, readStdin()).then(
    (out) => {
      if (out.stderr) process.stderr.write(out.stderr);
      if (out.stdout) process.stdout.write(out.stdout.endsWith('\n') ? out.stdout : `${out.stdout}\n`);
      process.exitCode = out.code;
    },
    (e) => {
      process.stdout.write(JSON.stringify({ cniVersion: LATEST_VERSION, code: 999, msg: `plexus: ${errorText(e)}` }) + '\n');
      process.exitCode = 1;
    },
  );
}

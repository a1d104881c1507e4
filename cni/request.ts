/**
 * Decoding a CNI invocation (env + stdin config) into a typed request, validating everything before use
 * (CNI spec 2.2, DESIGN decision 8). Core-module-only: the shim validates with the same code as the daemon,
 * so a request the shim accepts is one the daemon accepts.
 *
 * Order of checks follows the reference skel: command, then env (code 4), then config decode (6), then
 * version (1). A DEL's CNI_NETNS may be empty or gone; ADD and CHECK need an existing netns.
 */
import { statfsSync } from 'node:fs';
import { PlexusError } from '../core/errors';
import { ContainerId, IfName, NetnsPath, PodRef, parseContainerId, parseIfName, parseNetnsPath } from './ids';
import { CniVersion, configVersion, requireVersionFor } from './version';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export interface CniRequest {
  command: CniCommand;
  containerId?: ContainerId;
  /** Empty when a DEL came without a netns (containerd's second DEL). */
  netns?: NetnsPath | '';
  ifName?: IfName;
  /** CNI_ARGS as given, for delegates, and parsed. */
  argsRaw: string;
  args: Record<string, string>;
  path: string[];
  config: Record<string, unknown>;
  cniVersion: CniVersion;
  /** The pod the runtime names (K8S_POD_*), or null. Podman names no namespace: it is `default`. */
  podRef: PodRef | null;
}

export type Env = Record<string, string | undefined>;

/** Env vars the daemon needs; the shim forwards only these. */
export const CNI_ENV_KEYS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'];

export function parseCommand(env: Env): CniCommand {
  const cmd = env['CNI_COMMAND'];
  if (!cmd) throw new PlexusError('InvalidEnv', 'CNI_COMMAND is required');
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    throw new PlexusError('InvalidEnv', `CNI_COMMAND "${cmd.slice(0, 32)}" is not one of ${COMMANDS.join(', ')}`);
  }
  return cmd as CniCommand;
}

export interface ParseOptions {
  /** Check that a netns path is an existing network namespace (the daemon checks; tests may stub). */
  isNetns?: (path: string) => boolean;
}

export function parseRequest(env: Env, stdin: string, opts: ParseOptions = {}): CniRequest {
  return buildRequest(env, () => decodeConfig(stdin), opts);
}

/**
 * A request from the CNI env and an already decoded config: what a built-in delegate called in-process
 * receives (no JSON round trip), validated exactly as parseRequest validates a runtime's.
 */
export function requestOf(env: Env, config: Record<string, unknown>, opts: ParseOptions = {}): CniRequest {
  return buildRequest(env, () => config, opts);
}

/** The checks in skel's order: env (4), then the config (6), then its version (1). */
function buildRequest(env: Env, decode: () => Record<string, unknown>, opts: ParseOptions): CniRequest {
  const command = parseCommand(env);
  const needsSandbox = command === 'ADD' || command === 'CHECK' || command === 'DEL';
  const containerId = needsSandbox ? parseContainerId(env['CNI_CONTAINERID']) : undefined;
  const ifName = needsSandbox ? parseIfName(env['CNI_IFNAME']) : undefined;
  let netns: NetnsPath | '' | undefined;
  if (command === 'ADD' || command === 'CHECK') {
    netns = parseNetnsPath(env['CNI_NETNS']);
    const isNetns = opts.isNetns ?? isNetnsPath;
    if (!isNetns(netns)) {
      throw new PlexusError('InvalidEnv', `CNI_NETNS ${JSON.stringify(netns)} is not an existing network namespace`);
    }
  } else if (command === 'DEL') {
    netns = env['CNI_NETNS'] ? parseNetnsPath(env['CNI_NETNS']) : '';
  }
  if (command === 'GC' && !env['CNI_PATH']) throw new PlexusError('InvalidEnv', 'CNI_PATH is required for GC');
  const argsRaw = env['CNI_ARGS'] ?? '';
  const args = parseCniArgs(argsRaw);
  const config = decode();
  const cniVersion = requireVersionFor(command, configVersion(config));
  const req: CniRequest = {
    command,
    argsRaw,
    args,
    path: (env['CNI_PATH'] ?? '').split(':').filter(Boolean),
    config,
    cniVersion,
    podRef: podRefFromArgs(args),
  };
  if (containerId !== undefined) req.containerId = containerId;
  if (ifName !== undefined) req.ifName = ifName;
  if (netns !== undefined) req.netns = netns;
  return req;
}

export function decodeConfig(stdin: string): Record<string, unknown> {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (e) {
    throw new PlexusError('DecodeFailure', `failed to decode network config from stdin: ${(e as Error).message}`);
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) {
    throw new PlexusError('DecodeFailure', 'network config on stdin is not a JSON object');
  }
  return conf as Record<string, unknown>;
}

/** CNI_ARGS: `K=V;K=V` (CNI spec 2.2). A pair without '=' is invalid env. */
export function parseCniArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new PlexusError('InvalidEnv', `CNI_ARGS: invalid pair ${JSON.stringify(pair.slice(0, 64))}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

// Pod names are DNS-1123 subdomains; podman passes container names (letters, digits, '_', '.', '-').
const POD_NAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9])?$/;
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const UID_RE = /^[a-zA-Z0-9-]{1,64}$/;

export function podRefFromArgs(args: Record<string, string>): PodRef | null {
  const name = args['K8S_POD_NAME'];
  if (!name) return null;
  const namespace = args['K8S_POD_NAMESPACE'] || 'default';
  if (!POD_NAME_RE.test(name)) throw new PlexusError('InvalidEnv', `CNI_ARGS: K8S_POD_NAME ${JSON.stringify(name.slice(0, 64))} is not a valid pod name`);
  if (!NAMESPACE_RE.test(namespace)) {
    throw new PlexusError('InvalidEnv', `CNI_ARGS: K8S_POD_NAMESPACE ${JSON.stringify(namespace.slice(0, 64))} is not a valid namespace`);
  }
  const uid = args['K8S_POD_UID'];
  if (uid !== undefined && uid !== '' && !UID_RE.test(uid)) {
    throw new PlexusError('InvalidEnv', `CNI_ARGS: K8S_POD_UID ${JSON.stringify(uid.slice(0, 64))} is not a valid UID`);
  }
  return uid ? { namespace, name, uid } : { namespace, name };
}

const NSFS_MAGIC = 0x6e736673;

/** True when `path` is a network namespace file (a bind mount of nsfs, or /proc/PID/ns/net). */
export function isNetnsPath(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

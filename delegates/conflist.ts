/**
 * Running one network's config list with libcni semantics (CNI spec 2.2 "Plugin object", 2.4):
 * - every plugin gets the list's `name` and `cniVersion` (S31), `runtimeConfig` limited to the capabilities
 *   it declares, and the previous plugin's result as `prevResult` on ADD;
 * - DEL runs the plugins in reverse with the final ADD result as `prevResult` (lists >= 0.4.0);
 * - CHECK (>= 0.4.0, unless `disableCheck`) and GC / STATUS (>= 1.1.0, unless `disableGC`) go to every plugin.
 * Within a list the first error stops the command, as in libcni.
 */
import type { Logger } from 'pino';
import type { NetworkConfList, PluginConf } from '../cni/network-config';
import { versionAtLeast, compareVersions, SUPPORTED_VERSIONS } from '../cni/version';
import { PlexusError, context } from '../core/errors';
import type { DelegateCommand, DelegateEnv, DelegateRegistry, Prestarted } from './contract';
import { VALID_ATTACHMENTS_KEY, type ValidAttachment } from '../cni/valid-attachments';

export interface NetworkCall {
  conf: NetworkConfList;
  runtimeConfig: Record<string, unknown>;
  env: DelegateEnv;
  timeoutMs: number;
  log: Logger;
  registry: DelegateRegistry;
  /** Where the time spent in delegates is added up (the request's log line reports it). */
  spent?: { ms: number };
  /** ADD and DEL: start each next plugin's process while the current one works (Delegate.prestart, D-13). */
  prestart?: boolean;
  /** ADD and DEL: the process of the plugin the command begins with, started ahead of its turn (prestartNetwork). */
  first?: Prestarted;
}

/** Build the exact stdin config of one plugin (libcni buildOneConfig). */
export function pluginConfig(
  conf: NetworkConfList,
  plugin: PluginConf,
  runtimeConfig: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  implicit: readonly string[] = [],
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...plugin, name: conf.name, cniVersion: conf.cniVersion, ...extra };
  // As libcni: inject only when some declared capability applies; a plugin's own runtimeConfig stays.
  const rc = filterRuntimeConfig(plugin, runtimeConfig, implicit);
  if (Object.keys(rc).length > 0) out['runtimeConfig'] = rc;
  return out;
}

/**
 * Only the capability args this plugin declares (`capabilities: {portMappings: true}`) reach it, plus those
 * its built-in delegate always takes (`implicit`).
 */
export function filterRuntimeConfig(plugin: PluginConf, runtimeConfig: Record<string, unknown>, implicit: readonly string[] = []): Record<string, unknown> {
  const caps = plugin.capabilities ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(runtimeConfig)) if ((caps[k] === true || implicit.includes(k)) && v !== undefined) out[k] = v;
  return out;
}

/** One plugin's stdin within a call: the registry says which capabilities its built-in takes implicitly. */
const configIn = (call: NetworkCall, plugin: PluginConf, runtimeConfig: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  pluginConfig(call.conf, plugin, runtimeConfig, extra, call.registry.implicitCapabilities?.(plugin.type) ?? []);

/**
 * Starts the process of the plugin an ADD (or DEL) of this network begins with ahead of its turn, where its
 * delegate can (an external binary, which waits on its stdin for its config); undefined otherwise. The caller
 * passes it as `first` or abandons it.
 */
export function prestartNetwork(call: NetworkCall, command: 'ADD' | 'DEL' = 'ADD'): Prestarted | undefined {
  const plugin = command === 'ADD' ? call.conf.plugins[0] : call.conf.plugins[call.conf.plugins.length - 1];
  return plugin ? prestartPlugin(call, command, plugin) : undefined;
}

function prestartPlugin(call: NetworkCall, command: DelegateCommand, plugin: PluginConf): Prestarted | undefined {
  return call.registry.forType(plugin.type).prestart?.({ command, env: call.env, timeoutMs: call.timeoutMs, log: call.log });
}

async function execPlugin(call: NetworkCall, command: DelegateCommand, plugin: PluginConf, config: Record<string, unknown>, warm?: Prestarted) {
  const started = performance.now();
  try {
    const c = { command, env: call.env, config, timeoutMs: call.timeoutMs, log: call.log };
    return await (warm ? warm.run(c) : call.registry.forType(plugin.type).exec(c));
  } catch (e) {
    throw context(e, `network "${call.conf.name}"`);
  } finally {
    const ms = performance.now() - started;
    if (call.spent) call.spent.ms += ms;
    call.log.debug({ plugin: plugin.type, command, ms: Math.round(ms * 100) / 100 }, 'delegate returned');
  }
}

/**
 * Runs `plugins` one after the other with the config `configOf` gives each once its turn comes (it may read
 * what `done` kept of the one before). With `call.prestart`, each next plugin's process loads meanwhile; it is
 * handed its config only after the current one is done, and abandoned unread when one fails.
 */
async function inTurn(call: NetworkCall, command: 'ADD' | 'DEL', plugins: readonly PluginConf[], configOf: (plugin: PluginConf) => Record<string, unknown>, done: (out: unknown, plugin: PluginConf) => void = () => undefined): Promise<void> {
  let warm = call.first;
  try {
    for (const [i, plugin] of plugins.entries()) {
      const running = execPlugin(call, command, plugin, configOf(plugin), warm);
      const next = plugins[i + 1];
      warm = call.prestart && next ? prestartPlugin(call, command, next) : undefined;
      done(await running, plugin);
    }
  } finally {
    warm?.abandon(); // only after a failure: the last plugin has no next
  }
}

export async function addNetwork(call: NetworkCall): Promise<unknown> {
  let prev: unknown;
  await inTurn(
    call,
    'ADD',
    call.conf.plugins,
    // Each plugin gets the previous one's result (with it, the next one is handed its config).
    (plugin) => configIn(call, plugin, call.runtimeConfig, prev === undefined ? {} : { prevResult: prev }),
    (out, plugin) => {
      if (out === undefined) throw new PlexusError('DelegateFailed', `network "${call.conf.name}": plugin "${plugin.type}" ADD printed no result`);
      prev = out;
    },
  );
  return prev;
}

export async function delNetwork(call: NetworkCall, prevResult: unknown): Promise<void> {
  const withPrev = prevResult !== undefined && versionAtLeast(call.conf.cniVersion, '0.4.0');
  const extra = withPrev ? { prevResult } : {};
  await inTurn(call, 'DEL', [...call.conf.plugins].reverse(), (plugin) => configIn(call, plugin, call.runtimeConfig, extra));
}

export async function checkNetwork(call: NetworkCall, prevResult: unknown): Promise<void> {
  if (call.conf.disableCheck || !versionAtLeast(call.conf.cniVersion, '0.4.0')) return;
  for (const plugin of call.conf.plugins) {
    await execPlugin(call, 'CHECK', plugin, configIn(call, plugin, call.runtimeConfig, { prevResult }));
  }
}

export async function gcNetwork(call: NetworkCall, valid: ValidAttachment[]): Promise<void> {
  if (call.conf.disableGC || !versionAtLeast(call.conf.cniVersion, '1.1.0')) return;
  const extra = { [VALID_ATTACHMENTS_KEY]: valid, 'cni.dev/attachments': valid }; // libcni sends both
  for (const plugin of call.conf.plugins) {
    await execPlugin(call, 'GC', plugin, configIn(call, plugin, {}, extra));
  }
}

export async function statusNetwork(call: NetworkCall): Promise<void> {
  if (!versionAtLeast(call.conf.cniVersion, '1.1.0')) return;
  for (const plugin of call.conf.plugins) {
    await execPlugin(call, 'STATUS', plugin, configIn(call, plugin, {}));
  }
}

/**
 * For a config that named no cniVersion (the planner filled in the runtime's), pick the highest version
 * every plugin of the list supports, asking each with VERSION, so a NAD without `cniVersion` works with
 * delegates older than the runtime. Answers are cached per type by the caller's `cache`.
 */
export async function negotiateVersion(call: NetworkCall, cache: Map<string, string[]>): Promise<string> {
  let common: string[] = SUPPORTED_VERSIONS.filter((v) => compareVersions(v, call.conf.cniVersion) <= 0);
  for (const plugin of call.conf.plugins) {
    let supported = cache.get(plugin.type);
    if (!supported) {
      const out = (await execPlugin(call, 'VERSION', plugin, { cniVersion: call.conf.cniVersion })) as { supportedVersions?: unknown };
      supported = Array.isArray(out?.supportedVersions) ? (out.supportedVersions as string[]) : [];
      cache.set(plugin.type, supported);
    }
    common = common.filter((v) => supported!.includes(v));
  }
  return common.length > 0 ? common.sort(compareVersions)[common.length - 1]! : call.conf.cniVersion;
}

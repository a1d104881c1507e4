/**
 * From a NetworkAttachmentDefinition (or an on-disk config) to the delegate network in list form (S5, S6).
 * Everything returned is a deep copy: later steps may inject into it without touching the inputs.
 */
import { PlexusError } from '../../core/errors';
import { compareVersions, isSupportedVersion } from '../../cni/version';
import type { NetworkRef } from './annotation';
import type { ConfFile, NadObject, PlanRequest } from './types';
import type { NetworkConfList, PluginConf } from '../../cni/network-config';
import { isJsonObject } from './validators';

/** The NAD `ref` names; a missing one fails the request (S5 (4)). */
export function requireNad(lookupNad: PlanRequest['lookupNad'], ref: NetworkRef): NadObject {
  const nad = lookupNad(ref.namespace, ref.name);
  if (!nad) {
    throw new PlexusError('NetworkNotFound', `network attachment definition ${ref.namespace}/${ref.name} not found`);
  }
  return nad;
}

/** S5: spec.config, else a configlist file named like the NAD, else a config file, else fail. */
export function resolveNadConf(nad: NadObject, confFiles: readonly ConfFile[], cniVersion: string): NetworkConfList {
  const what = `network attachment definition ${nad.namespace}/${nad.name}`;
  // (1) spec.config present: whitespace alone counts as absent, as it can only be an editing accident.
  if (nad.config !== undefined && nad.config.trim() !== '') {
    return toConfList(parseSpecConfig(nad.config, what), nad.name, cniVersion, what);
  }
  // (2), (3): "implementation-known network referenced by the object name".
  const file = findConfFile(confFiles, nad.name);
  if (file) return toConfList(file.json, nad.name, cniVersion, file.path);
  // (4)
  throw new PlexusError(
    'NetworkNotFound',
    `${what} has no spec.config and no configuration file in confDir is named ${JSON.stringify(nad.name)}`,
  );
}

/**
 * S5 (2) before (3): a `.conflist` named `name`, else a `.conf`. Among files of one kind the first wins (the
 * daemon passes them sorted by file name, as libcni does).
 */
export function findConfFile(confFiles: readonly ConfFile[], name: string): ConfFile | undefined {
  const named = (kind: ConfFile['kind']) => confFiles.find((f) => f.kind === kind && f.json['name'] === name);
  return named('conflist') ?? named('conf');
}

function parseSpecConfig(config: string, what: string): unknown {
  try {
    return JSON.parse(config);
  } catch (err) {
    throw new PlexusError('InvalidConfig', `${what}: spec.config is not valid JSON`, { cause: err });
  }
}

/**
 * A config or configlist as a NetworkConfList: a config with `plugins` is a list, anything else is one plugin.
 * `fallbackName` is injected when the config has no name (S6); `runtimeVersion` when it has no version.
 */
export function toConfList(raw: unknown, fallbackName: string, runtimeVersion: string, what: string): NetworkConfList {
  if (!isJsonObject(raw)) throw new PlexusError('InvalidConfig', `${what}: the config is not a JSON object`);
  const json = structuredClone(raw);
  const name = chooseName(json, fallbackName, what);
  const list: NetworkConfList = {
    ...chooseCniVersion(json, runtimeVersion, what),
    name,
    single: !('plugins' in json),
    plugins: pluginsOf(json, name),
  };
  const disableCheck = parseFlag(json, 'disableCheck', what);
  if (disableCheck !== undefined) list.disableCheck = disableCheck;
  const disableGC = parseFlag(json, 'disableGC', what);
  if (disableGC !== undefined) list.disableGC = disableGC;
  return list;
}

/** S6: a NAD's config without a name takes the NAD's name. */
function chooseName(json: Record<string, unknown>, fallbackName: string, what: string): string {
  const name = json['name'];
  if (name === undefined || name === '') return fallbackName;
  if (typeof name !== 'string') throw new PlexusError('InvalidConfig', `${what}: "name" is not a string`);
  return name;
}

/**
 * CNI 1.1 `cniVersions`: the highest listed version Plexus supports, compared numerically; else `cniVersion`;
 * else the runtime's, marked as injected so the runner may negotiate with the delegate instead.
 */
function chooseCniVersion(
  json: Record<string, unknown>,
  runtimeVersion: string,
  what: string,
): Pick<NetworkConfList, 'cniVersion' | 'cniVersionInjected'> {
  const listed = json['cniVersions'];
  if (listed !== undefined) {
    if (!Array.isArray(listed) || !listed.every((v) => typeof v === 'string')) {
      throw new PlexusError('InvalidConfig', `${what}: "cniVersions" is not a list of strings`);
    }
    const best = listed.filter(isSupportedVersion).sort(compareVersions).at(-1);
    if (best !== undefined) return { cniVersion: best };
  }
  const declared = json['cniVersion'];
  if (declared === undefined || declared === '') return { cniVersion: runtimeVersion, cniVersionInjected: true };
  if (typeof declared !== 'string') throw new PlexusError('InvalidConfig', `${what}: "cniVersion" is not a string`);
  return { cniVersion: declared };
}

/** Every plugin must be an object with a `type` naming its delegate (CNI spec 2.2). */
function pluginsOf(json: Record<string, unknown>, network: string): PluginConf[] {
  const raw = 'plugins' in json ? json['plugins'] : [json];
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new PlexusError('InvalidConfig', `network ${network}: "plugins" is not a non-empty list`);
  }
  return raw.map((plugin: unknown, index) => {
    if (!isJsonObject(plugin) || typeof plugin['type'] !== 'string' || plugin['type'] === '') {
      throw new PlexusError('InvalidConfig', `network ${network}: plugin ${index} has no string "type"`);
    }
    return plugin as PluginConf;
  });
}

/** disableCheck / disableGC: a boolean, or "true"/"false" in any case as libcni also accepts. */
function parseFlag(json: Record<string, unknown>, key: string, what: string): boolean | undefined {
  const v = json[key];
  if (v === undefined || typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw new PlexusError('InvalidConfig', `${what}: ${JSON.stringify(key)} is not a boolean`);
}

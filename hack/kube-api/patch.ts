/**
 * The three patch kinds the API server takes on update:
 * - JSON merge patch (RFC 7386): objects merge, null deletes, anything else replaces;
 * - JSON patch (RFC 6902): add, remove, replace, move, copy, test; a failed `test` or a bad path is 422;
 * - strategic merge patch, for built-in kinds only (custom resources answer 415, as the real server does):
 *   a merge patch whose lists of objects merge by the field's merge key (containers by name, ports by
 *   containerPort, ...), with the directives kubectl sends (`$patch: replace|delete|merge`,
 *   `$deleteFromPrimitiveList/<field>`, `$retainKeys`; `$setElementOrder/<field>` is accepted and ignored).
 */
import { ApiError } from './types';

type Json = unknown;
type JsonObject = Record<string, Json>;

const isObject = (v: Json): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6901 pointer to [parent, key]; 422 when the parent does not exist. */
function locate(doc: Json, pointer: string): [JsonObject | Json[], string] {
  if (!pointer.startsWith('/')) throw new ApiError(422, 'Invalid', `invalid JSON pointer ${JSON.stringify(pointer)}`);
  const parts = pointer.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    const next = Array.isArray(cur) ? cur[Number(p)] : isObject(cur) ? cur[p] : undefined;
    if (next === undefined) throw new ApiError(422, 'Invalid', `the server rejected our request: path ${pointer} does not exist`);
    cur = next;
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw new ApiError(422, 'Invalid', `path ${pointer} is not in an object or array`);
  return [cur, parts.at(-1)!];
}

function get(doc: Json, pointer: string): Json {
  if (pointer === '') return doc;
  const [parent, key] = locate(doc, pointer);
  const v = Array.isArray(parent) ? parent[Number(key)] : parent[key];
  if (v === undefined) throw new ApiError(422, 'Invalid', `path ${pointer} does not exist`);
  return v;
}

function remove(doc: Json, pointer: string): Json {
  const [parent, key] = locate(doc, pointer);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw new ApiError(422, 'Invalid', `path ${pointer}: index out of range`);
    return parent.splice(i, 1)[0];
  }
  if (!(key in parent)) throw new ApiError(422, 'Invalid', `path ${pointer} does not exist`);
  const v = parent[key];
  delete parent[key];
  return v;
}

function add(doc: Json, pointer: string, value: Json, replace = false): void {
  const [parent, key] = locate(doc, pointer);
  if (Array.isArray(parent)) {
    const i = key === '-' ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i >= parent.length)) throw new ApiError(422, 'Invalid', `path ${pointer}: index out of range`);
    parent.splice(i, replace ? 1 : 0, structuredClone(value));
    return;
  }
  if (replace && !(key in parent)) throw new ApiError(422, 'Invalid', `path ${pointer} does not exist`);
  parent[key] = structuredClone(value);
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'a JSON patch is an array of operations');
  const doc = structuredClone(target);
  for (const op of ops as JsonObject[]) {
    const path = String(op['path'] ?? '');
    switch (op['op']) {
      case 'add':
        add(doc, path, op['value']);
        break;
      case 'remove':
        remove(doc, path);
        break;
      case 'replace':
        add(doc, path, op['value'], true);
        break;
      case 'move':
        add(doc, path, remove(doc, String(op['from'])));
        break;
      case 'copy':
        add(doc, path, get(doc, String(op['from'])));
        break;
      case 'test':
        if (JSON.stringify(get(doc, path)) !== JSON.stringify(op['value'])) {
          throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: testing value ${path} failed`);
        }
        break;
      default:
        throw new ApiError(422, 'Invalid', `unknown JSON patch operation ${JSON.stringify(op['op'])}`);
    }
  }
  return doc;
}

/** Merge keys of the built-in kinds' lists (the `patchMergeKey` tags of k8s.io/api), by field name. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name', volumes: 'name', env: 'name',
  ports: 'containerPort', volumeMounts: 'mountPath', volumeDevices: 'devicePath', imagePullSecrets: 'name',
  hostAliases: 'ip', ownerReferences: 'uid', conditions: 'type', containerStatuses: 'name',
  initContainerStatuses: 'name', podIPs: 'ip', readinessGates: 'conditionType', resourceClaims: 'name',
  topologySpreadConstraints: 'topologyKey', addresses: 'type',
};
/** Lists of primitives that merge as sets. */
const SET_LISTS = new Set(['finalizers']);

export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch['$patch'] === 'replace') {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (patch['$patch'] === 'delete') return undefined;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  const retain = patch['$retainKeys'];
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const drop = new Set((v as Json[]).map((x) => JSON.stringify(x)));
      if (Array.isArray(out[field])) out[field] = (out[field] as Json[]).filter((x) => !drop.has(JSON.stringify(x)));
      continue;
    }
    if (v === null) delete out[k];
    else if (Array.isArray(v)) out[k] = mergeList(k, out[k], v);
    else {
      const merged = strategicMergePatch(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  if (Array.isArray(retain)) for (const k of Object.keys(out)) if (!retain.includes(k) && !(k in patch)) delete out[k];
  return out;
}

function mergeList(field: string, target: Json, patch: Json[]): Json[] {
  const current = Array.isArray(target) ? target : [];
  if (SET_LISTS.has(field)) return [...current, ...patch.filter((x) => !current.some((c) => JSON.stringify(c) === JSON.stringify(x)))];
  const key = MERGE_KEYS[field];
  if (!key || !patch.every(isObject)) return stripDirectives(patch) as Json[];
  if (patch.some((p) => isObject(p) && p['$patch'] === 'replace')) return stripDirectives(patch.filter((p) => !(isObject(p) && p['$patch'] === 'replace'))) as Json[];
  const out = [...current];
  for (const p of patch as JsonObject[]) {
    const i = out.findIndex((c) => isObject(c) && c[key] === p[key]);
    if (p['$patch'] === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = strategicMergePatch(out[i], p);
    else out.push(stripDirectives(p));
  }
  return out;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([k]) => !k.startsWith('$')).map(([k, x]) => [k, stripDirectives(x)]));
}

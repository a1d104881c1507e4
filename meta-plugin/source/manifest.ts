/**
 * Parsing manifests (YAML, multi-document, or JSON) into the objects the planner needs. A malformed
 * document is reported and skipped; it never hides the valid documents beside it.
 */
import yaml from 'js-yaml';
import { type NadObject, type PodObject, podPolicyFields } from '../planner/types';

export const NAD_KIND = 'NetworkAttachmentDefinition';

export interface ParsedManifests {
  nads: NadObject[];
  pods: PodObject[];
  others: Record<string, unknown>[];
  problems: string[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseManifests(file: string, text: string): ParsedManifests {
  const out: ParsedManifests = { nads: [], pods: [], others: [], problems: [] };
  loadDocuments(text).forEach(({ doc, error }, i) => {
    const where = `${file} document ${i + 1}`;
    if (error !== undefined) {
      out.problems.push(`${where}: not valid YAML/JSON: ${error}`);
      return;
    }
    if (doc === null || doc === undefined) return;
    const items = isObject(doc) && doc['kind'] === 'List' && Array.isArray(doc['items']) ? doc['items'] : [doc];
    for (const item of items) {
      const problem = addObject(out, item);
      if (problem) out.problems.push(`${where}: ${problem}`);
    }
  });
  return out;
}

/**
 * A YAML syntax error makes js-yaml reject the whole stream, so then each document is parsed alone: a `---`
 * line at column 0 always starts a new document (YAML 1.2 forbids it inside scalars), and one broken document
 * no longer hides the others in its file.
 */
function loadDocuments(text: string): { doc?: unknown; error?: string }[] {
  const load = (t: string): { doc?: unknown; error?: string }[] => yaml.loadAll(t, undefined, { json: true }).map((doc) => ({ doc }));
  try {
    return load(text);
  } catch {
    return text.split(/^(?=---(?:[ \t\r]|$))/m).flatMap((chunk) => {
      try {
        return load(chunk);
      } catch (e) {
        return [{ error: (e as Error).message.split('\n')[0] ?? '' }];
      }
    });
  }
}

function addObject(out: ParsedManifests, obj: unknown): string | undefined {
  if (!isObject(obj)) return 'not an object';
  const kind = obj['kind'];
  if (typeof kind !== 'string') return 'missing "kind"';
  const meta = isObject(obj['metadata']) ? obj['metadata'] : undefined;
  const name = meta?.['name'];
  if (typeof name !== 'string') return `${kind} without metadata.name`;
  const namespace = meta?.['namespace'] ?? 'default';
  if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace)) return `${kind} ${name}: invalid metadata.namespace`;
  const annotations = stringMap(meta?.['annotations']);
  if (annotations === undefined) return `${kind} ${namespace}/${name}: metadata.annotations must map strings to strings`;
  if (kind === NAD_KIND) {
    if (!DNS_LABEL.test(name)) return `${kind} ${namespace}/${name}: name is not a DNS-1123 label (S4)`;
    const spec = obj['spec'];
    if (spec !== undefined && !isObject(spec)) return `${kind} ${namespace}/${name}: spec must be an object`;
    const config = spec?.['config'];
    if (config !== undefined && typeof config !== 'string') return `${kind} ${namespace}/${name}: spec.config must be a string (S2)`;
    const nad: NadObject = { namespace, name, annotations };
    if (config) nad.config = config;
    out.nads.push(nad);
    return undefined;
  }
  if (kind === 'Pod') {
    if (!DNS_SUBDOMAIN.test(name)) return `Pod ${namespace}/${name}: name is not a DNS-1123 subdomain`;
    const pod: PodObject = { namespace, name, annotations, ...podPolicyFields(meta?.['labels'], obj['spec']) };
    if (typeof meta?.['uid'] === 'string') pod.uid = meta['uid'];
    const owners = meta?.['ownerReferences'];
    if (Array.isArray(owners)) {
      const refs = owners
        .filter(isObject)
        .filter((o) => typeof o['kind'] === 'string' && typeof o['name'] === 'string')
        .map((o) => ({ kind: o['kind'] as string, name: o['name'] as string, ...(o['controller'] === true ? { controller: true } : {}) }));
      if (refs.length) pod.ownerReferences = refs;
    }
    out.pods.push(pod);
    return undefined;
  }
  out.others.push(obj);
  return undefined;
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) return undefined;
  for (const val of Object.values(v)) if (typeof val !== 'string') return undefined;
  return v as Record<string, string>;
}

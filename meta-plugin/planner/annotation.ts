/**
 * The network selection annotation `k8s.v1.cni.cncf.io/networks` (S8-S22) and network references (`name` or
 * `namespace/name`, S4). Parsing is all-or-nothing: one invalid value makes the whole annotation invalid, and
 * the caller ignores it with a warning (S13-S19). The one exception is S21 (ipam-claim-reference together with
 * ips), which is an error.
 */
import { PlexusError } from '../../core/errors';
import type { IfName } from '../../cni/ids';
import { InvalidValue, parseInterface, parseKey } from './annotation-keys';
import { isDns1123Label, isJsonObject } from './validators';

export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';

export interface NetworkRef {
  namespace: string;
  name: string;
}

/** S17, in the CNI CONVENTIONS `portMappings` form. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  hostIP?: string;
}

/** S18, in the CNI CONVENTIONS `bandwidth` form (bits per second, bits). */
export interface Bandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** One element of the annotation, validated; absent keys stay absent. */
export interface NetworkSelection extends NetworkRef {
  interface?: IfName;
  ips?: string[];
  mac?: string;
  cniArgs?: Record<string, unknown>;
  portMappings?: PortMapping[];
  bandwidth?: Bandwidth;
  defaultRoute?: string[];
  infinibandGuid?: string;
  ipamClaimReference?: string;
}

export type NetworksAnnotation =
  | { ok: true; selections: NetworkSelection[]; warnings: string[] }
  | { ok: false; reason: string };

export function parseNetworksAnnotation(value: string, podNamespace: string): NetworksAnnotation {
  const text = value.trim();
  // An empty annotation selects nothing, like an absent one.
  if (text === '') return { ok: true, selections: [], warnings: [] };
  try {
    // S8: both forms must be supported; Multus tells them apart the same way.
    if (/[[{"]/.test(text)) return parseJsonForm(text, podNamespace);
    return { ok: true, selections: parseCommaForm(text, podNamespace), warnings: [] };
  } catch (err) {
    if (err instanceof InvalidValue) return { ok: false, reason: err.message };
    throw err;
  }
}

/** S4: `name` or `namespace/name`; a bare name lives in `defaultNamespace`. */
export function parseNetworkRef(
  text: string,
  defaultNamespace: string,
): { ok: true; ref: NetworkRef } | { ok: false; problem: string } {
  const parts = text.split('/');
  const [namespace, name] = parts.length === 2 ? parts : [defaultNamespace, parts[0]];
  if (parts.length > 2 || namespace === undefined || name === undefined) {
    return { ok: false, problem: `${JSON.stringify(text)} is not "name" or "namespace/name"` };
  }
  if (!isDns1123Label(name)) {
    return { ok: false, problem: `network name ${JSON.stringify(name)} is not a DNS-1123 label (S4)` };
  }
  if (parts.length === 2 && !isDns1123Label(namespace)) {
    return { ok: false, problem: `namespace ${JSON.stringify(namespace)} is not a DNS-1123 label (S4)` };
  }
  return { ok: true, ref: { namespace, name } };
}

/** S9: `a,b,ns/c`, plus the Multus extension `[ns/]name@ifname`. */
function parseCommaForm(text: string, podNamespace: string): NetworkSelection[] {
  return text.split(',').map((item, index) => {
    try {
      return parseCommaItem(item.trim(), podNamespace);
    } catch (err) {
      if (!(err instanceof InvalidValue)) throw err;
      throw new InvalidValue(`element ${index} (${JSON.stringify(item)}): ${err.message}`);
    }
  });
}

function parseCommaItem(item: string, podNamespace: string): NetworkSelection {
  if (item === '') throw new InvalidValue('it is empty');
  const [refText = '', ifName, ...extra] = item.split('@');
  if (extra.length > 0) throw new InvalidValue("it has more than one '@'");
  const parsed = parseNetworkRef(refText, podNamespace);
  if (!parsed.ok) throw new InvalidValue(parsed.problem);
  return ifName === undefined ? parsed.ref : { ...parsed.ref, interface: parseInterface(ifName) };
}

/** S10: a JSON list of maps. */
function parseJsonForm(text: string, podNamespace: string): NetworksAnnotation {
  const list = parseJsonList(text);
  rejectClaimWithIps(list);
  const warnings: string[] = [];
  const selections = list.map((element, index) => parseJsonElement(element, index, podNamespace, warnings));
  rejectSecondDefaultRoute(selections);
  return { ok: true, selections, warnings };
}

function parseJsonList(text: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidValue(`it is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new InvalidValue('the JSON form must be a list of objects (S10)');
  return parsed;
}

/** S21: unlike an invalid value, ips together with ipam-claim-reference is an error, whatever else is wrong. */
function rejectClaimWithIps(list: readonly unknown[]): void {
  list.forEach((element, index) => {
    if (isJsonObject(element) && 'ips' in element && 'ipam-claim-reference' in element) {
      throw new PlexusError(
        'InvalidAnnotation',
        `element ${index} (network ${JSON.stringify(element['name'])}) of ${NETWORKS_ANNOTATION} sets both ` +
          `"ips" and "ipam-claim-reference"; use one or the other (S21)`,
      );
    }
  });
}

/** S19: only one element may carry default-route. */
function rejectSecondDefaultRoute(selections: readonly NetworkSelection[]): void {
  const carriers = selections.flatMap((s, index) => (s.defaultRoute ? [index] : []));
  if (carriers.length > 1) {
    throw new InvalidValue(`elements ${carriers.join(', ')} all set "default-route"; only one may (S19)`);
  }
}

function parseJsonElement(element: unknown, index: number, podNamespace: string, warnings: string[]): NetworkSelection {
  if (!isJsonObject(element)) throw new InvalidValue(`element ${index} is not an object (S10)`);
  if (!('name' in element)) throw new InvalidValue(`element ${index} has no "name" (S11)`);
  const selection: NetworkSelection = { namespace: podNamespace, name: '' };
  for (const [key, value] of Object.entries(element)) {
    if (parseKey(key, value, selection, `element ${index} key ${JSON.stringify(key)}`)) continue;
    if (!key.includes('.')) {
      // S10: keys without a '.' are reserved for the spec; vendor keys (with a '.') are not ours to judge.
      warnings.push(`element ${index}: reserved key ${JSON.stringify(key)} is not supported; ignored (S10)`);
    }
  }
  return selection;
}

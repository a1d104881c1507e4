/**
 * Capability args (CNI CONVENTIONS `runtimeConfig`) for one attachment: kubelet's for the cluster network
 * (S36), the annotation's for a selected network (S13-S21), and the check that some plugin takes them.
 */
import { PlexusError } from '../../core/errors';
import type { NetworkSelection } from './annotation';
import type { NetworkConfList } from '../../cni/network-config';
import { isJsonObject } from './validators';

/**
 * Annotation keys that become capability args, and the rule that makes a missing capability fatal. S21: a
 * delegate that does not implement IPAMClaims ignores the reference, so that one is never checked.
 */
const SELECTION_ARGS = [
  { field: 'ips', arg: 'ips', rule: 'S13' },
  { field: 'mac', arg: 'mac', rule: 'S14' },
  { field: 'portMappings', arg: 'portMappings', rule: 'S17' },
  { field: 'bandwidth', arg: 'bandwidth', rule: 'S18' },
  { field: 'infinibandGuid', arg: 'infinibandGUID', rule: 'S20' },
  { field: 'ipamClaimReference', arg: 'ipamClaimReference', rule: undefined },
] as const satisfies readonly { field: keyof NetworkSelection; arg: string; rule: string | undefined }[];

/**
 * containerd (go-cni) marshals its Go structs without JSON tags, so kubelet's port mappings and bandwidth
 * arrive as `HostPort`, `IngressRate`...; delegates written against CONVENTIONS expect lower camel case.
 */
const PORT_MAPPING_SPELLING: Readonly<Record<string, string>> = {
  HostPort: 'hostPort',
  ContainerPort: 'containerPort',
  Protocol: 'protocol',
  HostIP: 'hostIP',
};
const BANDWIDTH_SPELLING: Readonly<Record<string, string>> = {
  IngressRate: 'ingressRate',
  IngressBurst: 'ingressBurst',
  EgressRate: 'egressRate',
  EgressBurst: 'egressBurst',
};

/** S36: kubelet's runtimeConfig, copied, in CONVENTIONS spelling. Only the cluster network gets it. */
export function kubeletRuntimeConfig(raw: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const config = structuredClone(raw) as Record<string, unknown>;
  const ports = config['portMappings'];
  if (Array.isArray(ports)) {
    config['portMappings'] = ports.map((p: unknown) => (isJsonObject(p) ? respell(p, PORT_MAPPING_SPELLING) : p));
  }
  const bandwidth = config['bandwidth'];
  if (isJsonObject(bandwidth)) config['bandwidth'] = respell(bandwidth, BANDWIDTH_SPELLING);
  return config;
}

/** Rename keys per `spelling`; when both spellings are present the CONVENTIONS one wins. */
function respell(v: Record<string, unknown>, spelling: Readonly<Record<string, string>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(v)) {
    const canonical = spelling[key];
    if (canonical === undefined) out[key] = value;
    else if (!(canonical in v)) out[canonical] = value;
  }
  return out;
}

/** The capability args a selection asks for (S13, S14, S17, S18, S20, S21). */
export function selectionRuntimeConfig(selection: NetworkSelection): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const { field, arg } of SELECTION_ARGS) {
    if (selection[field] !== undefined) config[arg] = structuredClone(selection[field]);
  }
  return config;
}

/**
 * S13/S14/S17/S18/S20: a selected capability no plugin of the network declares must fail the attachment
 * (Multus drops it silently instead; DESIGN "specs over habits").
 */
export function requireCapabilities(
  pod: string,
  statusName: string,
  conf: NetworkConfList,
  runtimeConfig: Readonly<Record<string, unknown>>,
): void {
  for (const { arg, rule } of SELECTION_ARGS) {
    if (rule === undefined || !(arg in runtimeConfig)) continue;
    if (!conf.plugins.some((p) => p.capabilities?.[arg] === true)) {
      throw new PlexusError(
        'CapabilityMissing',
        `${pod}: network ${statusName} cannot take "${arg}": no plugin of it declares that capability (${rule})`,
      );
    }
  }
}

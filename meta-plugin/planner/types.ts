/**
 * The planner's data model: what goes in (pod, NADs, on-disk configs, daemon settings, kubelet's
 * runtimeConfig, device allocations) and what comes out (an ordered list of attachments). The planner is pure:
 * it never reads files, the clock or the network; the daemon gathers its inputs.
 */
import type { IfName, PodRef } from '../../cni/ids';
import type { NetworkConfList } from '../../cni/network-config';

/** A NetworkAttachmentDefinition as the source holds it (S1, S2). */
export interface NadObject {
  namespace: string;
  name: string;
  /** spec.config: a JSON CNI config or configlist, as a string (S2). Absent or empty: resolve on disk (S5). */
  config?: string;
  annotations: Record<string, string>;
}

/** A pod as the source holds it. */
export interface PodObject {
  namespace: string;
  name: string;
  uid?: string;
  annotations: Record<string, string>;
  /** metadata.ownerReferences (kind StatefulSet makes the pod's addresses sticky, issue 3). */
  ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  /** metadata.labels: what NetworkPolicy selectors match (policy/). */
  labels?: Record<string, string>;
  /** The containers' ports (name, number, protocol): what named ports in policies resolve to (F10). */
  ports?: { name?: string; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }[];
  /** spec.hostNetwork: the pod's traffic is the node's (NP9). */
  hostNetwork?: boolean;
}

/** Labels, container ports and hostNetwork of a pod manifest or API object, as PodObject keeps them. */
export function podPolicyFields(labels: unknown, spec: unknown): Pick<PodObject, 'labels' | 'ports' | 'hostNetwork'> {
  const out: Pick<PodObject, 'labels' | 'ports' | 'hostNetwork'> = {};
  if (labels && typeof labels === 'object' && !Array.isArray(labels)) {
    const l = Object.fromEntries(Object.entries(labels as Record<string, unknown>).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
    if (Object.keys(l).length) out.labels = l;
  }
  const s = (spec ?? {}) as { hostNetwork?: unknown; containers?: unknown; initContainers?: unknown };
  if (s.hostNetwork === true) out.hostNetwork = true;
  const ports: NonNullable<PodObject['ports']> = [];
  for (const c of [...(Array.isArray(s.containers) ? s.containers : []), ...(Array.isArray(s.initContainers) ? s.initContainers : [])]) {
    for (const p of Array.isArray((c as { ports?: unknown })?.ports) ? (c as { ports: unknown[] }).ports : []) {
      const x = (p ?? {}) as { name?: unknown; containerPort?: unknown; protocol?: unknown };
      const protocol = x.protocol ?? 'TCP';
      if (typeof x.containerPort !== 'number' || (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP')) continue;
      ports.push({ ...(typeof x.name === 'string' ? { name: x.name } : {}), port: x.containerPort, protocol });
    }
  }
  if (ports.length) out.ports = ports;
  return out;
}

/** A CNI config file from `confDir`, already read and JSON-parsed by the daemon. */
export interface ConfFile {
  path: string;
  /** `.conflist` files are lists; `.conf` and `.json` are single configs unless they contain `plugins`. */
  kind: 'conflist' | 'conf';
  json: Record<string, unknown>;
}

/** Daemon settings the planner needs. Names follow Multus where Multus has the same setting. */
export interface PlanSettings {
  /** A NAD (`name` or `ns/name`, looked up in multusNamespace first) or a config name in confDir. */
  clusterNetwork: string;
  /** Where unqualified clusterNetwork / defaultNetworks / default-network annotation NADs live. */
  multusNamespace: string;
  /** NADs attached to every pod outside systemNamespaces, after the cluster network. */
  defaultNetworks: string[];
  systemNamespaces: string[];
  /** S35: when true, a pod may only select NADs in its own namespace or in globalNamespaces. */
  namespaceIsolation: boolean;
  globalNamespaces: string[];
}

export interface PlanRequest {
  /** The pod named by the runtime (CNI_ARGS); null when the runtime names none (cluster network only). */
  podRef: PodRef | null;
  /** The pod as the source knows it; null when the source has no such pod (no annotations). */
  pod: PodObject | null;
  /** CNI_IFNAME: the cluster network's interface. */
  ifName: IfName;
  /** The runtime's cniVersion (already negotiated), injected into configs that name none. */
  cniVersion: string;
  /** runtimeConfig the runtime passed to Plexus (kubelet/CRI capability args). S36: cluster network only. */
  runtimeConfig: Record<string, unknown>;
  settings: PlanSettings;
  lookupNad(namespace: string, name: string): NadObject | undefined;
  confFiles: readonly ConfFile[];
  /** Devices the device plugin gave this pod, per resource name (from kubelet); consumed in order. */
  devices: Readonly<Record<string, readonly string[]>>;
  /** Why the device lookup may have come back short (named in the 110 of a network left without one). */
  devicesProblem?: string;
}

export type AttachmentOrigin = 'cluster' | 'default-network-annotation' | 'defaultNetworks' | 'annotation';

export interface PlannedAttachment {
  /** Position in the plan, 0 = cluster network (S29). */
  index: number;
  origin: AttachmentOrigin;
  /** S27: `ns/name` for NADs, the config name for an on-disk cluster network. Also the status `name`. */
  statusName: string;
  /** The NAD this came from, if any. */
  nad?: { namespace: string; name: string };
  /** True for exactly one attachment: the cluster default network (S26). */
  isDefault: boolean;
  ifName: IfName;
  /** The delegate network with name (S6), cni-args (S16) and deviceID already injected. */
  conf: NetworkConfList;
  /**
   * Capability args for this attachment before per-plugin filtering (the runner gives each plugin only the
   * keys it declares, as libcni does). Kubelet's only reach the cluster network (S36).
   */
  runtimeConfig: Record<string, unknown>;
  /** S19: set when this attachment carries default-route (gateways, possibly empty). */
  defaultRoute?: string[];
  /** Device Info: NAD annotation k8s.v1.cni.cncf.io/resourceName and the device chosen for it. */
  resourceName?: string;
  deviceId?: string;
}

export interface Plan {
  attachments: PlannedAttachment[];
  /** Why an annotation was ignored (S13-S19) and similar; the daemon logs them with the pod. */
  warnings: string[];
  /** The networks annotation the plan was made from (absent: the pod has none). */
  networks?: string;
}

/**
 * The attachment planner: pod + NADs + cluster network + devices -> the ordered attachments to make. Pure: it
 * reads nothing but its request and changes nothing in it; the daemon gathers the inputs and the runner acts.
 *
 * Order (S29): the cluster network (or the pod's default-network override), then the daemon's defaultNetworks,
 * then the pod's networks annotation in its own order.
 */
import { context, PlexusError } from '../../core/errors';
import { podKey, type IfName, type PodRef } from '../../cni/ids';
import {
  NETWORKS_ANNOTATION,
  parseNetworkRef,
  parseNetworksAnnotation,
  type NetworkRef,
  type NetworksAnnotation,
  type NetworkSelection,
} from './annotation';
import { DevicePool, RESOURCE_NAME_ANNOTATION } from './devices';
import { assignIfNames } from './interface-names';
import { findConfFile, requireNad, resolveNadConf, toConfList } from './resolve';
import { kubeletRuntimeConfig, requireCapabilities, selectionRuntimeConfig } from './runtime-config';
import type { NadObject, Plan, PlannedAttachment, PlanRequest, PodObject } from './types';
import type { NetworkConfList } from '../../cni/network-config';
import { isJsonObject } from './validators';

/** Multus's pod annotation naming one NAD that replaces the cluster network for that pod. */
export const DEFAULT_NETWORK_ANNOTATION = 'v1.multus-cni.io/default-network';

/** What one plan() call carries between its steps. */
interface Planning {
  req: PlanRequest;
  /** `pod ns/name`, for messages. */
  pod: string;
  devices: DevicePool;
  warnings: string[];
}

/** A network selected in addition to the cluster network, and who selected it. */
interface ExtraNetwork {
  origin: 'defaultNetworks' | 'annotation';
  selection: NetworkSelection;
}

/** Where an attachment's delegate network comes from. */
interface NetworkSource {
  statusName: string;
  conf: NetworkConfList;
  nad?: NadObject;
}

/** What resolving a network needs from a plan request. */
type NetworkInputs = Pick<PlanRequest, 'settings' | 'lookupNad' | 'confFiles' | 'cniVersion'>;

type AttachmentFields = Pick<PlannedAttachment, 'index' | 'origin' | 'isDefault' | 'ifName' | 'runtimeConfig'>;

export function plan(req: PlanRequest): Plan {
  const ctx: Planning = { req, pod: describePod(req.podRef), devices: new DevicePool(req.devices), warnings: [] };
  // S29: the cluster network is attached first.
  const attachments = [planClusterAttachment(ctx)];
  const extras = selectExtraNetworks(ctx);
  const ifNames = assignIfNames(
    ctx.pod,
    req.ifName,
    extras.map((e) => e.selection),
  );
  extras.forEach((extra, i) => attachments.push(planExtraAttachment(ctx, extra, i + 1, ifNames[i]!)));
  return { attachments, warnings: ctx.warnings };
}

/**
 * The device-plugin resources (NAD annotation resourceName, D2) of the networks a pod's annotation selects,
 * so the daemon asks for devices only when a plan will need them. An annotation plan() would ignore (S21)
 * selects nothing here either: it is the same parser.
 */
export function resourceNamesFor(pod: PodObject | null, lookupNad: PlanRequest['lookupNad']): string[] {
  const value = pod?.annotations[NETWORKS_ANNOTATION];
  if (!pod || value === undefined) return [];
  let parsed: NetworksAnnotation;
  try {
    parsed = parseNetworksAnnotation(value, pod.namespace);
  } catch {
    return [];
  }
  if (!parsed.ok) return [];
  const names = new Set<string>();
  for (const sel of parsed.selections) {
    const name = lookupNad(sel.namespace, sel.name)?.annotations[RESOURCE_NAME_ANNOTATION];
    if (name) names.add(name);
  }
  return [...names];
}

function describePod(podRef: PodRef | null): string {
  return podRef ? `pod ${podKey(podRef)}` : 'pod (not named by the runtime)';
}

function planClusterAttachment(ctx: Planning): PlannedAttachment {
  const override = defaultNetworkOverride(ctx);
  const source = override ? sourceFromRef(ctx.req, override) : clusterNetworkSource(ctx.req);
  const attachment = newAttachment(source, {
    index: 0,
    origin: override ? 'default-network-annotation' : 'cluster',
    isDefault: true,
    ifName: ctx.req.ifName,
    // S36: kubelet's runtimeConfig reaches the cluster network and nothing else.
    runtimeConfig: kubeletRuntimeConfig(ctx.req.runtimeConfig),
  });
  assignDevice(ctx, attachment, source.nad);
  return attachment;
}

/**
 * `v1.multus-cni.io/default-network`: `name` or `ns/name` (bare names in multusNamespace), exactly one. It is
 * a NAD only, never a file in confDir: a pod may pick a published network, not any config on the node.
 */
function defaultNetworkOverride(ctx: Planning): NetworkRef | undefined {
  const { pod, podRef, settings } = ctx.req;
  const value = pod?.annotations[DEFAULT_NETWORK_ANNOTATION];
  if (podRef === null || value === undefined) return undefined;
  if (value.includes(',')) {
    ignoreAnnotation(ctx, DEFAULT_NETWORK_ANNOTATION, 'it names more than one network');
    return undefined;
  }
  const parsed = parseNetworkRef(value.trim(), settings.multusNamespace);
  if (!parsed.ok) {
    ignoreAnnotation(ctx, DEFAULT_NETWORK_ANNOTATION, parsed.problem);
    return undefined;
  }
  requireSelectionAllowed(ctx, podRef, parsed.ref);
  return parsed.ref;
}

/**
 * The daemon's clusterNetwork: a NAD when one exists (bare names in multusNamespace), else a config in
 * confDir with that name, configlists first (S5 order).
 */
function clusterNetworkSource(req: NetworkInputs): NetworkSource {
  const { clusterNetwork, multusNamespace } = req.settings;
  const parsed = parseNetworkRef(clusterNetwork, multusNamespace);
  const nad = parsed.ok ? req.lookupNad(parsed.ref.namespace, parsed.ref.name) : undefined;
  if (nad) return sourceFromNad(req, nad);
  const file = findConfFile(req.confFiles, clusterNetwork);
  if (!file) {
    throw new PlexusError(
      'NetworkNotFound',
      `cluster network ${JSON.stringify(clusterNetwork)} is neither a network attachment definition nor ` +
        `the name of a configuration in confDir`,
    );
  }
  const conf = toConfList(file.json, clusterNetwork, req.cniVersion, file.path);
  return { statusName: conf.name, conf };
}

/**
 * The cluster network's config as an ADD without a pod would plan it: what STATUS and GC act on. The same
 * resolution as plan()'s first attachment, without planning a pod.
 */
export function clusterNetworkConf(req: NetworkInputs): NetworkConfList {
  return clusterNetworkSource(req).conf;
}

function sourceFromRef(req: NetworkInputs, ref: NetworkRef): NetworkSource {
  return sourceFromNad(req, requireNad(req.lookupNad, ref));
}

function sourceFromNad(req: NetworkInputs, nad: NadObject): NetworkSource {
  // S27: status names a NAD network as ns/name.
  const statusName = `${nad.namespace}/${nad.name}`;
  return { statusName, conf: resolveNadConf(nad, req.confFiles, req.cniVersion), nad };
}

function newAttachment(source: NetworkSource, fields: AttachmentFields): PlannedAttachment {
  const attachment: PlannedAttachment = { ...fields, statusName: source.statusName, conf: source.conf };
  if (source.nad) attachment.nad = { namespace: source.nad.namespace, name: source.nad.name };
  return attachment;
}

/** Without a pod name there is no namespace to judge defaultNetworks by and no annotation to trust. */
function selectExtraNetworks(ctx: Planning): ExtraNetwork[] {
  const { podRef } = ctx.req;
  if (podRef === null) return [];
  return [...selectDefaultNetworks(ctx, podRef), ...selectAnnotatedNetworks(ctx, podRef)];
}

/** The daemon's defaultNetworks, for every pod outside systemNamespaces (as Multus does). */
function selectDefaultNetworks(ctx: Planning, podRef: PodRef): ExtraNetwork[] {
  const { defaultNetworks, systemNamespaces, multusNamespace } = ctx.req.settings;
  if (systemNamespaces.includes(podRef.namespace)) return [];
  return defaultNetworks.map((entry) => {
    const parsed = parseNetworkRef(entry, multusNamespace);
    if (!parsed.ok) {
      throw new PlexusError('InvalidConfig', `defaultNetworks entry ${JSON.stringify(entry)}: ${parsed.problem}`);
    }
    return { origin: 'defaultNetworks', selection: parsed.ref };
  });
}

/** S8-S22: the pod's own selections, in order; the same network may appear more than once (S22). */
function selectAnnotatedNetworks(ctx: Planning, podRef: PodRef): ExtraNetwork[] {
  const value = ctx.req.pod?.annotations[NETWORKS_ANNOTATION];
  if (value === undefined) return [];
  const parsed = parseAnnotation(ctx, value, podRef);
  if (!parsed.ok) {
    // S13-S19: an invalid annotation is ignored as a whole.
    ignoreAnnotation(ctx, NETWORKS_ANNOTATION, parsed.reason);
    return [];
  }
  for (const warning of parsed.warnings) ctx.warnings.push(`${ctx.pod}: annotation ${NETWORKS_ANNOTATION}: ${warning}`);
  return parsed.selections.map((selection) => {
    requireSelectionAllowed(ctx, podRef, selection);
    return { origin: 'annotation', selection };
  });
}

function parseAnnotation(ctx: Planning, value: string, podRef: PodRef): NetworksAnnotation {
  try {
    return parseNetworksAnnotation(value, podRef.namespace);
  } catch (err) {
    // S21 is the one annotation problem that fails the request instead of being ignored.
    throw context(err, `${ctx.pod}: annotation ${NETWORKS_ANNOTATION}`);
  }
}

function ignoreAnnotation(ctx: Planning, annotation: string, reason: string): void {
  ctx.warnings.push(`${ctx.pod}: ignoring annotation ${annotation}: ${reason}`);
}

function planExtraAttachment(ctx: Planning, extra: ExtraNetwork, index: number, ifName: IfName): PlannedAttachment {
  const { origin, selection } = extra;
  const source = sourceFromRef(ctx.req, selection);
  applyCniArgs(source.conf, selection.cniArgs);
  // S36: the selection's capability args only, never kubelet's.
  const runtimeConfig = selectionRuntimeConfig(selection);
  requireCapabilities(ctx.pod, source.statusName, source.conf, runtimeConfig);
  const attachment = newAttachment(source, { index, origin, isDefault: false, ifName, runtimeConfig });
  if (selection.defaultRoute) attachment.defaultRoute = [...selection.defaultRoute]; // S19
  assignDevice(ctx, attachment, source.nad);
  return attachment;
}

/**
 * S35 with namespaceIsolation: a pod may select NADs of its own namespace and of globalNamespaces only. It
 * restricts the pod's own choices; the daemon's clusterNetwork and defaultNetworks are the administrator's.
 */
function requireSelectionAllowed(ctx: Planning, podRef: PodRef, ref: NetworkRef): void {
  const { namespaceIsolation, globalNamespaces } = ctx.req.settings;
  if (!namespaceIsolation || ref.namespace === podRef.namespace || globalNamespaces.includes(ref.namespace)) return;
  throw new PlexusError(
    'NetworkNotAllowed',
    `${ctx.pod} may not select network ${ref.namespace}/${ref.name}: namespace isolation allows only its own ` +
      `namespace and global namespaces (S35)`,
  );
}

/** S16: the annotation's cni-args go into every plugin's `args.cni` and win over the NAD's own. */
function applyCniArgs(conf: NetworkConfList, cniArgs: Record<string, unknown> | undefined): void {
  if (cniArgs === undefined) return;
  conf.plugins.forEach((plugin, i) => {
    const args = objectField(plugin, 'args', `network ${conf.name}: plugin ${i}`);
    const cni = objectField(args, 'cni', `network ${conf.name}: plugin ${i} args`);
    plugin['args'] = { ...args, cni: { ...cni, ...structuredClone(cniArgs) } };
  });
}

/** `container[key]` as an object, `{}` when absent; anything else is a broken config. */
function objectField(container: Record<string, unknown>, key: string, what: string): Record<string, unknown> {
  const value = container[key] ?? {};
  if (!isJsonObject(value)) throw new PlexusError('InvalidConfig', `${what}: "${key}" is not an object`);
  return value;
}

/**
 * Device Info §4.1: a NAD with a resourceName takes the pod's next unused device of that resource (sorted, so
 * the order of the networks in the annotation decides which VF each gets, as with Multus). Like Multus, the
 * device goes to every plugin as `deviceID` and `pciBusID`, and to the capability args as `deviceID`.
 */
function assignDevice(ctx: Planning, attachment: PlannedAttachment, nad: NadObject | undefined): void {
  const resourceName = nad?.annotations[RESOURCE_NAME_ANNOTATION];
  if (!resourceName) return;
  const deviceId = ctx.devices.take(resourceName);
  if (deviceId === undefined) {
    const given = ctx.devices.given(resourceName);
    throw new PlexusError(
      'DeviceUnavailable',
      `${ctx.pod}: network ${attachment.statusName} needs a device of resource ${resourceName}, but ` +
        (given === 0
          ? 'the pod was given none (does its spec request the resource, and does the device plugin serve it?)'
          : `the pod was given ${given} and its networks ask for more`) +
        (ctx.req.devicesProblem ? `; device lookup: ${ctx.req.devicesProblem}` : ''),
    );
  }
  for (const plugin of attachment.conf.plugins) {
    plugin['deviceID'] = deviceId;
    plugin['pciBusID'] = deviceId;
  }
  attachment.runtimeConfig['deviceID'] = deviceId;
  attachment.resourceName = resourceName;
  attachment.deviceId = deviceId;
}

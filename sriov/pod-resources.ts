/**
 * Which devices the device plugin gave a pod: the kubelet's PodResources API v1 (gRPC on a unix socket,
 * service `v1.PodResourcesLister`), with the kubelet's device-manager checkpoint as the fallback
 * (`../shared/specs/sriov-and-devices.md` 2.4). What Multus does, without its faults:
 * - `Get` for the one pod where the kubelet serves it (1.27+), else `List`; never one `List` per ADD under
 *   churn (kubelets rate-limit the API): concurrent lookups share one call, an answer is reused for
 *   `cacheMs`, and a pod missing from a reused answer gets one fresh `List`;
 * - every call bounded by `timeoutMs`;
 * - the checkpoint read in both forms: the NUMA-aware `{"<node>": [ids]}` and the older flat `[ids]` (which
 *   current Multus does not parse), matched by pod UID;
 * - device IDs per resource sorted, as Multus hands them to the pod's networks in order.
 *
 * The protocol is described here (only the fields read; protobuf skips the rest), so nothing is loaded from
 * a .proto file at run time. Field numbers are the kubelet's (`podresources/v1/api.proto`).
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { errorText } from '../core/errors';
import type { PodRef } from '../cni/ids';

/** The lookup's answer (the shape meta-plugin/planner/devices.ts's DeviceLookup returns). */
export interface DeviceAnswer {
  devices: DeviceMap;
  problem?: string;
}

const PODRESOURCES_V1 = {
  nested: {
    v1: {
      nested: {
        PodResourcesLister: {
          methods: {
            List: { requestType: 'ListPodResourcesRequest', responseType: 'ListPodResourcesResponse' },
            Get: { requestType: 'GetPodResourcesRequest', responseType: 'GetPodResourcesResponse' },
          },
        },
        ListPodResourcesRequest: { fields: {} },
        ListPodResourcesResponse: { fields: { pod_resources: { rule: 'repeated', type: 'PodResources', id: 1 } } },
        GetPodResourcesRequest: { fields: { pod_name: { type: 'string', id: 1 }, pod_namespace: { type: 'string', id: 2 } } },
        GetPodResourcesResponse: { fields: { pod_resources: { type: 'PodResources', id: 1 } } },
        PodResources: {
          fields: {
            name: { type: 'string', id: 1 },
            namespace: { type: 'string', id: 2 },
            containers: { rule: 'repeated', type: 'ContainerResources', id: 3 },
          },
        },
        ContainerResources: {
          fields: { name: { type: 'string', id: 1 }, devices: { rule: 'repeated', type: 'ContainerDevices', id: 2 } },
        },
        ContainerDevices: {
          fields: { resource_name: { type: 'string', id: 1 }, device_ids: { rule: 'repeated', type: 'string', id: 2 } },
        },
      },
    },
  },
};

interface WirePod {
  name?: string;
  namespace?: string;
  containers?: Array<{ name?: string; devices?: Array<{ resource_name?: string; device_ids?: string[] }> }>;
}

type Unary<Req, Res> = (req: Req, opts: { deadline: number }, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;
interface ListerClient extends grpc.Client {
  List: Unary<Record<string, never>, { pod_resources?: WirePod[] }>;
  Get: Unary<{ pod_name: string; pod_namespace: string }, { pod_resources?: WirePod }>;
}

let listerCtor: (new (address: string, creds: grpc.ChannelCredentials, opts?: object) => ListerClient) | undefined;
function lister(): new (address: string, creds: grpc.ChannelCredentials, opts?: object) => ListerClient {
  if (listerCtor) return listerCtor;
  const def = protoLoader.fromJSON(PODRESOURCES_V1 as Parameters<typeof protoLoader.fromJSON>[0], { keepCase: true, longs: String, defaults: true, arrays: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { v1: { PodResourcesLister: typeof listerCtor } };
  listerCtor = pkg.v1.PodResourcesLister!;
  return listerCtor;
}

export interface PodResourcesOptions {
  readonly socket: string;
  readonly checkpoint: string;
  readonly timeoutMs: number;
  readonly cacheMs: number;
}

/** Device IDs per resource, sorted. */
export type DeviceMap = Record<string, string[]>;

export class PodResources {
  private client: ListerClient | undefined;
  /** Unknown until the kubelet answers Get once (UNIMPLEMENTED before 1.27 or with the gate off). */
  private getSupported: boolean | undefined;
  /** The first Get in flight: concurrent lookups wait for it to learn whether Get is served. */
  private probe: Promise<void> | undefined;
  private listing: Promise<WirePod[]> | undefined;
  private listed: { at: number; pods: WirePod[] } | undefined;

  constructor(
    private readonly opts: PodResourcesOptions,
    private readonly log: Logger,
  ) {}

  private lister(): ListerClient {
    this.client ??= new (lister())(`unix://${this.opts.socket}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
    return this.client;
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }

  /**
   * Devices of `resourceNames` allocated to the pod's containers; resources it holds none of are absent. When
   * the API did not answer, `problem` says so (and what the checkpoint lacked), for the 110 that may follow.
   */
  async devicesFor(pod: PodRef, resourceNames: string[]): Promise<DeviceAnswer> {
    let wire: WirePod | undefined;
    try {
      wire = await this.fromApi(pod);
    } catch (e) {
      const why = `kubelet PodResources API at ${this.opts.socket}: ${errorText(e)}`;
      this.log.warn({ pod: `${pod.namespace}/${pod.name}`, err: errorText(e) }, 'PodResources API unavailable; reading the kubelet checkpoint');
      const fromCheckpoint = this.fromCheckpoint(pod);
      const devices = pick(fromCheckpoint.devices, resourceNames);
      return { devices, problem: [why, fromCheckpoint.problem].filter(Boolean).join('; ') };
    }
    return { devices: pick(devicesOf(wire), resourceNames) };
  }

  private async fromApi(pod: PodRef): Promise<WirePod | undefined> {
    if (this.getSupported === undefined && this.probe) await this.probe;
    if (this.getSupported !== false) {
      try {
        const get = this.call<{ pod_resources?: WirePod }>((c, o, cb) => c.Get({ pod_name: pod.name, pod_namespace: pod.namespace }, o, cb));
        if (this.getSupported === undefined) this.probe ??= get.then(() => undefined, () => undefined).finally(() => (this.probe = undefined));
        const res = await get;
        this.getSupported = true;
        return res.pod_resources;
      } catch (e) {
        if (!getNotServed(e as grpc.ServiceError)) throw e;
        this.getSupported = false;
        this.log.info({ err: errorText(e) }, 'kubelet does not serve PodResources Get: using List');
      }
    }
    const match = (pods: WirePod[]) => pods.find((p) => p.name === pod.name && p.namespace === pod.namespace);
    const cached = this.listed && Date.now() - this.listed.at < this.opts.cacheMs ? match(this.listed.pods) : undefined;
    return cached ?? match(await this.list());
  }

  /** One List at a time; everyone waiting shares its answer. */
  private list(): Promise<WirePod[]> {
    this.listing ??= this.call<{ pod_resources?: WirePod[] }>((c, o, cb) => c.List({}, o, cb))
      .then((res) => {
        const pods = res.pod_resources ?? [];
        this.listed = { at: Date.now(), pods };
        return pods;
      })
      .finally(() => (this.listing = undefined));
    return this.listing;
  }

  private call<T>(invoke: (c: ListerClient, o: { deadline: number }, cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      invoke(this.lister(), { deadline: Date.now() + this.opts.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** The kubelet's checkpoint, matched by pod UID (no UID in CNI_ARGS: nothing can be matched). */
  private fromCheckpoint(pod: PodRef): { devices: DeviceMap; problem?: string } {
    if (!pod.uid) return { devices: {}, problem: 'the checkpoint is matched by pod UID and CNI_ARGS has no K8S_POD_UID' };
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.opts.checkpoint, 'utf8'));
    } catch (e) {
      return { devices: {}, problem: `checkpoint ${this.opts.checkpoint}: ${errorText(e)}` };
    }
    return { devices: checkpointDevices(raw, pod.uid) };
  }
}

/**
 * Get is not served: an older kubelet (UNIMPLEMENTED), or 1.27-1.33 with the KubeletPodResourcesGet gate off,
 * which answers UNKNOWN "PodResources API Get method disabled".
 */
function getNotServed(e: grpc.ServiceError): boolean {
  return e.code === grpc.status.UNIMPLEMENTED || (e.code === grpc.status.UNKNOWN && /Get method disabled/i.test(e.details ?? e.message));
}

/** Every device of every container of a pod, per resource, sorted and without repeats. */
function devicesOf(pod: WirePod | undefined): DeviceMap {
  const out: Record<string, Set<string>> = {};
  for (const c of pod?.containers ?? []) {
    for (const d of c.devices ?? []) {
      if (!d.resource_name) continue;
      for (const id of d.device_ids ?? []) (out[d.resource_name] ??= new Set()).add(id);
    }
  }
  return sorted(out);
}

/** `Data.PodDeviceEntries[]` of the pod: `DeviceIDs` as `{"<numa>": [ids]}` (1.20+) or `[ids]` (older). */
export function checkpointDevices(raw: unknown, podUid: string): DeviceMap {
  const entries = (raw as { Data?: { PodDeviceEntries?: unknown } } | null)?.Data?.PodDeviceEntries;
  const out: Record<string, Set<string>> = {};
  for (const e of Array.isArray(entries) ? entries : []) {
    const entry = e as { PodUID?: unknown; ResourceName?: unknown; DeviceIDs?: unknown };
    if (entry.PodUID !== podUid || typeof entry.ResourceName !== 'string') continue;
    const ids = Array.isArray(entry.DeviceIDs)
      ? entry.DeviceIDs
      : entry.DeviceIDs && typeof entry.DeviceIDs === 'object' ? Object.values(entry.DeviceIDs).flat() : [];
    for (const id of ids) if (typeof id === 'string') (out[entry.ResourceName] ??= new Set()).add(id);
  }
  return sorted(out);
}

function sorted(m: Record<string, Set<string>>): DeviceMap {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, [...v].sort()]));
}

function pick(m: DeviceMap, names: string[]): DeviceMap {
  return Object.fromEntries(names.filter((n) => m[n]?.length).map((n) => [n, m[n]!]));
}

/**
 * The Kubernetes source: the API server through reflectors (kube/reflector.ts) of this node's pods (field
 * selector spec.nodeName, and only the fields Plexus reads kept, so memory follows this node's pods, not the
 * cluster's), every NetworkAttachmentDefinition, the namespaces, and Plexus's IPPools where that CRD exists.
 *
 * An ADD takes its pod from the cache, waiting up to `podWaitMs` for it (and for a cached pod of another UID
 * to be replaced), then asks the API server once; a pod it cannot find is 11 (try again later), another UID
 * 109. DEL never needs the API. network-status goes to `pods/status` as a JSON merge patch of the annotation
 * alone (S24; what a CNI's RBAC allows), retried on conflicts and overload; a pod already gone is not an error.
 * Events (`AddedInterface`, a Warning on a failed ADD) are best effort and never delay a pod.
 */
import type { Logger } from 'pino';
import type { PodRef } from '../../cni/ids';
import { podKey } from '../../cni/ids';
import { errorText, PlexusError } from '../../core/errors';
import { type NadObject, type PodObject, podPolicyFields } from '../planner/types';
import { NETWORK_STATUS_ANNOTATION, type NetworkStatus } from '../status/network-status';
import { KubeClient } from './kube/client';
import type { KubeSourceOptions } from './kube/options';
import { Reflector } from './kube/reflector';
import type { PeerPod, Source, SourceEvent } from './source';

const IPPOOLS = '/apis/plexus.io/v1alpha1/ippools';
const IPAMCLAIMS = '/apis/k8s.cni.cncf.io/v1alpha1/ipamclaims';
const NETWORK_POLICIES = '/apis/networking.k8s.io/v1/networkpolicies';
const MULTI_NETWORK_POLICIES = '/apis/k8s.cni.cncf.io/v1beta1/multi-networkpolicies';
const NADS = '/apis/k8s.cni.cncf.io/v1/network-attachment-definitions';

type Raw = Record<string, unknown>;
interface RawMeta {
  namespace?: string;
  name: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ kind: string; name: string; controller?: boolean }>;
}
const meta = (o: Raw) => (o['metadata'] ?? {}) as RawMeta;

/** What the cache keeps of a pod. */
export function podFromApi(o: Raw): PodObject {
  const m = meta(o);
  return {
    namespace: m.namespace ?? '',
    name: m.name,
    ...(m.uid ? { uid: m.uid } : {}),
    annotations: m.annotations ?? {},
    ...(m.ownerReferences ? { ownerReferences: m.ownerReferences.map((r) => ({ kind: r.kind, name: r.name, ...(r.controller !== undefined ? { controller: r.controller } : {}) })) } : {}),
    ...podPolicyFields(m.labels, o['spec']),
  };
}

/** What the cache of other nodes' pods keeps: policy fields, node, addresses and network-status. */
export function peerFromApi(o: Raw): PeerPod {
  const m = meta(o);
  const spec = (o['spec'] ?? {}) as { nodeName?: string };
  const st = (o['status'] ?? {}) as { podIPs?: Array<{ ip?: unknown }>; phase?: unknown };
  // A pod that has finished (a Job's) keeps its addresses in the API, but its node may have given them to
  // another pod already: a finished pod has none here.
  const finished = st.phase === 'Succeeded' || st.phase === 'Failed';
  const podIPs = finished ? [] : (st.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === 'string');
  let status: NetworkStatus[] | undefined;
  try {
    const raw = m.annotations?.[NETWORK_STATUS_ANNOTATION];
    if (raw && !finished) status = JSON.parse(raw) as NetworkStatus[];
  } catch {
    /* not ours to judge: its addresses come from podIPs */
  }
  return {
    pod: { namespace: m.namespace ?? '', name: m.name, annotations: {}, ...podPolicyFields(m.labels, o['spec']) },
    node: spec.nodeName ?? '',
    ...(podIPs.length ? { podIPs } : {}),
    ...(Array.isArray(status) ? { status } : {}),
  };
}

function nadFromApi(o: Raw): NadObject {
  const m = meta(o);
  const config = (o['spec'] as { config?: unknown } | undefined)?.config;
  return { namespace: m.namespace ?? '', name: m.name, annotations: m.annotations ?? {}, ...(typeof config === 'string' ? { config } : {}) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface KubeSourceFeatures {
  /** Watch every other node's pods too (NetworkPolicy peers on other nodes, Source.peers). */
  peers?: boolean;
}

export class KubeSource implements Source {
  private readonly client: KubeClient;
  private readonly pods: Reflector<PodObject>;
  /** Every other node's pods, when policy peers are wanted (KubeSourceFeatures.peers). */
  private readonly peerPods: Reflector<PeerPod> | undefined;
  private readonly nads: Reflector<NadObject>;
  private readonly namespaces: Reflector<Raw>;
  private readonly pools: Reflector<Raw>;
  private readonly claims: Reflector<Raw>;
  private readonly policies: Reflector<Raw>;
  private readonly multiPolicies: Reflector<Raw>;
  private readonly listeners: (() => void)[] = [];
  private readonly status = new Map<string, NetworkStatus[]>();
  private notify: NodeJS.Timeout | undefined;

  /** Loads the kubeconfig (or the service account); `start` begins listing. */
  constructor(
    private readonly options: KubeSourceOptions,
    private readonly nodeName: string,
    private readonly log: Logger,
    features: KubeSourceFeatures = {},
  ) {
    this.client = new KubeClient(options.kubeconfig, options.requestTimeoutMs);
    const common = { silenceMs: options.watchSilenceSeconds * 1000, backoffMaxMs: options.backoffMaxMs, onChange: () => this.changed(), onSynced: () => this.changed() };
    this.pods = new Reflector(this.client, { ...common, path: '/api/v1/pods', query: { fieldSelector: `spec.nodeName=${nodeName}` }, transform: podFromApi, log: log.child({ reflector: 'pods' }) });
    if (features.peers) {
      // Only what policy needs of each pod: memory follows the cluster's pods here, which is what it costs
      // to know a peer on another node by its labels (Cilium's agents hold as much, as identities).
      this.peerPods = new Reflector(this.client, { ...common, path: '/api/v1/pods', query: { fieldSelector: `spec.nodeName!=${nodeName}` }, transform: peerFromApi, log: log.child({ reflector: 'peer-pods' }) });
    }
    this.nads = new Reflector(this.client, { ...common, path: NADS, transform: nadFromApi, log: log.child({ reflector: 'nads' }) });
    this.namespaces = new Reflector(this.client, { ...common, path: '/api/v1/namespaces', transform: (o) => ({ kind: 'Namespace', metadata: { name: meta(o).name, labels: meta(o).labels ?? {} } }), log: log.child({ reflector: 'namespaces' }) });
    this.pools = new Reflector(this.client, { ...common, path: IPPOOLS, optional: true, transform: (o) => o, log: log.child({ reflector: 'ippools' }) });
    // Policies as the API has them (they are small and few); parsed and validated by the daemon's policy host.
    const policy = (kind: string) => (o: Raw): Raw => ({ apiVersion: o['apiVersion'], kind, metadata: { namespace: meta(o).namespace, name: meta(o).name, annotations: meta(o).annotations ?? {} }, spec: o['spec'] });
    this.policies = new Reflector(this.client, { ...common, path: NETWORK_POLICIES, transform: policy('NetworkPolicy'), log: log.child({ reflector: 'networkpolicies' }) });
    this.multiPolicies = new Reflector(this.client, { ...common, path: MULTI_NETWORK_POLICIES, optional: true, transform: policy('MultiNetworkPolicy'), log: log.child({ reflector: 'multi-networkpolicies' }) });
    this.claims = new Reflector(this.client, { ...common, path: IPAMCLAIMS, optional: true, transform: (o) => ({ kind: 'IPAMClaim', metadata: { namespace: meta(o).namespace, name: meta(o).name }, spec: o['spec'] }), log: log.child({ reflector: 'ipamclaims' }) });
  }

  private reflectors(): Reflector<unknown>[] {
    return [this.pods, this.nads, this.namespaces, this.pools, this.claims, this.policies, this.multiPolicies, ...(this.peerPods ? [this.peerPods] : [])] as Reflector<unknown>[];
  }

  /** Starts every reflector and waits (at most one request timeout) for the first lists; DEL never waits for them. */
  async start(): Promise<void> {
    for (const r of this.reflectors()) r.start();
    const synced = Promise.all(this.reflectors().map((r) => r.waitForSync()));
    const t = await Promise.race([synced.then(() => true), sleep(this.options.requestTimeoutMs).then(() => false)]);
    if (t) this.log.info({ server: this.client.server, node: this.nodeName, pods: this.pods.cache.size, nads: this.nads.cache.size }, 'Kubernetes source synced');
    else this.log.warn({ server: this.client.server }, 'Kubernetes source not synced yet; ADDs wait for it, DELs do not need it');
  }

  async stop(): Promise<void> {
    clearTimeout(this.notify);
    await Promise.all(this.reflectors().map((r) => r.stop()));
  }

  ready(): boolean {
    return this.pods.hasSynced && this.nads.hasSynced;
  }

  getPod(namespace: string, name: string): PodObject | undefined {
    return this.pods.cache.get(`${namespace}/${name}`);
  }

  getNad(namespace: string, name: string): NadObject | undefined {
    return this.nads.cache.get(`${namespace}/${name}`);
  }

  listNads(): readonly NadObject[] {
    return [...this.nads.cache.values()];
  }

  listPods(): readonly PodObject[] {
    return [...this.pods.cache.values()];
  }

  peers(): readonly PeerPod[] {
    return [...(this.peerPods?.cache.values() ?? [])];
  }

  /** The reflector of each kind otherObjects serves. */
  private otherReflector(kind: string): Reflector<Raw> | undefined {
    const table: Record<string, Reflector<Raw>> = { IPPool: this.pools, IPAMClaim: this.claims, NetworkPolicy: this.policies, MultiNetworkPolicy: this.multiPolicies, Namespace: this.namespaces };
    return Object.hasOwn(table, kind) ? table[kind] : undefined;
  }

  otherObjects(kind: string): readonly Record<string, unknown>[] {
    return [...(this.otherReflector(kind)?.cache.values() ?? [])];
  }

  listed(kind: string): boolean {
    return this.otherReflector(kind)?.hasSynced ?? true;
  }

  peersListed(): boolean {
    return this.peerPods?.hasSynced ?? true;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Listeners hear of a burst of changes once (a relist of thousands of pods is one notification). */
  private changed(): void {
    if (this.notify) return;
    this.notify = setTimeout(() => {
      this.notify = undefined;
      for (const l of this.listeners) l();
    }, 50);
  }

  async podForAdd(ref: PodRef): Promise<PodObject | undefined> {
    const deadline = Date.now() + this.options.podWaitMs;
    const fits = (p: PodObject | undefined) => p !== undefined && (!ref.uid || !p.uid || p.uid === ref.uid);
    while (Date.now() < deadline && !(this.ready() && fits(this.getPod(ref.namespace, ref.name)))) await sleep(20);
    const cached = this.getPod(ref.namespace, ref.name);
    if (this.ready() && fits(cached)) return cached;
    // Not (yet) in the cache, or another incarnation there: the API server's word (a 5xx or a lost connection
    // is asked again twice, so one hiccup of the server does not fail a pod).
    const path = `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}`;
    let r: { status: number; json: unknown } = { status: 0, json: undefined };
    for (let attempt = 1; attempt <= 3; attempt++) {
      r = await this.client.request('GET', path).catch((e: unknown) => ({ status: 0, json: { message: `the API server did not answer: ${errorText(e)}` } }));
      if (r.status !== 0 && r.status < 500) break;
      if (attempt < 3) await sleep(100 * attempt);
    }
    if (r.status === 404) throw new PlexusError('TryAgainLater', `pod ${podKey(ref)}: not found in the API server`);
    if (r.status !== 200) throw new PlexusError('TryAgainLater', `pod ${podKey(ref)}: the API server answered ${r.status}: ${(r.json as { message?: string } | undefined)?.message ?? ''}`);
    return podFromApi(r.json as Raw);
  }

  async publishStatus(pod: PodRef, status: NetworkStatus[] | null): Promise<void> {
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/status`;
    const body = { metadata: { annotations: { [NETWORK_STATUS_ANNOTATION]: status === null ? null : JSON.stringify(status) } } };
    for (let attempt = 1; ; attempt++) {
      const r = await this.client.request('PATCH', path, { body, contentType: 'application/merge-patch+json' }).catch((e: unknown) => ({ status: 0, json: { message: errorText(e) } }));
      if (r.status === 200) break;
      if (r.status === 404) {
        this.log.debug({ pod: podKey(pod) }, 'pod gone: network-status not written');
        break;
      }
      const retriable = r.status === 0 || r.status === 409 || r.status === 429 || r.status >= 500;
      if (!retriable || attempt >= 5) {
        throw new PlexusError('TryAgainLater', `pod ${podKey(pod)}: network-status not written: ${r.status} ${(r.json as { message?: string } | undefined)?.message ?? ''}`.trim());
      }
      await sleep(Math.random() * 100 * 2 ** attempt);
    }
    if (status === null) this.status.delete(podKey(pod));
    else this.status.set(podKey(pod), status);
  }

  async claimStatus(namespace: string, name: string, ips: string[]): Promise<void> {
    const path = `${IPAMCLAIMS.replace('/ipamclaims', '')}/namespaces/${encodeURIComponent(namespace)}/ipamclaims/${encodeURIComponent(name)}/status`;
    for (let attempt = 1; ; attempt++) {
      const r = await this.client.request('PATCH', path, { body: { status: { ips } }, contentType: 'application/merge-patch+json' });
      if (r.status === 200) return;
      if (r.status === 404) throw new PlexusError('NetworkNotFound', `IPAMClaim ${namespace}/${name} not found: its addresses are kept for it, but its status cannot say so`);
      if (attempt >= 3 || !(r.status === 409 || r.status === 429 || r.status >= 500)) {
        throw new PlexusError('TryAgainLater', `IPAMClaim ${namespace}/${name}: status not written: ${r.status} ${(r.json as { message?: string } | undefined)?.message ?? ''}`.trim());
      }
      await sleep(100 * attempt);
    }
  }

  event(pod: PodRef, e: SourceEvent): void {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const body = {
      apiVersion: 'v1', kind: 'Event',
      metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: pod.namespace, name: pod.name, ...(pod.uid ? { uid: pod.uid } : {}) },
      type: e.type, reason: e.reason, message: e.message,
      source: { component: 'plexus', host: this.nodeName }, reportingComponent: 'plexus', reportingInstance: this.nodeName,
      firstTimestamp: now, lastTimestamp: now, count: 1,
    };
    this.client.must('POST', `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/events`, { body }).catch((err: unknown) => this.log.debug({ pod: podKey(pod), err: errorText(err) }, 'event not recorded'));
  }

  describe(): Record<string, unknown> {
    const r = (x: Reflector<unknown>) => ({ synced: x.hasSynced, objects: x.cache.size, resourceVersion: x.resourceVersion, ...x.stats });
    return { type: 'kubernetes', server: this.client.server, node: this.nodeName, pods: r(this.pods as Reflector<unknown>), nads: r(this.nads as Reflector<unknown>), namespaces: r(this.namespaces as Reflector<unknown>), ippools: r(this.pools as Reflector<unknown>), ipamclaims: r(this.claims as Reflector<unknown>), networkpolicies: r(this.policies as Reflector<unknown>), multinetworkpolicies: r(this.multiPolicies as Reflector<unknown>) };
  }

  getStatus(namespace: string, name: string): NetworkStatus[] | undefined {
    return this.status.get(`${namespace}/${name}`);
  }
}

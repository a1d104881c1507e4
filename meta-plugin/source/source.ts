/**
 * Where pods and NetworkAttachmentDefinitions come from: `file` (a directory of manifests, the embedded
 * default) or `kubernetes` (the API server, kube-source.ts).
 */
import type { PodRef } from '../../cni/ids';
import type { NadObject, PodObject } from '../planner/types';
import type { NetworkStatus } from '../status/network-status';

/** A Kubernetes Event about a pod (the file source has nowhere to put it and only logs it). */
export interface SourceEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** A pod on another node, as NetworkPolicy peers need it: its labels and ports, and what says its addresses. */
export interface PeerPod {
  readonly pod: PodObject;
  readonly node: string;
  /** status.podIPs (the Kubernetes source): its addresses on the cluster network. */
  readonly podIPs?: readonly string[];
  /** Its network-status as its node published it: its addresses on every network. */
  readonly status?: readonly NetworkStatus[];
}

export interface Source {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True once the first full view is loaded. */
  ready(): boolean;
  getPod(namespace: string, name: string): PodObject | undefined;
  /**
   * The pod an ADD is for, with the runtime's UID where it gave one: the Kubernetes source waits a bounded
   * time for its cache and then asks the API server (TryAgainLater when it cannot say); the file source
   * answers from its view (undefined: a pod it does not know, which gets the cluster network only).
   */
  podForAdd(ref: PodRef): Promise<PodObject | undefined>;
  /** Best effort, never awaited by a pod's request. */
  event(pod: PodRef, e: SourceEvent): void;
  /** An IPAMClaim's addresses, as CIDRs, into its status (S37); the file source has nowhere to write them. */
  claimStatus(namespace: string, name: string, ips: string[]): Promise<void>;
  getNad(namespace: string, name: string): NadObject | undefined;
  /** Every NAD and pod of the current view (IPAM pre-registration and source-driven GC). */
  listNads(): readonly NadObject[];
  listPods(): readonly PodObject[];
  /** Objects of other kinds the source found (e.g. Plexus IPAM pools), by kind. */
  otherObjects(kind: string): readonly Record<string, unknown>[];
  /** Whether otherObjects(kind) is complete (listed), so that an object absent there does not exist. */
  listed(kind: string): boolean;
  /** Called after the source's view changed (and once after start). */
  onChange(listener: () => void): void;
  /** Publish a pod's network-status (S24); null clears it. */
  publishStatus(pod: PodRef, status: NetworkStatus[] | null): Promise<void>;
  /**
   * What the current view was built from, for operators (`plexusctl source`) and for tools that must know a
   * change has been seen: the file source lists each manifest file with the size and mtime it loaded.
   */
  describe(): Record<string, unknown>;
  /** The pod's network-status as published, for plexusctl. */
  getStatus(namespace: string, name: string): NetworkStatus[] | undefined;
  /**
   * The pods of other nodes with their addresses, for policies whose peers live there (the Kubernetes source
   * when asked to watch them; the file source with a `statusDir` the nodes share); empty where unknown.
   */
  peers(): readonly PeerPod[];
  /** Whether peers() is complete (listed), so that a pod absent there is not a peer. */
  peersListed(): boolean;
}

/**
 * What the IPAM stores hold. Two stores take part (DESIGN 6):
 * - the shared store (etcd, or the local store on a single machine): blocks, fixed addresses, node liveness;
 * - the node store (always local to the node): one record per pod and the node's per-block cooldown state.
 *
 * Invariant that makes everything else safe: for every block, the shared record's `held` (addresses the
 * owner may be using) plus `foreign` (addresses held by anyone through the shared store) is a superset of the
 * addresses really in use. Owners grow `held` with a compare-and-swap before handing an address out, and
 * shrink it lazily after release, so the node allocates inside its reserve without writing the shared store.
 */
import type { Family } from '../../core/address';

export type Kind = 'block' | 'fixed' | 'node' | 'pod' | 'slot' | 'meta';
export const KINDS: readonly Kind[] = ['block', 'fixed', 'node', 'pod', 'slot', 'meta'];

/** An address held through the shared store: borrowed, requested in another node's block, or fixed. */
export interface ForeignEntry {
  /** The node that made the entry; for a quarantined entry, the node that was lost. */
  node: string;
  /** `namespace/name` of the holder pod, when known. */
  pod?: string;
  /** The attachment holding it now; absent for a parked sticky or claim address. */
  cid?: string;
  ifn?: string;
  /** `claim:ns/name` or `sticky:ns/name`: the address belongs to that, not to the pod. */
  fixed?: string;
  /** Set when the entry was quarantined because its node was lost: the time (ms, injected clock). */
  lost?: number;
  /** The incarnation (node store token) of `node` that made it: a node re-created with a new disk is another. */
  inc?: string;
}

export interface BlockRecord {
  pool: string;
  /** The node with affinity to the block; null for a block that only holds foreign entries. */
  owner: string | null;
  /** The owner's incarnation (its node store token): held addresses belong to that incarnation only. */
  inc?: string;
  /** ordinal -> holder pod (`ns/name`), or '' for reserve not yet handed out or not yet synced. */
  held: Record<string, string>;
  foreign: Record<string, ForeignEntry>;
}

export type FixedType = 'claim' | 'sticky';

export interface FixedAddress {
  pool: string;
  family: Family;
  block: string;
  ordinal: number;
  ip: string;
}

/** An IPAMClaim (S37-S38) or a StatefulSet pod's sticky addresses: they outlive any one attachment. */
export interface FixedRecord {
  type: FixedType;
  namespace: string;
  name: string;
  addresses: FixedAddress[];
}

export interface NodeRecord {
  /** Stable per node store: a restarted daemon may take over its own previous registration. */
  token: string;
  pid?: number;
  start?: string;
  /** What the node publishes about itself for other nodes (underlay addresses, VTEP MAC ...); opaque here. */
  info?: Record<string, string>;
}

/** Node-local state of one owned block: the FIFO reuse-cooldown queue and the fresh-address cursor. */
export interface SlotRecord {
  pool: string;
  cursor: number;
  /** [ordinal, releasedAt ms], oldest first. */
  queue: [number, number][];
}

export interface PodAddress {
  ip: string;
  prefixLength: number;
  family: Family;
  pool: string;
  network: string;
  block: string;
  ordinal: number;
  containerId: string;
  ifName: string;
  /** `own`: inside the node's reserve of its own block; `shared`: a foreign entry in the shared store. */
  via: 'own' | 'shared';
  fixed?: string;
}

/** One per pod: every address it holds on every network (DESIGN 6). */
export interface PodRecord {
  namespace: string;
  name: string;
  uid?: string;
  addresses: PodAddress[];
}

export const fixedKey = (type: FixedType, namespace: string, name: string): string => `${type}:${namespace}/${name}`;
export const attachmentKey = (containerId: string, ifName: string): string => `${containerId}/${ifName}`;

/**
 * Where addresses live, for the routed datapath: which node owns which block, which addresses sit outside
 * their block's owner (borrowed, or in a block nobody owns), and where nodes are (what they publish in
 * their registration). Read straight from the shared store, so every node's claims are in it: two reads
 * (blocks, nodes), which is cheap enough to poll (the local store answers from memory after catching up
 * with its journal; etcd answers two range reads).
 */
import { type Family, formatCidr, formatIp, parseCidr } from '../../core/address';
import type { BlockRecord, NodeRecord } from '../model/records';
import type { Store } from '../stores/store';

/** A block with an owner: the owner routes the whole CIDR. */
export interface PlacedBlock {
  cidr: string;
  pool: string;
  family: 4 | 6;
  node: string;
}

/**
 * An address held by a node other than its block's owner (borrowed, or in a block with no owner). Left out:
 * quarantined addresses (their node was lost) and parked fixed addresses (a claim or sticky address that no
 * attachment uses now): nothing answers on them.
 */
export interface PlacedAddress {
  ip: string;
  family: 4 | 6;
  node: string;
}

export interface PlacedNode {
  /** What the node published when it registered (IpamOptions.nodeInfo); empty for a node that is not registered. */
  info: Record<string, string>;
  /** Whether the store considers the node's registration live now. */
  alive: boolean;
}

export interface Placement {
  blocks: PlacedBlock[];
  borrowed: PlacedAddress[];
  /** Every registered node, and every node named by a block or address above (then maybe not alive). */
  nodes: Record<string, PlacedNode>;
}

/** `pool:10.0.0.64-26` -> 10.0.0.64/26; undefined for a key of another shape (written by a newer version). */
export function cidrOfKey(key: string): ReturnType<typeof parseCidr> | undefined {
  const m = /^[^:]+:(.+)-(\d+)$/.exec(key);
  if (!m) return undefined;
  try {
    return parseCidr(`${m[1]}/${m[2]}`);
  } catch {
    return undefined;
  }
}

const familyNumber = (f: Family): 4 | 6 => (f === 'v4' ? 4 : 6);

export async function readPlacement(shared: Store): Promise<Placement> {
  const [blocks, nodes] = await Promise.all([shared.list<BlockRecord>('block'), shared.list<NodeRecord>('node')]);
  const out: Placement = { blocks: [], borrowed: [], nodes: {} };
  for (const [name, rec] of nodes) out.nodes[name] = { info: { ...(rec.value.info ?? {}) }, alive: true };
  const mention = (node: string): void => void (out.nodes[node] ??= { info: {}, alive: false });
  for (const key of [...blocks.keys()].sort()) {
    const blk = (blocks.get(key) as { value: BlockRecord }).value;
    const cidr = cidrOfKey(key);
    if (!cidr) continue;
    const family = familyNumber(cidr.family);
    if (blk.owner !== null) {
      out.blocks.push({ cidr: formatCidr(cidr), pool: blk.pool, family, node: blk.owner });
      mention(blk.owner);
    }
    const ords = Object.keys(blk.foreign).map(Number).sort((a, b) => a - b);
    for (const o of ords) {
      const ent = blk.foreign[o];
      if (!ent || ent.node === blk.owner || ent.lost !== undefined || (ent.fixed !== undefined && ent.cid === undefined)) continue;
      out.borrowed.push({ ip: formatIp({ family: cidr.family, value: cidr.base + BigInt(o) }), family, node: ent.node });
      mention(ent.node);
    }
  }
  return out;
}

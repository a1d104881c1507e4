/**
 * The compiled policy (policy/compile.ts) of this node's DPDK attachments, in the form plexus-dataplane takes
 * (dpdk-native/policy-wire.ts): the same maps the eBPF datapath holds, with endpoints numbered for the engine
 * and networks named by the engine's network (plexus-dpdk's `network`, which several NADs may share).
 */
import { formatCidr } from '../../core/address';
import type { Attachment, Compiled, DirectionMaps } from '../../policy/compile';
import { endpointKey } from '../../policy/compile';
import type { EnginePolicy } from '../../dpdk-native/policy-wire';

/** A DPDK attachment of this node: the pod on its NAD (`network`), the engine network and the engine's ports. */
export interface EngineAttachment extends Attachment {
  readonly network: string;
  readonly engineNetwork: string;
  readonly ports: readonly string[];
}

const V6_BIT = 1n << 128n;

/** An address-table key of compile.ts (129 bits: the family bit, then the address) as a CIDR. */
const cidrText = (key: bigint, len: number): string =>
  key & V6_BIT ? formatCidr({ family: 'v6', base: key & (V6_BIT - 1n), prefix: len - 1 }) : formatCidr({ family: 'v4', base: key & 0xffff_ffffn, prefix: len - 97 });

/**
 * `governed`: the NADs some MultiNetworkPolicy names; only their attachments are endpoints, and only their
 * engine networks are judged. `ports`: every pod port of the engine (name and engine network): those on a judged
 * network that are no endpoint's still have their sources checked. `revision` names what this was compiled from.
 */
export function enginePolicyOf(
  compiled: Compiled, attachments: readonly EngineAttachment[], governed: ReadonlySet<string>, ports: ReadonlyArray<{ port: string; engineNetwork: string }>, revision: string,
): EnginePolicy {
  const mine = attachments.filter((a) => governed.has(a.network));
  const networks = new Set(mine.map((a) => a.engineNetwork));
  const endpointPorts = new Set(mine.flatMap((a) => a.ports));
  const otherPorts = ports.filter((p) => networks.has(p.engineNetwork) && !endpointPorts.has(p.port)).map((p) => p.port).sort();
  const policy: EnginePolicy = { revision, networks: [...networks].sort(), endpoints: [], otherPorts, ipcache: [], cidrs: [], rules: [] };
  const cached = new Set<string>();
  mine.forEach((a, id) => {
    const maps = compiled.endpoints.get(endpointKey(a.network, a.pod));
    if (!maps) return;
    policy.endpoints.push({ network: a.engineNetwork, id, ips: [...a.ips], ports: [...a.ports], isolated: (['ingress', 'egress'] as const).filter((d) => maps[d].isolated) });
    addDirection(policy, id * 2, maps.ingress);
    addDirection(policy, id * 2 + 1, maps.egress);
    // Every address the NAD's policies can name, under the engine network its packets are judged on.
    const pair = `${a.network}|${a.engineNetwork}`;
    if (cached.has(pair)) return;
    cached.add(pair);
    for (const [ip, identity] of compiled.ipcache.get(a.network) ?? []) policy.ipcache.push([a.engineNetwork, ip, identity]);
  });
  return policy;
}

function addDirection(policy: EnginePolicy, epdir: number, maps: DirectionMaps): void {
  if (!maps.isolated) return;
  for (const { key, len, value } of maps.cidr.entries()) policy.cidrs.push([epdir, cidrText(key, len), value]);
  for (const { key, len } of maps.rules.entries()) {
    policy.rules.push([epdir, Number(key >> 24n), Number((key >> 16n) & 0xffn), Number(key & 0xffffn), len]);
  }
}

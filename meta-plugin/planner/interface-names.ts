/**
 * Interface names of a pod's extra attachments (S15, S23). A requested name is used as given; the others are
 * named as Multus names them, `net<k>` for the k-th extra attachment, so existing pods see the same names,
 * except that a name the pod already has or requests anywhere is skipped: names stay unique per pod.
 */
import { PlexusError } from '../../core/errors';
import type { IfName } from '../../cni/ids';
import type { NetworkSelection } from './annotation';

export function assignIfNames(pod: string, clusterIfName: IfName, selections: readonly NetworkSelection[]): IfName[] {
  const requested = new Set<string>(selections.flatMap((s) => (s.interface ? [s.interface] : [])));
  const owners = new Map<string, string>([[clusterIfName, 'the cluster network']]);
  return selections.map((selection, i) => {
    const network = `${selection.namespace}/${selection.name}`;
    const name = selection.interface ?? generateIfName(i + 1, owners, requested);
    const owner = owners.get(name);
    // S15: a requested name already taken by an earlier attachment fails; generated names never collide.
    if (owner !== undefined) {
      throw new PlexusError(
        'InterfaceConflict',
        `${pod}: network ${network} requests interface ${JSON.stringify(name)}, already used by ${owner} (S15)`,
      );
    }
    owners.set(name, `network ${network}`);
    return name;
  });
}

function generateIfName(position: number, owners: ReadonlyMap<string, string>, requested: ReadonlySet<string>): IfName {
  for (let k = position; ; k++) {
    const name = `net${k}`;
    if (!owners.has(name) && !requested.has(name)) return name as IfName;
  }
}

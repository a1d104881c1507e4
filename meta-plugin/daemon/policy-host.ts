/**
 * The policies as this daemon knows them: NetworkPolicies, MultiNetworkPolicies and Namespaces from the source
 * (manifests or the API), validated and defaulted by policy/parse.ts at every change of the source; a policy
 * that would be refused by an API server is left out with one warning naming its fields (again only if it
 * changes). Serves `plexusctl policy NAMESPACE/POD`. Enforcement in the datapath builds on the same World.
 */
import type { Logger } from 'pino';
import { errorText } from '../../core/errors';
import { describePod, type PodPolicyView } from '../../policy/describe';
import type { PolicyPod, World } from '../../policy/evaluate';
import { type Policy, namespaceLabels, parsePolicy } from '../../policy/parse';
import type { PodObject } from '../planner/types';
import type { Source } from '../source/source';

export const POLICY_KINDS = ['NetworkPolicy', 'MultiNetworkPolicy'] as const;

export function policyPod(pod: PodObject): PolicyPod {
  return { namespace: pod.namespace, name: pod.name, labels: pod.labels ?? {}, ports: pod.ports ?? [], ...(pod.hostNetwork ? { hostNetwork: true } : {}) };
}

export class PolicyHost {
  private world: World = { policies: [], namespaces: new Map() };
  private refused = new Set<string>();

  constructor(
    private readonly source: Source,
    private readonly log: Logger,
  ) {
    this.refresh();
    source.onChange(() => this.refresh());
  }

  get current(): World {
    return this.world;
  }

  refresh(): void {
    const policies: Policy[] = [];
    const refused = new Set<string>();
    for (const doc of POLICY_KINDS.flatMap((k) => this.source.otherObjects(k))) {
      try {
        policies.push(parsePolicy(doc));
      } catch (e) {
        const why = errorText(e);
        refused.add(why);
        if (!this.refused.has(why)) this.log.warn({ err: why }, 'policy refused: it is not enforced until fixed');
      }
    }
    this.refused = refused;
    // Every namespace carries its name label (F11), also one known only from its pods or policies (file source).
    const namespaces = new Map<string, Readonly<Record<string, string>>>();
    for (const p of [...this.source.listPods(), ...policies]) namespaces.set(p.namespace, namespaceLabels(p.namespace, {}));
    for (const ns of this.source.otherObjects('Namespace')) {
      const m = (ns['metadata'] ?? {}) as { name?: unknown; labels?: unknown };
      if (typeof m.name === 'string') namespaces.set(m.name, namespaceLabels(m.name, (m.labels ?? {}) as Record<string, string>));
    }
    this.world = { policies, namespaces };
  }

  /** What `plexusctl policy` prints; undefined for a pod the source does not have (the API source: this node's). */
  describe(namespace: string, name: string): PodPolicyView | undefined {
    const pod = this.source.getPod(namespace, name);
    return pod && describePod(this.world, policyPod(pod));
  }
}

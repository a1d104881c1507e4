/**
 * The MultiNetworkPolicy of the engine's ports between the two sides of plexusd that touch it: the policy host
 * compiles and publishes it at every change (before an ADD returns, for a pod it isolates), and the reconcile
 * sends the latest again to an engine that restarted, before it re-creates the engine's ports, so a port never
 * comes back without its policy.
 */
import type { NetworkConfList } from '../cni/network-config';
import type { EngineClient } from './engine-client';
import type { EnginePolicy } from './policy-wire';
import { DPDK_TYPE } from './delegate';

export { enginePortName } from './delegate';

export class EnginePolicyChannel {
  private latest: EnginePolicy | undefined;

  /**
   * `enforcing`: a policy host will publish (policy.enforce); until it has, ensure() holds the reconcile back,
   * so a daemon that starts beside a restarted engine never re-creates ports before their policy is there.
   */
  constructor(
    readonly client: EngineClient,
    private readonly enforcing: boolean,
  ) {}

  /** Sends `policy` unless the engine was last sent the same revision; kept for ensure() even when sending fails. */
  async publish(policy: EnginePolicy): Promise<void> {
    if (this.latest?.revision === policy.revision) return;
    this.latest = policy;
    await this.client.putPolicy(policy);
  }

  /** An engine that does not hold the latest policy (it restarted) gets it; true when it was sent. */
  async ensure(): Promise<boolean> {
    const want = this.latest;
    if (!want && this.enforcing) throw new Error('the policy is not compiled yet: the reconcile waits for it');
    if (!want || (await this.client.policyRevision()) === want.revision) return false;
    await this.client.putPolicy(want);
    return true;
  }
}

/** The engine network of an attachment whose delegate is plexus-dpdk (its `network`, else the network's name). */
export function engineNetworkOf(conf: NetworkConfList): string | undefined {
  const plugin = conf.plugins.find((p) => p.type === DPDK_TYPE);
  if (!plugin) return undefined;
  return typeof plugin['network'] === 'string' ? plugin['network'] : conf.name;
}

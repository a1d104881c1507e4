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
  /** What the engine should hold (kept for ensure() even when sending it failed), and what it was last sent. */
  private wanted: EnginePolicy | undefined;
  private sent: string | undefined;
  /** One exchange with the engine at a time: an older policy never lands after a newer one. */
  private chain: Promise<unknown> = Promise.resolve();

  /**
   * `enforcing`: a policy host will publish (policy.enforce); until it has, ensure() holds the reconcile back,
   * so a daemon that starts beside a restarted engine never re-creates ports before their policy is there.
   */
  constructor(
    readonly client: EngineClient,
    private readonly enforcing: boolean,
  ) {}

  /** Sends `policy` unless the engine was last sent the same revision. */
  publish(policy: EnginePolicy): Promise<void> {
    this.wanted = policy;
    return this.serial(async () => {
      if (this.sent === policy.revision) return; // it is there (a send of the same content after a failure does go)
      await this.client.putPolicy(policy);
      this.sent = policy.revision;
    });
  }

  /** An engine that does not hold the wanted policy (it restarted, or a send failed) gets it; true when it was sent. */
  ensure(): Promise<boolean> {
    return this.serial(async () => {
      const want = this.wanted;
      if (!want && this.enforcing) throw new Error('the policy is not compiled yet: the reconcile waits for it');
      if (!want || (await this.client.policyRevision()) === want.revision) return false;
      await this.client.putPolicy(want);
      this.sent = want.revision;
      return true;
    });
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const next = this.chain.then(step);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** The engine network of an attachment whose delegate is plexus-dpdk (its `network`, else the network's name). */
export function engineNetworkOf(conf: NetworkConfList): string | undefined {
  const plugin = conf.plugins.find((p) => p.type === DPDK_TYPE);
  if (!plugin) return undefined;
  return typeof plugin['network'] === 'string' ? plugin['network'] : conf.name;
}

/**
 * plexus-ipam as a built-in delegate: the CNI IPAM plugin of ipam/ (ipam/cni/plugin.ts) behind the delegate
 * contract, so every caller reaches the one IPAM service through the registry (STYLE 23): plexus-routed
 * in-process, as ptp calls ipam.ExecAdd, and any external delegate (macvlan, bridge ...) that execs
 * `bin/plexus-ipam`, forwarded to the daemon and handed here.
 *
 * Its requests arrive while the pod's own ADD holds one of the daemon's request slots and the pod's lock, so
 * it has slots of its own and locks per attachment (container ID and interface): sharing either would
 * deadlock. Two requests for one attachment (a retried ADD, ADD racing DEL) are serialised.
 */
import { requestOf } from '../cni/request';
import { KeyedMutex, Semaphore } from '../core/locks';
import type { IpamPlugin } from '../ipam';
import { cniEnvOf, type Delegate, type PluginCall } from './contract';

export class PlexusIpamDelegate implements Delegate {
  private readonly slots: Semaphore;
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly plugin: Pick<IpamPlugin, 'handle'>,
    maxConcurrentRequests: number,
  ) {
    this.slots = new Semaphore(maxConcurrentRequests);
  }

  /** Validated as a runtime's request would be (requestOf), without a JSON round trip. */
  exec(call: PluginCall): Promise<unknown> {
    const req = requestOf(cniEnvOf(call), call.config);
    const key = `${call.env.containerId}@${call.env.ifName}`;
    call.log.debug('plexus-ipam request');
    return this.slots.run(() => this.locks.run(key, () => this.plugin.handle(req)));
  }
}

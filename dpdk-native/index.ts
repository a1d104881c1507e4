/**
 * plexus-dpdk's public face for the daemon: the delegate driving plexus-dataplane, the reconcile that keeps
 * the engine's ports equal to the attachment records across restarts of either side, and the channel of the
 * engine's MultiNetworkPolicy (sent again by the reconcile, before any port is re-created).
 */
import type { Logger } from 'pino';
import { errorText, PlexusError } from '../core/errors';
import type { DelegateRegistry } from '../delegates/contract';
import type { DpdkOptions } from './config';
import { DpdkDelegate } from './delegate';
import type { EnginePolicyChannel } from './policy-channel';

export { DPDK_TYPE, DpdkDelegate } from './delegate';
export { parseDpdkOptions, type DpdkOptions } from './config';
export { EngineClient } from './engine-client';
export { EnginePolicyChannel } from './policy-channel';

export interface DpdkHost {
  readonly delegate: DpdkDelegate;
  close(): void;
}

/**
 * The delegate, and a reconcile now and every `everyMs` (an engine restart is noticed within that): the policy
 * first, so a port the engine lost comes back under its policy.
 */
export function openDpdk(options: DpdkOptions, stateDir: string, delegates: DelegateRegistry, log: Logger, policy: EnginePolicyChannel, everyMs = 3000): DpdkHost {
  const delegate = new DpdkDelegate({ options, engine: policy.client, stateDir, delegates });
  let running: Promise<unknown> | undefined;
  const tick = () => {
    running ??= policy
      .ensure()
      .then((sent) => sent && log.info('DPDK engine given the current policy again (it restarted)'))
      .then(() => delegate.reconcile(log))
      .catch((e: unknown) => {
        // A refusal (the engine answered 4xx) is a fault to see; an engine not (yet) listening is routine.
        if (e instanceof PlexusError && e.kind === 'InvalidConfig') log.error({ err: errorText(e) }, 'DPDK engine refused the policy: its ports are not re-created until it takes one');
        else log.debug({ err: errorText(e) }, 'DPDK engine not reachable; will retry');
      })
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return { delegate, close: () => clearInterval(timer) };
}

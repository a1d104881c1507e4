/**
 * plexus-dpdk's public face for the daemon: the delegate driving plexus-dataplane, and the reconcile that keeps
 * the engine's ports equal to the attachment records across restarts of either side.
 */
import type { Logger } from 'pino';
import { errorText } from '../core/errors';
import type { DelegateRegistry } from '../delegates/contract';
import type { DpdkOptions } from './config';
import { DpdkDelegate } from './delegate';
import { EngineClient } from './engine-client';

export { DPDK_TYPE, DpdkDelegate } from './delegate';
export { parseDpdkOptions, type DpdkOptions } from './config';

export interface DpdkHost {
  readonly delegate: DpdkDelegate;
  close(): void;
}

/** The delegate, and a reconcile now and every `everyMs` (an engine restart is noticed within that). */
export function openDpdk(options: DpdkOptions, stateDir: string, delegates: DelegateRegistry, log: Logger, everyMs = 3000): DpdkHost {
  const delegate = new DpdkDelegate({ options, engine: new EngineClient(options.socketPath), stateDir, delegates });
  let running: Promise<unknown> | undefined;
  const tick = () => {
    running ??= delegate
      .reconcile(log)
      .catch((e: unknown) => log.debug({ err: errorText(e) }, 'DPDK engine not reachable; will retry'))
      .finally(() => (running = undefined));
  };
  tick();
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return { delegate, close: () => clearInterval(timer) };
}

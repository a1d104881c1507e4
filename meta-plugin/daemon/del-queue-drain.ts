/**
 * Replaying the DELs the shim queued while the daemon could not be reached (DESIGN decision 2). A DEL that
 * fails stays queued and is retried; one that can never succeed (unreadable, invalid) is set aside with the
 * reason, never deleted.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../core/atomic-file';
import { errorText } from '../../core/errors';
import { parseRequest } from '../../cni/request';
import { delQueueDir, listQueuedDels, removeQueuedDel } from '../api/del-queue';
import { isPluginName } from '../api/protocol';
import type { CniHandler } from './handler';

/** Replay queued DELs oldest first; a DEL that fails stays queued and is retried later. */
export async function drainDelQueue(stateDir: string, handler: CniHandler, log: Logger, stopping: () => boolean = () => false): Promise<void> {
  for (const { file, item, error } of listQueuedDels(stateDir)) {
    if (stopping()) return; // the rest waits for the next start
    if (!item) {
      quarantine(stateDir, file, error ?? 'unreadable', log);
      continue;
    }
    try {
      parseRequest(item.env, item.config); // invalid items can never succeed: set them aside
    } catch (e) {
      quarantine(stateDir, file, errorText(e), log);
      continue;
    }
    const reply = await handler.handle(item.env, item.config, isPluginName(item.invokedAs) ? item.invokedAs : 'plexus');
    if (reply.ok) {
      removeQueuedDel(stateDir, file);
      log.info({ file, containerId: item.env['CNI_CONTAINERID'] }, 'queued DEL done');
    } else {
      log.warn({ file, reply: reply.error.toCni(reply.cniVersion) }, 'queued DEL failed; will retry');
    }
  }
}

/** Never lose a queued request: move what cannot be replayed next to the queue, with the reason. */
function quarantine(stateDir: string, file: string, reason: string, log: Logger): void {
  try {
    const body = readFileSync(join(delQueueDir(stateDir), file), 'utf8');
    writeFileAtomic(join(delQueueDir(stateDir), 'failed', file), JSON.stringify({ reason, body }));
    removeQueuedDel(stateDir, file);
  } catch (e) {
    log.error({ file, err: errorText(e) }, 'cannot quarantine queued DEL');
    return;
  }
  log.error({ file, reason }, 'queued DEL cannot be replayed; moved to del-queue/failed');
}

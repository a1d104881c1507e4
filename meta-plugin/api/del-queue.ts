/**
 * The durable DEL queue (DESIGN decision 2): when the daemon cannot be reached, the shim writes the DEL
 * request here, fsyncs it and its directory, and reports success; the daemon drains the queue on start,
 * before it declares itself ready. Core-module-only: the shim bundles it.
 *
 * File names are generated (time + random), never derived from request values, so nothing the runtime
 * sent reaches a path. Time-ordered names let the daemon replay in arrival order.
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../../core/atomic-file';

export interface QueuedDel {
  env: Record<string, string>;
  config: string;
  /** The plugin name the runtime executed (plexus, plexus-ipam); absent means plexus. */
  invokedAs?: string;
  queuedAt: string;
}

export const delQueueDir = (stateDir: string): string => join(stateDir, 'del-queue');

export function enqueueDel(stateDir: string, item: QueuedDel): string {
  const name = `${Date.now().toString().padStart(15, '0')}-${randomBytes(6).toString('hex')}.json`;
  writeFileAtomic(join(delQueueDir(stateDir), name), JSON.stringify(item));
  return name;
}

/** Queued items, oldest first. Unreadable files are returned as errors so the daemon can report them. */
export function listQueuedDels(stateDir: string): { file: string; item?: QueuedDel; error?: string }[] {
  const dir = delQueueDir(stateDir);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch {
    return [];
  }
  return names.map((file) => {
    try {
      return { file, item: JSON.parse(readFileSync(join(dir, file), 'utf8')) as QueuedDel };
    } catch (e) {
      return { file, error: (e as Error).message };
    }
  });
}

export function removeQueuedDel(stateDir: string, file: string): void {
  try {
    unlinkSync(join(delQueueDir(stateDir), file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}


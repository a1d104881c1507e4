/**
 * Where shims may have queued DELs for this daemon besides its own stateDir: a `plexus` plugin in a CNI config
 * in confDir that points at this daemon's socket but names another `stateDir` (or none, when the daemon's is
 * not the default). The shim prefers the directory the daemon publishes beside its socket, but that file is
 * gone after a reboot until the daemon starts, so the daemon drains these too and no DEL is left behind.
 */
import { DEFAULT_SOCKET_PATH, DEFAULT_STATE_DIR } from '../api/protocol';
import type { ConfFile } from '../planner/types';
import type { DaemonConfig } from './config';

export function shimStateDirs(files: readonly ConfFile[], config: Pick<DaemonConfig, 'socketPath' | 'stateDir'>): string[] {
  const dirs = new Set<string>();
  for (const file of files) {
    const plugins = Array.isArray(file.json['plugins']) ? (file.json['plugins'] as unknown[]) : [file.json];
    for (const p of plugins) {
      const plugin = p as { type?: unknown; socketPath?: unknown; stateDir?: unknown } | null;
      if (plugin?.type !== 'plexus') continue;
      const socket = typeof plugin.socketPath === 'string' ? plugin.socketPath : DEFAULT_SOCKET_PATH;
      const dir = typeof plugin.stateDir === 'string' ? plugin.stateDir : DEFAULT_STATE_DIR;
      if (socket === config.socketPath && dir !== config.stateDir) dirs.add(dir);
    }
  }
  return [...dirs];
}

/**
 * Where shims may have queued DELs for this daemon besides its own stateDir: a `plexus` plugin, or a
 * delegate's `plexus-ipam` section, in a CNI config in confDir that points at this daemon's socket but names
 * another `stateDir` (or none, when the daemon's is not the default). The shim prefers the directory the daemon publishes beside its socket, but that file is
 * gone after a reboot until the daemon starts, so the daemon drains these too and no DEL is left behind.
 */
import { isAbsolute, resolve } from 'node:path';
import { IPAM_PLUGIN_TYPE } from '../../ipam';
import { DEFAULT_SOCKET_PATH, DEFAULT_STATE_DIR } from '../api/protocol';
import type { ConfFile } from '../planner/types';
import type { DaemonConfig } from './config';

export function shimStateDirs(files: readonly ConfFile[], config: Pick<DaemonConfig, 'socketPath' | 'stateDir'>): string[] {
  const dirs = new Set<string>();
  const own = resolve(config.stateDir);
  const consider = (section: { socketPath?: unknown; stateDir?: unknown }): void => {
    const socket = typeof section.socketPath === 'string' ? section.socketPath : DEFAULT_SOCKET_PATH;
    const dir = typeof section.stateDir === 'string' ? section.stateDir : DEFAULT_STATE_DIR;
    if (!isAbsolute(socket) || !isAbsolute(dir) || resolve(socket) !== resolve(config.socketPath)) return;
    if (resolve(dir) !== own) dirs.add(resolve(dir));
  };
  for (const file of files) {
    const plugins = Array.isArray(file.json['plugins']) ? (file.json['plugins'] as unknown[]) : [file.json];
    for (const p of plugins) {
      const plugin = p as { type?: unknown; ipam?: { type?: unknown } } | null;
      if (plugin?.type === 'plexus') consider(plugin as Record<string, unknown>);
      // A delegate's plexus-ipam queues its DELs under its ipam section's settings (the shim run as plexus-ipam).
      if (plugin?.ipam && typeof plugin.ipam === 'object' && plugin.ipam.type === IPAM_PLUGIN_TYPE) consider(plugin.ipam as Record<string, unknown>);
    }
  }
  return [...dirs];
}

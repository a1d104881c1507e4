/**
 * Manifests for the file source: written atomically (the source never reads half a file), then awaited until
 * each daemon's source has loaded exactly that version of the file (`/v1/source` lists every file with the
 * size and mtime it loaded). A pod a daemon does not know yet gets the cluster network only, so an ADD must
 * not race the reload; no fixed sleeps, no log scraping.
 */
import { renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { daemonGet } from './daemon';
import { sleep } from './process';

export interface ManifestFile {
  name: string;
  size: number;
  mtimeMs: number;
}

/** Writes `objects` (multi-document YAML) as `dir/file` through a rename; returns what the source will see. */
export function writeManifest(dir: string, file: string, objects: Record<string, unknown>[]): ManifestFile {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, objects.map((o) => yaml.dump(o)).join('---\n'));
  renameSync(tmp, join(dir, file));
  const st = statSync(join(dir, file));
  return { name: file, size: st.size, mtimeMs: st.mtimeMs };
}

/** Until the daemon on `socket` has loaded `file` as written (default at most 10 s). */
export async function waitLoaded(socket: string, file: ManifestFile, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = 'nothing';
  while (Date.now() < deadline) {
    const res = await daemonGet(socket, '/v1/source').catch(() => undefined);
    if (res?.status === 200) {
      const files = (JSON.parse(res.body) as { files?: ManifestFile[] }).files ?? [];
      const mine = files.find((f) => f.name === file.name);
      if (mine && mine.size === file.size && mine.mtimeMs === file.mtimeMs) return;
      seen = mine ? JSON.stringify(mine) : 'no such file';
    }
    await sleep(20);
  }
  throw new Error(`plexusd at ${socket} did not load ${JSON.stringify(file)} within ${timeoutMs} ms (it has ${seen})`);
}

/** A NetworkAttachmentDefinition manifest; no config: resolved from confDir (S5). */
export function nadManifest(name: string, config: Record<string, unknown> | undefined, namespace = 'default', annotations: Record<string, string> = {}) {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: { name, namespace, annotations },
    spec: config ? { config: JSON.stringify(config) } : {},
  };
}

/** A Pod manifest; `networks` becomes the k8s.v1.cni.cncf.io/networks annotation. */
export function podManifest(name: string, networks?: string | unknown[], namespace = 'default', extra: Record<string, string> = {}) {
  const annotations: Record<string, string> = { ...extra };
  if (networks !== undefined) annotations['k8s.v1.cni.cncf.io/networks'] = typeof networks === 'string' ? networks : JSON.stringify(networks);
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, annotations } };
}

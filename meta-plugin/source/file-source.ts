/**
 * The file source: every `*.yaml`, `*.yml` and `*.json` manifest in one directory (DESIGN "External
 * contract"). It notices changes without a restart (fs.watch, plus a periodic rescan because inotify misses
 * changes behind some mounts), swaps in a whole new view at once, and keeps pods' network-status in memory.
 *
 * With a `statusDir` the nodes share, each node also writes its pods' network-status there
 * (`<namespace>_<name>.json`, with its node name) and reads the other nodes': the peers a NetworkPolicy on
 * this node may name (Source.peers). Written without fsync: the records restore it after a restart.
 */
import { watch, FSWatcher, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { PodRef } from '../../cni/ids';
import { podKey } from '../../cni/ids';
import type { NadObject, PodObject } from '../planner/types';
import type { NetworkStatus } from '../status/network-status';
import type { PeerPod, Source, SourceEvent } from './source';
import { parseManifests } from './manifest';

interface ManifestFile {
  name: string;
  size: number;
  mtimeMs: number;
}

interface View {
  pods: Map<string, PodObject>;
  nads: Map<string, NadObject>;
  others: Map<string, Record<string, unknown>[]>;
  files: ManifestFile[];
  signature: string;
}

const MANIFEST_RE = /\.(ya?ml|json)$/;
const STATUS_RE = /^[a-z0-9.-]+_[a-z0-9.-]+\.json$/;

/** One file of the shared status directory: a pod's network-status as its node published it. */
interface StatusFile {
  node: string;
  namespace: string;
  name: string;
  status: NetworkStatus[];
}

export interface FileSourceShare {
  /** The directory the nodes share for network-status (FileSourceOptions.statusDir). */
  readonly statusDir: string;
  /** This node: its own files are not peers. */
  readonly nodeName: string;
}

export class FileSource implements Source {
  private view: View = { pods: new Map(), nads: new Map(), others: new Map(), files: [], signature: '' };
  /** The other nodes' pods in statusDir, and the listing they were read from. */
  private peerView: { signature: string; files: StatusFile[] } = { signature: '', files: [] };
  private readonly status = new Map<string, NetworkStatus[]>();
  private watcher: FSWatcher | undefined;
  private statusWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private loaded = false;
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly rescanMs = 2000,
    private readonly share?: FileSourceShare,
  ) {}

  async start(): Promise<void> {
    this.reload();
    this.loaded = true;
    try {
      this.watcher = watch(this.dir, () => this.scheduleReload());
      this.watcher.on('error', (e) => this.log.warn({ err: e.message, dir: this.dir }, 'manifest watch failed; rescanning only'));
    } catch (e) {
      this.log.warn({ err: (e as Error).message, dir: this.dir }, 'cannot watch manifest directory; rescanning only');
    }
    if (this.share) {
      mkdirSync(this.share.statusDir, { recursive: true });
      try {
        this.statusWatcher = watch(this.share.statusDir, () => this.scheduleReload());
        this.statusWatcher.on('error', () => undefined); // the rescan still sees changes
      } catch {
        /* rescanning only */
      }
    }
    this.timer = setInterval(() => this.reload(), this.rescanMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.statusWatcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }

  ready(): boolean {
    return this.loaded;
  }

  private scheduleReload(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.reload(), 50);
    this.debounce.unref();
  }

  /** Re-read the directories when any file's name, size or mtime changed. */
  reload(): void {
    const peersChanged = this.reloadPeers();
    if (!this.reloadManifests() && !peersChanged) return;
    for (const l of this.listeners) {
      try {
        l();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'source change listener failed');
      }
    }
  }

  private reloadManifests(): boolean {
    const files = this.listFiles(this.dir, MANIFEST_RE);
    const signature = files.map((f) => `${f.name}:${f.size}:${f.mtimeMs}`).join('|');
    if (signature === this.view.signature) return false;
    const next: View = { pods: new Map(), nads: new Map(), others: new Map(), files, signature };
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(join(this.dir, f.name), 'utf8');
      } catch (e) {
        this.log.warn({ file: f.name, err: (e as Error).message }, 'cannot read manifest; skipped');
        continue;
      }
      const parsed = parseManifests(f.name, text);
      for (const p of parsed.problems) this.log.warn({ file: f.name, problem: p }, 'malformed manifest skipped');
      for (const n of parsed.nads) next.nads.set(podKey(n), n);
      for (const p of parsed.pods) next.pods.set(podKey(p), p);
      for (const o of parsed.others) {
        const kind = String(o['kind']);
        next.others.set(kind, [...(next.others.get(kind) ?? []), o]);
      }
    }
    this.view = next;
    this.log.info({ dir: this.dir, pods: next.pods.size, nads: next.nads.size }, 'manifests loaded');
    return true;
  }

  /** The other nodes' status files, when their listing changed. */
  private reloadPeers(): boolean {
    if (!this.share) return false;
    const files = this.listFiles(this.share.statusDir, STATUS_RE);
    const signature = files.map((f) => `${f.name}:${f.size}:${f.mtimeMs}`).join('|');
    if (signature === this.peerView.signature) return false;
    const others: StatusFile[] = [];
    for (const f of files) {
      try {
        const s = JSON.parse(readFileSync(join(this.share.statusDir, f.name), 'utf8')) as StatusFile;
        if (s.node !== this.share.nodeName) others.push(s);
      } catch {
        /* being replaced, or not ours to read: the next scan sees it */
      }
    }
    this.peerView = { signature, files: others };
    return true;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private listFiles(dir: string, pattern: RegExp): ManifestFile[] {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => pattern.test(n) && !n.startsWith('.')).sort();
    } catch (e) {
      if (this.loaded) this.log.warn({ dir, err: (e as Error).message }, 'cannot list directory');
      return [];
    }
    const out: ManifestFile[] = [];
    for (const name of names) {
      try {
        const st = statSync(join(dir, name));
        if (st.isFile()) out.push({ name, size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        /* vanished between readdir and stat */
      }
    }
    return out;
  }

  getPod(namespace: string, name: string): PodObject | undefined {
    return this.view.pods.get(`${namespace}/${name}`);
  }

  async podForAdd(ref: PodRef): Promise<PodObject | undefined> {
    return this.getPod(ref.namespace, ref.name);
  }

  async claimStatus(namespace: string, name: string, ips: string[]): Promise<void> {
    this.log.debug({ claim: `${namespace}/${name}`, ips }, 'IPAMClaim addresses (the file source does not write status)');
  }

  event(pod: PodRef, e: SourceEvent): void {
    this.log.debug({ pod: podKey(pod), ...e }, 'pod event (the file source has no event sink)');
  }

  getNad(namespace: string, name: string): NadObject | undefined {
    return this.view.nads.get(`${namespace}/${name}`);
  }

  listNads(): readonly NadObject[] {
    return [...this.view.nads.values()];
  }

  listPods(): readonly PodObject[] {
    return [...this.view.pods.values()];
  }

  otherObjects(kind: string): readonly Record<string, unknown>[] {
    return this.view.others.get(kind) ?? [];
  }

  /** Once the directory was read, it is the whole truth. */
  listed(): boolean {
    return this.loaded;
  }

  /** The statusDir is read with the manifests. */
  peersListed(): boolean {
    return this.loaded;
  }

  describe(): Record<string, unknown> {
    const v = this.view;
    return { type: 'file', dir: this.dir, loaded: this.loaded, pods: v.pods.size, nads: v.nads.size, files: v.files };
  }

  async publishStatus(pod: PodRef, status: NetworkStatus[] | null): Promise<void> {
    if (status) this.status.set(podKey(pod), status);
    else this.status.delete(podKey(pod));
    if (!this.share) return;
    const path = join(this.share.statusDir, `${pod.namespace}_${pod.name}.json`);
    if (!status) {
      // Only this node's: the pod may run on another node by now (a StatefulSet's), which wrote it since.
      if (this.statusNode(path) === this.share.nodeName) rmSync(path, { force: true });
      return;
    }
    const file: StatusFile = { node: this.share.nodeName, namespace: pod.namespace, name: pod.name, status };
    writeFileSync(`${path}.tmp`, JSON.stringify(file));
    renameSync(`${path}.tmp`, path);
  }

  private statusNode(path: string): string | undefined {
    try {
      return (JSON.parse(readFileSync(path, 'utf8')) as StatusFile).node;
    } catch {
      return undefined;
    }
  }

  /** The other nodes' pods, with their labels and ports as the manifests say now. */
  peers(): readonly PeerPod[] {
    return this.peerView.files.map((s) => ({ pod: this.getPod(s.namespace, s.name) ?? { namespace: s.namespace, name: s.name, annotations: {} }, node: s.node, status: s.status }));
  }

  getStatus(namespace: string, name: string): NetworkStatus[] | undefined {
    return this.status.get(`${namespace}/${name}`);
  }
}

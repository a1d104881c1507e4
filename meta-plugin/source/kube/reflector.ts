/**
 * A reflector that never stops: list, then watch from the list's resourceVersion, keeping a cache of
 * (transformed) objects and calling back on each change.
 *
 * - A watch the server ends is resumed from the last resourceVersion seen (events or bookmarks), not relisted.
 * - 410 Gone, as a status or as an ERROR event, relists; objects that went in the gap are reported deleted.
 * - A watch with neither event nor bookmark for `silenceMs` (a connection gone dead without closing) is
 *   aborted and relisted.
 * - Any other failure (a refused connection, a 500, a 403) retries with exponential backoff and full jitter,
 *   up to `backoffMaxMs`; the cache stays as it was meanwhile.
 */
import type { Logger } from 'pino';
import { errorText } from '../../../core/errors';
import { KubeApiError, type KubeClient } from './client';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ReflectorOptions<T> {
  /** The collection, e.g. /api/v1/pods; `query` adds selectors. */
  path: string;
  query?: Record<string, string>;
  /** What the cache keeps of an object (drop what nothing reads: bounded memory). */
  transform(obj: Record<string, unknown>): T;
  onChange?(type: ChangeType, obj: T, old: T | undefined): void;
  /** Once, when the first list is in the cache (an empty list or an absent optional kind changes nothing else). */
  onSynced?(): void;
  silenceMs: number;
  backoffMaxMs: number;
  /** A kind that may not be installed (its CRD absent): 404 is an empty list, asked again every `backoffMaxMs`. */
  optional?: boolean;
  log: Logger;
}

interface Meta {
  metadata?: { namespace?: string; name?: string; resourceVersion?: string };
}

const keyOf = (o: Meta) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Reflector<T> {
  readonly cache = new Map<string, T>();
  private rv = '';
  private synced = false;
  private stopped = false;
  private abort = new AbortController();
  private readonly syncWaiters: (() => void)[] = [];
  /** Counters for tests and `plexusctl source`. */
  readonly stats = { lists: 0, watches: 0, relistsAfterGone: 0, relistsAfterSilence: 0, failures: 0 };
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: ReflectorOptions<T>,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get resourceVersion(): string {
    return this.rv;
  }

  /** Resolves once the first list is in the cache. */
  waitForSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  private url(extra: Record<string, string>): string {
    const q = new URLSearchParams({ ...this.opts.query, ...extra });
    return `${this.opts.path}?${q.toString()}`;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const outcome = await this.watchOnce();
        failures = 0;
        if (outcome === 'gone') {
          this.stats.relistsAfterGone++;
          needList = true;
        } else if (outcome === 'silent') {
          this.stats.relistsAfterSilence++;
          needList = true;
        }
      } catch (e) {
        if (this.stopped) break;
        if (this.opts.optional && e instanceof KubeApiError && e.status === 404) {
          this.markSynced();
          await this.sleep(this.opts.backoffMaxMs);
          continue;
        }
        if (e instanceof KubeApiError && e.status === 410) {
          this.stats.relistsAfterGone++;
          needList = true;
          continue;
        }
        this.stats.failures++;
        failures++;
        const ceiling = Math.min(this.opts.backoffMaxMs, 500 * 2 ** Math.min(failures, 16));
        const wait = Math.round(Math.random() * ceiling);
        this.opts.log.warn({ path: this.opts.path, err: errorText(e), retryMs: wait, failures }, 'Kubernetes list/watch failed; retrying');
        await this.sleep(wait);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => (clearTimeout(t), resolve());
      const t = setTimeout(() => (this.abort.signal.removeEventListener('abort', wake), resolve()), ms);
      this.abort.signal.addEventListener('abort', wake, { once: true });
    });
  }

  /** A full list replaces the cache: what is missing from it was deleted while we were not watching. */
  private async list(): Promise<void> {
    this.stats.lists++;
    const items: Record<string, unknown>[] = [];
    let cont = '';
    let rv = '';
    do {
      const page = (await this.client.must('GET', this.url({ limit: '500', ...(cont ? { continue: cont } : {}) }))) as { metadata: { resourceVersion: string; continue?: string }; items: Record<string, unknown>[] };
      items.push(...page.items);
      rv = page.metadata.resourceVersion;
      cont = page.metadata.continue ?? '';
    } while (cont);
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item as Meta);
      seen.add(key);
      this.apply(this.cache.has(key) ? 'MODIFIED' : 'ADDED', item, key);
    }
    for (const [key, old] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.opts.onChange?.('DELETED', old, old);
    }
    this.rv = rv;
    this.markSynced();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
    this.opts.onSynced?.();
  }

  private apply(type: ChangeType, obj: Record<string, unknown>, key = keyOf(obj as Meta)): void {
    const old = this.cache.get(key);
    const next = this.opts.transform(obj);
    if (type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, next);
    this.opts.onChange?.(type, next, old);
  }

  /** One watch stream from the current resourceVersion: how it ended. */
  private async watchOnce(): Promise<'ended' | 'gone' | 'silent'> {
    this.stats.watches++;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    let outcome: 'ended' | 'gone' | 'silent' = 'ended';
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        outcome = 'silent';
        this.opts.log.warn({ path: this.opts.path, silentMs: this.opts.silenceMs }, 'Kubernetes watch silent; relisting');
        abort.abort();
      }, this.opts.silenceMs);
    };
    arm();
    try {
      // The server ends a watch after timeoutSeconds; a random one spreads the reconnects of many nodes.
      const timeoutSeconds = String(240 + Math.floor(Math.random() * 120));
      await this.client.watch(this.url({ watch: '1', allowWatchBookmarks: 'true', resourceVersion: this.rv, timeoutSeconds }), (ev) => {
        arm();
        const rv = (ev.object as Meta).metadata?.resourceVersion;
        if (ev.type === 'ERROR') {
          const code = (ev.object as { code?: number }).code;
          if (code === 410) outcome = 'gone';
          else this.opts.log.warn({ path: this.opts.path, status: ev.object }, 'Kubernetes watch error event');
          abort.abort();
          return;
        }
        if (ev.type === 'BOOKMARK') {
          if (rv) this.rv = rv;
          return;
        }
        if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') {
          this.apply(ev.type, ev.object);
          if (rv) this.rv = rv;
        }
      }, abort.signal);
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener('abort', onStop);
    }
    return outcome;
  }
}

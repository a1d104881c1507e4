/**
 * The objects, one global resourceVersion, the history of changes that watches resume from, and the live
 * watches. Every write bumps the resourceVersion and records one event; the history keeps the last
 * `historyLimit` of them (older resourceVersions answer 410 Gone, as after etcd compaction).
 */
import { randomUUID } from 'node:crypto';
import { apiVersionOf, type ResourceType } from './resources';
import { ApiError, type KubeObject } from './types';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  type: EventType;
  res: ResourceType;
  obj: KubeObject;
  /** The object before a MODIFIED (selectors may match one and not the other). */
  old?: KubeObject;
}

export interface Watcher {
  res: ResourceType;
  namespace?: string;
  matches: (obj: KubeObject) => boolean;
  send(type: EventType | 'BOOKMARK' | 'ERROR', obj: unknown): void;
  /** A watch whose connection went silent (a fault): it gets nothing more, and is not closed either. */
  silent?: boolean;
}

const keyOf = (res: ResourceType, namespace: string | undefined, name: string) => `${res.group}/${res.plural}/${namespace ?? ''}/${name}`;

export class Store {
  private rv = 1;
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: Change[] = [];
  readonly watchers = new Set<Watcher>();

  constructor(public historyLimit = 10_000) {}

  get resourceVersion(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch can resume from (events after it are all still here). */
  get oldestResumable(): number {
    return this.history.length ? this.history[0]!.rv - 1 : this.rv;
  }

  /** Drops the history: every watch that resumes from before now gets 410. */
  compact(): void {
    this.history.length = 0;
  }

  get(res: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.objects.get(keyOf(res, namespace, name));
    if (!obj) throw new ApiError(404, 'NotFound', `${res.plural}${res.group ? `.${res.group}` : ''} "${name}" not found`, { name, kind: res.plural, ...(res.group ? { group: res.group } : {}) });
    return obj;
  }

  has(res: ResourceType, namespace: string | undefined, name: string): boolean {
    return this.objects.has(keyOf(res, namespace, name));
  }

  list(res: ResourceType, namespace?: string): KubeObject[] {
    const prefix = `${res.group}/${res.plural}/${namespace ?? ''}`;
    const out: KubeObject[] = [];
    for (const [k, v] of this.objects) if (namespace === undefined ? k.startsWith(`${res.group}/${res.plural}/`) : k.startsWith(`${prefix}/`)) out.push(v);
    return out;
  }

  create(res: ResourceType, obj: KubeObject): KubeObject {
    const ns = res.namespaced ? obj.metadata.namespace : undefined;
    if (this.objects.has(keyOf(res, ns, obj.metadata.name))) {
      throw new ApiError(409, 'AlreadyExists', `${res.plural}${res.group ? `.${res.group}` : ''} "${obj.metadata.name}" already exists`, { name: obj.metadata.name, kind: res.plural });
    }
    const stored: KubeObject = {
      ...obj,
      apiVersion: apiVersionOf(res),
      kind: res.kind,
      metadata: { ...obj.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), generation: 1, resourceVersion: String(++this.rv) },
    };
    if (!res.namespaced) delete stored.metadata.namespace;
    this.objects.set(keyOf(res, ns, stored.metadata.name), stored);
    this.record({ rv: this.rv, type: 'ADDED', res, obj: stored });
    return stored;
  }

  /** Replaces a stored object; `next.metadata.resourceVersion` (when set) must be the stored one. */
  replace(res: ResourceType, next: KubeObject, opts: { generationBump: boolean }): KubeObject {
    const ns = res.namespaced ? next.metadata.namespace : undefined;
    const old = this.get(res, ns, next.metadata.name);
    const want = next.metadata.resourceVersion;
    if (want && want !== old.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${res.plural}${res.group ? `.${res.group}` : ''} "${next.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`, { name: next.metadata.name, kind: res.plural });
    }
    const stored: KubeObject = {
      ...next,
      apiVersion: apiVersionOf(res),
      kind: res.kind,
      metadata: {
        ...next.metadata,
        uid: old.metadata.uid,
        creationTimestamp: old.metadata.creationTimestamp,
        generation: (old.metadata.generation ?? 1) + (opts.generationBump ? 1 : 0),
        resourceVersion: String(++this.rv),
      },
    };
    if (!res.namespaced) delete stored.metadata.namespace;
    this.objects.set(keyOf(res, ns, stored.metadata.name), stored);
    this.record({ rv: this.rv, type: 'MODIFIED', res, obj: stored, old });
    return stored;
  }

  delete(res: ResourceType, namespace: string | undefined, name: string, preconditions?: { uid?: string; resourceVersion?: string }): KubeObject {
    const old = this.get(res, namespace, name);
    if (preconditions?.uid && preconditions.uid !== old.metadata.uid) throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${old.metadata.uid}`);
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== old.metadata.resourceVersion) throw new ApiError(409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    this.objects.delete(keyOf(res, namespace, name));
    const gone: KubeObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    this.record({ rv: this.rv, type: 'DELETED', res, obj: gone });
    return gone;
  }

  /** The changes after `rv` of a kind, for a watch that resumes (the caller checks `oldestResumable`). */
  since(res: ResourceType, rv: number): Change[] {
    return this.history.filter((c) => c.rv > rv && c.res.group === res.group && c.res.plural === res.plural);
  }

  private record(change: Change): void {
    this.history.push(change);
    if (this.history.length > this.historyLimit) this.history.splice(0, this.history.length - this.historyLimit);
    for (const w of this.watchers) deliver(w, change);
  }
}

/** One change to one watch, as the API server filters it: a MODIFIED that enters or leaves the selection is ADDED or DELETED. */
export function deliver(w: Watcher, c: Change): void {
  if (w.silent || c.res.group !== w.res.group || c.res.plural !== w.res.plural) return;
  if (w.namespace !== undefined && c.obj.metadata.namespace !== w.namespace) return;
  const now = w.matches(c.obj);
  if (c.type !== 'MODIFIED') {
    if (now) w.send(c.type, c.obj);
    return;
  }
  const before = c.old ? w.matches(c.old) : now;
  if (now && before) w.send('MODIFIED', c.obj);
  else if (now) w.send('ADDED', c.obj);
  else if (before) w.send('DELETED', c.obj);
}

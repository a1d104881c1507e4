/**
 * A Kubernetes API server for tests and `make demo-k8s`: the REST protocol as kubectl and client libraries
 * speak it, over plain HTTP on loopback, with objects in memory. What it does as the real one does: one global
 * resourceVersion; list (label and field selectors, limit and continue), get, create (generateName, namespace
 * must exist), update (409 on a stale resourceVersion), JSON merge, JSON (with `test`) and strategic merge
 * patches (the last for built-in kinds only: 415 for custom resources), delete (preconditions; a namespace or
 * CRD takes its objects with it), the status subresource (status only, plus labels and annotations, which is how
 * a CNI writes network-status), watches (resume from a resourceVersion, 410 Gone once it is compacted, as an
 * ERROR event or as a status, bookmarks on request, selectors), CRDs that add their kinds, discovery.
 *
 * What it does not: authentication beyond bearer tokens, admission, defaulting beyond what is named here,
 * validation of custom resources against their schema, server-side apply, graceful deletion (objects go at
 * once), protobuf. Faults on demand, for the informers' tests: close or silence every watch, fail the next
 * requests with a code, refuse what RBAC would not allow, compact the history, rotate the accepted token.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../cluster/process';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch';
import { Resources, type ResourceType, apiVersionOf } from './resources';
import { fieldSelector, labelSelector, type Matcher, SelectorError } from './selectors';
import { deliver, Store, type Watcher } from './store';
import { ApiError, type KubeObject } from './types';

export interface RbacRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  contentType?: string;
  status: number;
}

/** A request as `hangNext` matches it: its method, path and parsed body. */
export interface SeenRequest {
  method: string;
  path: string;
  body: unknown;
}

interface Hang {
  match: (r: SeenRequest) => boolean;
  served: boolean;
  hit: () => void;
}

interface Injected {
  status: number;
  method?: string;
  pathIncludes?: string;
  /** A fragment of the decoded query string, e.g. `spec.nodeName!=node-a` (one list among others of a path). */
  queryIncludes?: string;
  left: number;
}

export interface KubeApiOptions {
  /** How many changes watches can resume across (older resourceVersions answer 410). */
  historyLimit?: number;
  /** Bookmark period of watches that ask for them. */
  bookmarkMs?: number;
  /**
   * Serve HTTPS with a certificate for 127.0.0.1 made at start (its CA in the kubeconfig), as a cluster does:
   * clients send bearer tokens over TLS only.
   */
  tls?: boolean;
}

const MAX_BODY = 8 * 1024 * 1024;

export class KubeApiServer {
  readonly store: Store;
  readonly resources = new Resources();
  /** Every request answered, in order (tests assert what a client sent). */
  readonly requests: RequestRecord[] = [];
  private server: Server | undefined;
  private readonly live = new Map<Watcher, ServerResponse>();
  private readonly injected: Injected[] = [];
  private readonly hangs: Hang[] = [];
  private readonly denied = new Set<string>();
  private tokens: string[] | undefined;
  /** Tokens held to a role's rules (a ClusterRole's `rules`); other tokens may do anything. */
  private readonly roles = new Map<string, RbacRule[]>();
  /** A stale watch gets 410 as an ERROR event in a 200 stream (what the real server does), or as the response's status. */
  goneAs: 'event' | 'status' = 'event';
  private readonly bookmarkMs: number;
  private readonly tls: boolean;
  /** PEM of the CA that signed the serving certificate (tls only). */
  caPem = '';

  constructor(opts: KubeApiOptions = {}) {
    this.store = new Store(opts.historyLimit);
    this.bookmarkMs = opts.bookmarkMs ?? 1000;
    this.tls = opts.tls ?? false;
    for (const name of ['default', 'kube-system']) this.createObject(this.resources.find('', 'v1', 'namespaces'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  private publicUrl: string | undefined;
  private forwarders: ChildProcess[] = [];

  /** Listens on a TCP port of loopback, or on a unix socket path (then `exposeIn` a netns gives it a URL). */
  async start(listen: number | string = 0): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    if (this.tls) {
      const { key, cert, ca } = selfSignedFor127();
      this.caPem = ca;
      this.server = createTlsServer({ key, cert }, handler);
    } else this.server = createServer(handler);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      if (typeof listen === 'string') this.server!.listen(listen, () => resolve());
      else this.server!.listen(listen, '127.0.0.1', () => resolve());
    });
    return typeof listen === 'string' ? listen : this.url;
  }

  get url(): string {
    return this.publicUrl ?? `${this.tls ? 'https' : 'http'}://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /**
   * Makes a server listening on a unix socket reachable at 127.0.0.1:`port` inside network namespace `netns`
   * (a forwarder process there; the certificate names 127.0.0.1), which becomes `url`. Processes in that
   * namespace, plexusd and kubectl, then talk to this server as to a cluster's.
   */
  async exposeIn(netns: string, port = 6443): Promise<string> {
    const path = this.server!.address() as string;
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, join(REPO_ROOT, 'hack/kube-api/tcp-to-unix.js'), String(port), path], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.forwarders.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the forwarder into ${netns} exited (${code})`)));
    });
    this.publicUrl = `${this.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this.publicUrl;
  }

  async stop(): Promise<void> {
    for (const f of this.forwarders.splice(0)) if (f.exitCode === null) f.kill('SIGKILL');
    this.closeWatches();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * A kubeconfig for kubectl and client libraries, with a bearer token (any is accepted until `acceptTokens`;
   * without credentials kubectl would prompt for a password over TLS). `server`: the URL a client will reach
   * this server at (a netns exposed to later, see exposeIn); default the current one.
   */
  writeKubeconfig(file: string, token = 'plexus-test', server = this.url): string {
    mkdirSync(dirname(file), { recursive: true });
    const user = { token };
    writeFileSync(file, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'test',
      clusters: [{ name: 'test', cluster: { server, ...(this.tls ? { 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } : {}) } }],
      users: [{ name: 'test', user }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace: 'default' } }],
    }));
    return file;
  }

  // ---- faults -------------------------------------------------------------------------------------------

  /** Ends every watch stream (the client sees the connection close). */
  closeWatches(): void {
    for (const [w, res] of this.live) {
      this.live.delete(w);
      this.store.watchers.delete(w);
      res.end();
    }
  }

  /** Every current watch stays open but receives nothing more, not even bookmarks: a connection gone silent. */
  silenceWatches(): void {
    for (const w of this.live.keys()) w.silent = true;
  }

  /** The next `count` requests (matching method, path fragment and query fragment, if given) fail with `status`. */
  failNext(status: number, opts: { method?: string; pathIncludes?: string; queryIncludes?: string; count?: number } = {}): void {
    const { method, pathIncludes, queryIncludes } = opts;
    this.injected.push({ status, left: opts.count ?? 1, ...(method ? { method } : {}), ...(pathIncludes ? { pathIncludes } : {}), ...(queryIncludes ? { queryIncludes } : {}) });
  }

  /** Failures injected and not used up yet are dropped. */
  clearFailures(): void {
    this.injected.length = 0;
  }

  /**
   * The next request `match` picks never gets an answer: it is not served (`served: false`: it never happened)
   * or served without an answer (`served: true`: it happened and the client never learns). Resolves when the
   * request arrived: a client killed then shows what a crash at exactly that point leaves behind.
   */
  hangNext(match: (r: SeenRequest) => boolean, opts: { served: boolean }): Promise<void> {
    return new Promise((hit) => this.hangs.push({ match, served: opts.served, hit }));
  }

  /** RBAC: `verb` on `resource` (e.g. "patch", "pods/status") is forbidden from now on. */
  deny(verb: string, resource: string): void {
    this.denied.add(`${verb} ${resource}`);
  }

  allow(verb: string, resource: string): void {
    this.denied.delete(`${verb} ${resource}`);
  }

  /** Requests with `token` may do only what `rules` (a ClusterRole's rules, e.g. deploy/rbac.yaml's) allow. */
  bindRole(token: string, rules: RbacRule[]): void {
    this.roles.set(token, rules);
  }

  /** Only these bearer tokens are accepted from now on (undefined: any request). */
  acceptTokens(tokens: string[] | undefined): void {
    this.tokens = tokens;
  }

  // ---- objects, for tests that set up state without a client --------------------------------------------

  apply(obj: KubeObject): KubeObject {
    const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') as [string, string] : ['', obj.apiVersion];
    const res = this.resources.all().find((r) => r.group === group && r.version === version && r.kind === obj.kind);
    if (!res) throw new ApiError(404, 'NotFound', `no kind ${obj.kind} in ${obj.apiVersion}`);
    const ns = res.namespaced ? obj.metadata.namespace ?? 'default' : undefined;
    const body = { ...obj, metadata: { ...obj.metadata, ...(ns ? { namespace: ns } : {}) } };
    if (!this.store.has(res, ns, obj.metadata.name)) return this.createObject(res, body);
    const old = this.store.get(res, ns, obj.metadata.name);
    return this.store.replace(res, { ...body, metadata: { ...body.metadata, resourceVersion: old.metadata.resourceVersion } }, { generationBump: true });
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://api');
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query: url.search, status: 200, ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}) };
    this.requests.push(record);
    const send = (status: number, body: unknown) => {
      record.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      if (this.tokens && !this.tokens.some((t) => req.headers.authorization === `Bearer ${t}`)) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
      const query = decodeURIComponent(url.search);
      const fault = this.injected.find((f) => (!f.method || f.method === req.method) && (!f.pathIncludes || url.pathname.includes(f.pathIncludes)) && (!f.queryIncludes || query.includes(f.queryIncludes)));
      if (fault) {
        if (--fault.left <= 0) this.injected.splice(this.injected.indexOf(fault), 1);
        throw new ApiError(fault.status, fault.status === 409 ? 'Conflict' : fault.status === 404 ? 'NotFound' : 'InternalError', `injected failure (${fault.status})`);
      }
      if (req.method === 'GET' && url.pathname === '/version') return send(200, { major: '1', minor: '31', gitVersion: 'v1.31.0-plexus-test', platform: 'linux/amd64' });
      if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez')) {
        record.status = 200;
        res.writeHead(200, { 'content-type': 'text/plain' });
        return void res.end('ok');
      }
      if (req.method === 'GET' && url.pathname.startsWith('/openapi/v3')) return send(200, this.resources.openapi(url.pathname));
      if (url.pathname.startsWith('/openapi/')) throw new ApiError(404, 'NotFound', 'the server serves OpenAPI v3 only');
      if (req.method === 'GET') {
        const doc = this.resources.discovery(url.pathname);
        if (doc !== undefined) return send(200, doc);
      }
      const route = this.route(url.pathname);
      const body = req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH' || req.method === 'DELETE' ? await readBody(req) : undefined;
      const verb = this.verbOf(req.method ?? 'GET', route, url);
      const resourceName = route.sub ? `${route.res.plural}/${route.sub}` : route.res.plural;
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const rules = token ? this.roles.get(token) : undefined;
      const allowed = !rules || rules.some((r) => (r.apiGroups.includes('*') || r.apiGroups.includes(route.res.group)) && (r.resources.includes('*') || r.resources.includes(resourceName)) && (r.verbs.includes('*') || r.verbs.includes(verb)));
      if (this.denied.has(`${verb} ${resourceName}`) || !allowed) {
        throw new ApiError(403, 'Forbidden', `${resourceName}${route.res.group ? `.${route.res.group}` : ''}${route.name ? ` "${route.name}"` : ''} is forbidden: User "system:serviceaccount:kube-system:plexus" cannot ${verb} resource "${resourceName}" in API group "${route.res.group}"${route.namespace ? ` in the namespace "${route.namespace}"` : ''}`);
      }
      if (verb === 'watch') return this.watch(route, url, req, res, record);
      const hang = this.hangs.find((h) => h.match({ method: req.method ?? 'GET', path: url.pathname, body }));
      if (hang) {
        this.hangs.splice(this.hangs.indexOf(hang), 1);
        record.status = 0;
        if (hang.served) this.serve(verb, route, url, body, req.headers['content-type'] ?? '');
        return hang.hit();
      }
      const [status, out] = this.serve(verb, route, url, body, req.headers['content-type'] ?? '');
      send(status, out);
    } catch (e) {
      const err = e instanceof ApiError ? e : e instanceof SelectorError ? new ApiError(400, 'BadRequest', e.message) : new ApiError(500, 'InternalError', (e as Error).message);
      if (!res.headersSent) send(err.code, err.status());
      else res.end();
    }
  }

  private route(path: string): { res: ResourceType; namespace?: string; name?: string; sub?: string } {
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/(.+)$/.exec(path);
    if (!m) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const group = m[2] ?? '';
    const version = m[1] ?? m[3]!;
    const segs = m[4]!.split('/').map(decodeURIComponent);
    if (segs[0] === 'namespaces' && segs.length >= 3 && !(segs.length === 3 && ['status', 'finalize'].includes(segs[2]!))) {
      const res = this.resources.find(group, version, segs[2]!);
      if (!res.namespaced) throw new ApiError(404, 'NotFound', `${res.plural} is not namespaced`);
      return { res, namespace: segs[1]!, ...(segs[3] ? { name: segs[3] } : {}), ...(segs[4] ? { sub: segs[4] } : {}) };
    }
    const res = this.resources.find(group, version, segs[0]!);
    return { res, ...(segs[1] ? { name: segs[1] } : {}), ...(segs[2] ? { sub: segs[2] } : {}) };
  }

  private verbOf(method: string, route: { name?: string }, url: URL): string {
    const watch = ['true', '1'].includes(url.searchParams.get('watch') ?? '');
    switch (method) {
      case 'GET':
        return route.name ? 'get' : watch ? 'watch' : 'list';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return route.name ? 'delete' : 'deletecollection';
      default:
        throw new ApiError(405, 'MethodNotAllowed', `method ${method} is not allowed`);
    }
  }

  private serve(verb: string, route: { res: ResourceType; namespace?: string; name?: string; sub?: string }, url: URL, body: unknown, contentType: string): [number, unknown] {
    const { res, namespace, name, sub } = route;
    if (sub && (sub !== 'status' || !res.status)) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${res.plural}/${sub})`);
    switch (verb) {
      case 'get':
        return [200, this.store.get(res, namespace, name!)];
      case 'list':
        return [200, this.list(res, namespace, url)];
      case 'create': {
        const obj = asObject(body);
        if (namespace !== undefined && obj.metadata?.namespace !== undefined && obj.metadata.namespace !== namespace) {
          throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
        }
        return [201, this.createObject(res, { ...obj, metadata: { ...obj.metadata, ...(namespace !== undefined ? { namespace } : {}) } })];
      }
      case 'update': {
        const obj = asObject(body);
        if (obj.metadata?.name !== name) throw new ApiError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
        if (!obj.metadata.resourceVersion && !res.builtin) throw new ApiError(422, 'Invalid', `${res.kind}.${res.group} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`);
        return [200, this.updateObject(res, namespace, name!, obj, sub === 'status')];
      }
      case 'patch': {
        const current = this.store.get(res, namespace, name!);
        const type = contentType.split(';')[0]!.trim();
        let next: unknown;
        if (type === 'application/merge-patch+json') next = mergePatch(current, body);
        else if (type === 'application/json-patch+json') next = jsonPatch(current, body);
        else if (type === 'application/strategic-merge-patch+json') {
          if (!res.builtin) throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
          next = strategicMergePatch(current, body);
        } else throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${res.builtin ? ', application/strategic-merge-patch+json' : ''}`);
        const obj = asObject(next);
        // A patch that names a resourceVersion is a compare-and-swap; one that does not applies to the current object.
        const rv = hasRv(body) ? obj.metadata.resourceVersion : current.metadata.resourceVersion;
        const fixed: KubeObject = { ...obj, metadata: { ...obj.metadata, name: name!, ...(namespace !== undefined ? { namespace } : {}), resourceVersion: rv } };
        return [200, this.updateObject(res, namespace, name!, fixed, sub === 'status')];
      }
      case 'delete':
        return [200, this.deleteObject(res, namespace, name!, body)];
      case 'deletecollection': {
        const items = this.list(res, namespace, url).items;
        for (const o of items) this.deleteObject(res, o.metadata.namespace, o.metadata.name, undefined);
        return [200, { apiVersion: apiVersionOf(res), kind: `${res.kind}List`, metadata: { resourceVersion: String(this.store.resourceVersion) }, items }];
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', `${verb} is not served`);
    }
  }

  private matcher(res: ResourceType, url: URL): Matcher {
    const labels = labelSelector(url.searchParams.get('labelSelector'));
    const fields = fieldSelector(url.searchParams.get('fieldSelector'), ['metadata.name', 'metadata.namespace', ...(res.fields ?? [])]);
    return (o) => labels(o) && fields(o);
  }

  private list(res: ResourceType, namespace: string | undefined, url: URL): { apiVersion: string; kind: string; metadata: Record<string, string>; items: KubeObject[] } {
    const match = this.matcher(res, url);
    const all = this.store.list(res, namespace).filter(match).sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let start = 0;
    if (cont) {
      const c = JSON.parse(Buffer.from(cont, 'base64url').toString()) as { rv: number; after: string };
      if (c.rv < this.store.oldestResumable) throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      start = all.findIndex((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > c.after);
      if (start < 0) start = all.length;
    }
    const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const metadata: Record<string, string> = { resourceVersion: String(this.store.resourceVersion) };
    if (limit > 0 && start + limit < all.length) {
      const last = items.at(-1)!;
      metadata['continue'] = Buffer.from(JSON.stringify({ rv: this.store.resourceVersion, after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString('base64url');
      metadata['remainingItemCount'] = String(all.length - start - limit);
    }
    return { apiVersion: apiVersionOf(res), kind: `${res.kind}List`, metadata, items };
  }

  private createObject(res: ResourceType, obj: KubeObject): KubeObject {
    if (!obj || typeof obj !== 'object' || !obj.metadata) throw new ApiError(400, 'BadRequest', 'the object has no metadata');
    if (obj.kind && obj.kind !== res.kind) throw new ApiError(400, 'BadRequest', `the API version in the data (${obj.apiVersion}) and the kind (${obj.kind}) do not match the resource (${res.kind})`);
    const meta = { ...obj.metadata };
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomBytes(3).toString('hex').slice(0, 5)}`;
    if (!meta.name || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(meta.name)) {
      throw new ApiError(422, 'Invalid', `${res.kind} "${meta.name ?? ''}" is invalid: metadata.name: Invalid value: ${JSON.stringify(meta.name ?? '')}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`);
    }
    if (res.namespaced) {
      if (!meta.namespace) throw new ApiError(400, 'BadRequest', 'a namespaced object needs a namespace');
      if (!this.store.has(this.resources.find('', 'v1', 'namespaces'), undefined, meta.namespace)) throw new ApiError(404, 'NotFound', `namespaces "${meta.namespace}" not found`, { name: meta.namespace, kind: 'namespaces' });
    }
    const next: KubeObject = { ...obj, metadata: meta };
    delete next.metadata.resourceVersion;
    if (res.kind === 'Namespace' && !res.group) {
      next.metadata.labels = { ...next.metadata.labels, 'kubernetes.io/metadata.name': meta.name };
      next['status'] = { phase: 'Active' };
    }
    if (res.kind === 'Pod' && !res.group) {
      const containers = (next['spec'] as { containers?: Array<{ name?: unknown; image?: unknown }> } | undefined)?.containers;
      if (!Array.isArray(containers) || containers.length === 0) throw new ApiError(422, 'Invalid', `Pod "${meta.name}" is invalid: spec.containers: Required value`);
      const bad = containers.findIndex((c) => typeof c?.name !== 'string' || typeof c?.image !== 'string');
      if (bad >= 0) throw new ApiError(422, 'Invalid', `Pod "${meta.name}" is invalid: spec.containers[${bad}]: a container needs a name and an image`);
      next['status'] = { phase: 'Pending' };
    }
    if (!res.builtin && res.status) delete next['status'];
    if (res.kind === 'CustomResourceDefinition') {
      const names = (next['spec'] as { names: unknown }).names;
      next['status'] = { acceptedNames: names, storedVersions: [], conditions: [{ type: 'NamesAccepted', status: 'True' }, { type: 'Established', status: 'True' }] };
    }
    const stored = this.store.create(res, next);
    if (res.kind === 'CustomResourceDefinition') this.resources.addCrd(stored);
    return stored;
  }

  private updateObject(res: ResourceType, namespace: string | undefined, name: string, obj: KubeObject, statusOnly: boolean): KubeObject {
    const old = this.store.get(res, namespace, name);
    let next: KubeObject = { ...obj, metadata: { ...obj.metadata, name, ...(namespace !== undefined ? { namespace } : {}) } };
    if (statusOnly) {
      // Status, and labels and annotations (what a CNI's network-status needs); the rest stays.
      next = { ...old, status: obj['status'], metadata: { ...old.metadata, labels: obj.metadata.labels, annotations: obj.metadata.annotations, resourceVersion: obj.metadata.resourceVersion } } as KubeObject;
      if (next.metadata.labels === undefined) delete next.metadata.labels;
      if (next.metadata.annotations === undefined) delete next.metadata.annotations;
    } else if (res.status) next['status'] = old['status'];
    if (res.kind === 'Namespace' && !res.group) next.metadata.labels = { ...next.metadata.labels, 'kubernetes.io/metadata.name': name };
    const strip = (o: KubeObject) => JSON.stringify({ ...o, metadata: undefined, status: undefined });
    const stored = this.store.replace(res, next, { generationBump: !statusOnly && strip(old) !== strip(next) });
    if (res.kind === 'CustomResourceDefinition') this.resources.addCrd(stored);
    return stored;
  }

  private deleteObject(res: ResourceType, namespace: string | undefined, name: string, body: unknown): KubeObject {
    const pre = (body as { preconditions?: { uid?: string; resourceVersion?: string } } | undefined)?.preconditions;
    const target = this.store.get(res, namespace, name);
    if (res.kind === 'Namespace' && !res.group) {
      for (const r of this.resources.all().filter((t) => t.namespaced)) for (const o of this.store.list(r, name)) this.store.delete(r, name, o.metadata.name);
    }
    if (res.kind === 'CustomResourceDefinition') {
      for (const r of Resources.fromCrd(target)) {
        const kind = this.resources.all().find((t) => t.group === r.group && t.version === r.version && t.plural === r.plural);
        if (kind) for (const o of this.store.list(kind)) this.store.delete(kind, o.metadata.namespace, o.metadata.name);
      }
      this.resources.removeCrd(target);
    }
    return this.store.delete(res, namespace, name, pre);
  }

  private watch(route: { res: ResourceType; namespace?: string }, url: URL, req: IncomingMessage, res: ServerResponse, record: RequestRecord): void {
    const from = url.searchParams.get('resourceVersion');
    const rv = from && from !== '0' ? Number(from) : undefined;
    if (rv !== undefined && (!Number.isInteger(rv) || rv < this.store.oldestResumable)) {
      const gone = new ApiError(410, 'Expired', `too old resource version: ${from} (${this.store.oldestResumable})`);
      if (this.goneAs === 'status') {
        record.status = 410;
        const text = JSON.stringify(gone.status());
        res.writeHead(410, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        return void res.end(text);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone.status() })}\n`);
      return;
    }
    const match = this.matcher(route.res, url);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: Watcher = {
      res: route.res,
      ...(route.namespace !== undefined ? { namespace: route.namespace } : {}),
      matches: match,
      send: (type, obj) => void (res.writableEnded || res.destroyed ? undefined : res.write(`${JSON.stringify({ type, object: obj })}\n`)),
    };
    if (rv === undefined) {
      for (const o of this.store.list(route.res, route.namespace).filter(match)) w.send('ADDED', o);
    } else {
      for (const c of this.store.since(route.res, rv)) deliver(w, c);
    }
    this.store.watchers.add(w);
    this.live.set(w, res);
    const timers: NodeJS.Timeout[] = [];
    if (['true', '1'].includes(url.searchParams.get('allowWatchBookmarks') ?? '')) {
      timers.push(setInterval(() => {
        if (!w.silent) w.send('BOOKMARK', { kind: route.res.kind, apiVersion: apiVersionOf(route.res), metadata: { resourceVersion: String(this.store.resourceVersion) } });
      }, this.bookmarkMs));
    }
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timers.push(setTimeout(() => res.end(), timeout * 1000));
    const done = () => {
      for (const t of timers) clearInterval(t);
      this.store.watchers.delete(w);
      this.live.delete(w);
    };
    res.on('finish', done);
    req.on('close', done);
    res.on('close', done);
  }
}

/** A CA and a serving certificate for 127.0.0.1 signed by it (openssl, in a directory removed at once). */
function selfSignedFor127(): { key: string; cert: string; ca: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pxk-tls-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=plexus-test-ca');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=kube-apiserver');
    writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
    ssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.crt', '-days', '2', '-extfile', 'ext');
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    return { key: read('srv.key'), cert: read('srv.crt'), ca: read('ca.crt') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function asObject(v: unknown): KubeObject {
  if (!v || typeof v !== 'object' || Array.isArray(v) || !(v as KubeObject).metadata) throw new ApiError(400, 'BadRequest', 'the request body is not an object with metadata');
  return v as KubeObject;
}

function hasRv(patch: unknown): boolean {
  if (Array.isArray(patch)) return patch.some((op) => typeof op?.path === 'string' && op.path === '/metadata/resourceVersion' && op.op !== 'test');
  return typeof (patch as { metadata?: { resourceVersion?: unknown } })?.metadata?.resourceVersion === 'string';
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'request body too large');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not JSON');
  }
}

/**
 * The daemon's API (routes in meta-plugin/api/protocol.ts): HTTP/1.1 on a root-only unix socket (0600). The
 * one place that maps an answer to an HTTP status. Request bodies are size-capped and validated like any
 * other input.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { PlexusError } from '../../core/errors';
import { LATEST_VERSION } from '../../cni/version';
import { END_OF_BACKLOG, NOT_READY_HEADER, PLUGIN_NAMES, ROUTES, VIEWS, isPluginName, type PluginName, type ViewName } from '../api/protocol';
import { formatNetworkStatus, NetworkStatus } from '../status/network-status';
import type { FlowRing } from '../../policy/flows';

const MAX_BODY = 1 << 20;

/** A CNI request's answer: what the plugin prints on success, or the error (in the request's CNI version). */
export type CniReply = { ok: true; output: string } | { ok: false; error: PlexusError; cniVersion: string };

export interface ApiHandlers {
  cni(env: Record<string, string | undefined>, config: string, invokedAs: PluginName): Promise<CniReply>;
  ready(): boolean;
  /**
   * Whether requests under this name are served yet. plexus-ipam is served as soon as the IPAM service is
   * open, before the daemon is ready: delegates replaying the DEL queue at start-up call it.
   */
  accepting(invokedAs: PluginName): boolean;
  status(namespace: string, name: string): NetworkStatus[] | undefined;
  /** The policies selecting a pod and what they allow (policy/describe.ts), undefined for an unknown pod. */
  policy(namespace: string, name: string): unknown;
  /** Recent flows and new ones as they come (plexusctl observe); undefined where policy is not enforced. */
  flows?: FlowRing;
  /** Read-only operator views (plexusctl ipam ..., /metrics): JSON or text, undefined when unknown. */
  view(name: ViewName): Promise<string | undefined>;
}

export async function listenUnix(socketPath: string, api: ApiHandlers, log: Logger): Promise<Server> {
  await removeStaleSocket(socketPath);
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  const server = createServer((req, res) => {
    route(req, res, api).catch((e) => {
      log.error({ err: (e as Error).message }, 'API request failed');
      if (res.headersSent) return;
      const err = e instanceof PlexusError ? e : new PlexusError('Internal', 'internal error');
      send(res, e instanceof PlexusError ? 400 : 500, JSON.stringify(err.toCni(LATEST_VERSION)));
    });
  });
  server.keepAliveTimeout = 1000;
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(socketPath, 0o600);
  return server;
}

async function route(req: IncomingMessage, res: ServerResponse, api: ApiHandlers): Promise<void> {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url === ROUTES.healthz) return send(res, 200, 'ok\n');
  if (req.method === 'GET' && url === ROUTES.readyz) return api.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
  const m = STATUS_ROUTE.exec(url);
  if (req.method === 'GET' && m) {
    const status = api.status(m[1]!, m[2]!);
    return status ? send(res, 200, formatNetworkStatus(status)) : send(res, 404, `no network-status for pod ${m[1]}/${m[2]}\n`);
  }
  const p = POLICY_ROUTE.exec(url);
  if (req.method === 'GET' && p) {
    const view = api.policy(p[1]!, p[2]!);
    return view === undefined ? send(res, 404, `no pod ${p[1]}/${p[2]} in the source\n`) : send(res, 200, `${JSON.stringify(view, null, 2)}\n`);
  }
  if (req.method === 'GET' && (url === ROUTES.flows || url === `${ROUTES.flows}?follow=1`)) return sendFlows(res, api.flows, url !== ROUTES.flows);
  if (req.method === 'POST' && url === ROUTES.cni) {
    const body = await readBody(req);
    const { env, config, invokedAs } = decodeEnvelope(body);
    if (!api.accepting(invokedAs)) return send(res, 503, 'not ready\n', { [NOT_READY_HEADER]: '1' });
    const reply = await api.cni(env, config, invokedAs);
    if (reply.ok) return send(res, 200, reply.output);
    return send(res, httpStatusFor(reply.error), JSON.stringify(reply.error.toCni(reply.cniVersion)));
  }
  const view = url.slice(1) as ViewName;
  if (req.method === 'GET' && VIEWS.includes(view)) {
    const body = await api.view(view);
    return body === undefined ? send(res, 404, `${view} is not available\n`) : send(res, 200, body);
  }
  send(res, 404, 'not found\n');
}

/** JSON lines, oldest first; following, the response stays open and carries each new flow until the client goes. */
function sendFlows(res: ServerResponse, ring: FlowRing | undefined, follow: boolean): void {
  if (!ring) return send(res, 404, 'flows are not available: this node enforces no policy (no routed datapath, or policy.enforce is off)\n');
  const backlog = ring.list().map((f) => `${JSON.stringify(f)}\n`).join('');
  if (!follow) return send(res, 200, backlog, { 'content-type': 'application/x-ndjson' });
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  res.write(`${backlog}${JSON.stringify(END_OF_BACKLOG)}\n`);
  const stop = ring.follow((f) => res.write(`${JSON.stringify(f)}\n`));
  res.on('close', stop);
}

/** A route that ends in NAMESPACE/POD. */
const podRoute = (prefix: string): RegExp => new RegExp(`^${prefix}([a-z0-9][-a-z0-9]*)/([a-zA-Z0-9][-a-zA-Z0-9_.]*)$`);
const STATUS_ROUTE = podRoute(ROUTES.status);
const POLICY_ROUTE = podRoute(ROUTES.policy);

/** HTTP status carries no CNI meaning; the shim only tells 200 from the rest. 503 marks "not ready". */
function httpStatusFor(err: PlexusError): number {
  if (err.cniCode === 50 || err.cniCode === 51) return 503;
  if (err.cniCode >= 1 && err.cniCode <= 7) return 400;
  return 500;
}

function decodeEnvelope(body: string): { env: Record<string, string | undefined>; config: string; invokedAs: PluginName } {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new PlexusError('DecodeFailure', 'request body is not JSON');
  }
  const o = v as { env?: unknown; config?: unknown; invokedAs?: unknown };
  if (!o || typeof o !== 'object' || typeof o.config !== 'string' || !o.env || typeof o.env !== 'object') {
    throw new PlexusError('DecodeFailure', 'request body must be {"env": {...}, "config": "..."}');
  }
  const env: Record<string, string | undefined> = {};
  for (const [k, val] of Object.entries(o.env as Record<string, unknown>)) if (typeof val === 'string') env[k] = val;
  const invokedAs = o.invokedAs ?? 'plexus';
  if (!isPluginName(invokedAs)) {
    throw new PlexusError('InvalidConfig', `unknown plugin name ${JSON.stringify(String(invokedAs).slice(0, 32))}: expected one of ${PLUGIN_NAMES.join(', ')}`);
  }
  return { env, config: o.config, invokedAs };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new PlexusError('DecodeFailure', `request body larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Always with Content-Length: the native forwarder reads exactly that many bytes. */
function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': body.startsWith('{') || body.startsWith('[') ? 'application/json' : 'text/plain',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/**
 * A socket file nobody listens on (ECONNREFUSED) is left from a crash: remove it. Anything else (it answers,
 * or a live daemon's backlog is full) means a live daemon: refuse. (main.ts's lock refuses a second daemon
 * long before this; this guards the socket file itself.)
 */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new PlexusError('InvalidConfig', `socketPath ${path} exists and is not a socket`);
  const stale = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
  if (!stale) throw new PlexusError('InvalidConfig', `another plexusd is already listening on ${path}`);
  unlinkSync(path);
}

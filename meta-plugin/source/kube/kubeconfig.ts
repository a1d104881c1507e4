/**
 * Credentials for the API server, from a kubeconfig file or, without one, the pod's service account (in-cluster:
 * KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount). What a node agent uses: the
 * server and its CA (file or data, or insecure-skip-tls-verify), a bearer token (inline or a file, re-read when
 * it changes, as the kubelet rotates projected tokens), or a client certificate and key. Exec and
 * auth-provider plugins (interactive users' logins) are refused with a clear error.
 *
 * Why not @kubernetes/client-node's KubeConfig: loading it costs 70+ MiB of RSS (it pulls in the whole
 * generated API), half of plexusd's budget (bench/k8s-burst, docs/decisions.md D-11).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import yaml from 'js-yaml';
import { PlexusError } from '../../../core/errors';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface Credentials {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  /** A token given inline. */
  token?: string;
  /** A token file, re-read when it changes (bearerToken() below). */
  tokenFile?: string;
}

type Named<T> = Array<{ name: string } & T>;
interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Named<{ context: { cluster: string; user: string } }>;
  clusters?: Named<{ cluster: Record<string, unknown> }>;
  users?: Named<{ user?: Record<string, unknown> }>;
}

const invalid = (where: string, why: string) => new PlexusError('InvalidConfig', `source: ${where}: ${why}`);

export function loadCredentials(file: string | undefined): Credentials {
  return file ? fromKubeconfig(file) : inCluster();
}

function inCluster(): Credentials {
  const host = process.env['KUBERNETES_SERVICE_HOST'];
  const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) throw invalid('the in-cluster service account', 'KUBERNETES_SERVICE_HOST is not set (not in a pod): give source.kubeconfig');
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca: read(join(SA_DIR, 'ca.crt'), 'the service account CA'), tokenFile: join(SA_DIR, 'token') };
}

function fromKubeconfig(file: string): Credentials {
  let doc: KubeconfigFile;
  try {
    doc = (yaml.load(readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
  } catch (e) {
    throw invalid(`kubeconfig ${file}`, (e as Error).message);
  }
  const where = `kubeconfig ${file}`;
  const name = doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === name)?.context ?? (doc.contexts?.length === 1 ? doc.contexts[0]!.context : undefined);
  if (!ctx) throw invalid(where, `no context ${JSON.stringify(name ?? '')}`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster || typeof cluster['server'] !== 'string') throw invalid(where, `cluster ${JSON.stringify(ctx.cluster)} has no server`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user['exec'] || user['auth-provider']) throw invalid(where, `user ${JSON.stringify(ctx.user)} logs in through an exec or auth-provider plugin; give plexusd a token, a token file or a client certificate`);
  const base = dirname(file);
  const pem = (dataKey: string, fileKey: string, what: string, from: Record<string, unknown>): string | undefined => {
    if (typeof from[dataKey] === 'string') return Buffer.from(from[dataKey] as string, 'base64').toString('utf8');
    if (typeof from[fileKey] === 'string') return read(resolveFrom(base, from[fileKey] as string), what);
    return undefined;
  };
  const creds: Credentials = { server: cluster['server'] };
  const ca = pem('certificate-authority-data', 'certificate-authority', 'the cluster CA', cluster);
  if (ca) creds.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) creds.insecure = true;
  const cert = pem('client-certificate-data', 'client-certificate', 'the client certificate', user);
  const key = pem('client-key-data', 'client-key', 'the client key', user);
  if (cert) creds.cert = cert;
  if (key) creds.key = key;
  if (typeof user['token'] === 'string') creds.token = user['token'];
  if (typeof user['tokenFile'] === 'string') creds.tokenFile = resolveFrom(base, user['tokenFile']);
  return creds;
}

const resolveFrom = (base: string, p: string) => (isAbsolute(p) ? p : join(base, p));

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw invalid(what, `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The bearer token, if any: a token file is read again when its mtime changed, or when `fresh` asks (after a 401). */
export class BearerToken {
  private cached: { mtimeMs: number; token: string } | undefined;

  constructor(private readonly creds: Credentials) {}

  get(fresh = false): string | undefined {
    if (!this.creds.tokenFile) return this.creds.token;
    const mtimeMs = statSync(this.creds.tokenFile, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    if (fresh || !this.cached || this.cached.mtimeMs !== mtimeMs) this.cached = { mtimeMs, token: read(this.creds.tokenFile, 'the token file').trim() };
    return this.cached.token;
  }
}

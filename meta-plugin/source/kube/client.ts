/**
 * plexusd's HTTP client for the API server: plain Node HTTP(S) with the credentials of kubeconfig.ts (a
 * rotating token file is re-read when it changes, and at once after a 401), and a bound on every request.
 * List and watch are built on it in reflector.ts.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { BearerToken, type Credentials, loadCredentials } from './kubeconfig';

export interface KubeResponse {
  status: number;
  json: unknown;
}

/** An answer of the API server that is not a success: the status code and the Status message. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class KubeClient {
  private readonly creds: Credentials;
  private readonly token: BearerToken;
  private freshToken = false;

  constructor(kubeconfig: string | undefined, readonly timeoutMs: number) {
    this.creds = loadCredentials(kubeconfig);
    this.token = new BearerToken(this.creds);
  }

  get server(): string {
    return this.creds.server;
  }

  private send(method: string, path: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<IncomingMessage> {
    const url = new URL(path, this.creds.server);
    const token = this.token.get(this.freshToken);
    this.freshToken = false;
    const opts: RequestOptions = {
      method,
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      timeout: timeoutMs,
      ...(this.creds.ca ? { ca: this.creds.ca } : {}),
      ...(this.creds.cert ? { cert: this.creds.cert } : {}),
      ...(this.creds.key ? { key: this.creds.key } : {}),
      ...(this.creds.insecure ? { rejectUnauthorized: false } : {}),
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, opts, resolve);
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** One request with a JSON answer; after a 401 the token is read again and the request tried once more. */
  async request(method: string, path: string, opts: { body?: unknown; contentType?: string; timeoutMs?: number } = {}): Promise<KubeResponse> {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    // A length on every body: Node sends a DELETE's body neither chunked nor sized otherwise, and the server
    // would read it as the next request.
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': opts.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(method, path, headers, body, opts.timeoutMs ?? this.timeoutMs);
      const text = await readAll(res);
      if (res.statusCode === 401 && attempt === 0) {
        this.freshToken = true; // a token file rotated since it was read
        continue;
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = { message: text.slice(0, 200) };
      }
      return { status: res.statusCode ?? 0, json };
    }
  }

  /** A request that must succeed (2xx): its JSON, or a KubeApiError naming the status and the server's message. */
  async must(method: string, path: string, opts: { body?: unknown; contentType?: string; timeoutMs?: number } = {}): Promise<unknown> {
    const r = await this.request(method, path, opts);
    if (r.status < 200 || r.status > 299) throw new KubeApiError(r.status, `${method} ${path}: ${r.status} ${(r.json as { message?: string } | undefined)?.message ?? ''}`.trim());
    return r.json;
  }

  /**
   * A watch stream: `onLine` gets each JSON line as it arrives. Resolves when the server ends the stream,
   * rejects on an error or a non-200 answer (a 410 as status included); `abort` ends it from our side.
   */
  async watch(path: string, onLine: (event: { type: string; object: Record<string, unknown> }) => void, abort: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, {}, undefined, 0);
    if (res.statusCode === 401) this.freshToken = true;
    if (res.statusCode !== 200) {
      const text = await readAll(res);
      let message = '';
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? '';
      } catch {
        // not a Status
      }
      throw new KubeApiError(res.statusCode ?? 0, `watch ${path}: ${res.statusCode} ${message}`.trim());
    }
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const stop = () => res.destroy();
      abort.addEventListener('abort', stop, { once: true });
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line) continue;
          try {
            onLine(JSON.parse(line) as { type: string; object: Record<string, unknown> });
          } catch (e) {
            res.destroy(e as Error);
            return;
          }
        }
      });
      res.on('end', () => resolve());
      res.on('close', () => resolve());
      res.on('error', (e) => (abort.aborted ? resolve() : reject(e)));
    });
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

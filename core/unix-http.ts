/**
 * One HTTP/1.1 request over a unix socket (plexusd's and plexus-dataplane's control APIs), bounded by a
 * timeout. A JSON `body` is sent as application/json; the answer's body comes back as text. A socket that is
 * missing, refuses or does not answer in time rejects with the reason.
 */
import { request } from 'node:http';

export interface UnixHttpAnswer {
  status: number;
  body: string;
}

export function unixHttp(socketPath: string, method: string, path: string, opts: { body?: unknown; timeoutMs?: number } = {}): Promise<UnixHttpAnswer> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
  });
}

/** The body as JSON when it is JSON, else the text itself (an error page). */
export function jsonOf(body: string): unknown {
  try {
    return body ? JSON.parse(body) : undefined;
  } catch {
    return body;
  }
}

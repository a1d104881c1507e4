/**
 * The shim's side of the daemon protocol: HTTP/1.1 over the daemon's unix socket, `POST /v1/cni` with
 * `{env, config}`. Core modules only.
 *
 * The daemon answers 200 with the CNI output (possibly empty), an error status with a CNI error result, or
 * 503 with `x-plexus-not-ready: 1` while it starts (drains its DEL queue, loads its source).
 */
import { request } from 'node:http';
import { NOT_READY_HEADER, ROUTES } from '../api/protocol';

export interface DaemonReply {
  status: number;
  notReady: boolean;
  body: string;
}

/** Why the daemon could not be reached at all (no socket, nobody listening, connection reset). */
export class Unreachable extends Error {}

const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK', 'EACCES']);

export function callDaemon(socketPath: string, path: string, payload: unknown): Promise<DaemonReply> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 500,
            notReady: res.headers[NOT_READY_HEADER] === '1',
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code && UNREACHABLE_CODES.has(e.code) ? new Unreachable(`${e.code} ${socketPath}`) : e);
    });
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Call the daemon, retrying while it is unreachable or not ready, until `deadline` (ms since epoch).
 * Returns the reply, or null when the deadline passed without a ready daemon.
 */
export async function callWhenReady(socketPath: string, payload: unknown, deadline: number): Promise<DaemonReply | null> {
  let delay = 20;
  for (;;) {
    try {
      const reply = await callDaemon(socketPath, ROUTES.cni, payload);
      if (!reply.notReady) return reply;
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
    }
    if (Date.now() + delay > deadline) return null;
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
}

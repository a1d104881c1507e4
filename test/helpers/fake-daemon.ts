/**
 * A stand-in for plexusd's API in unit tests of its clients (the shim, plexusctl): an HTTP server on a unix
 * socket that records every request and answers with whatever `reply` returns for it.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Reply {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

export interface FakeDaemon {
  socketPath: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** Listen on `<dir>/plexus.sock`. `reply` gets each request and its 0-based number. */
export async function startFakeDaemon(dir: string, reply: (req: SeenRequest, n: number) => Reply): Promise<FakeDaemon> {
  const socketPath = join(dir, 'plexus.sock');
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(seen);
      const r = reply(seen, requests.length - 1);
      res.writeHead(r.status, r.headers ?? {});
      res.end(r.body ?? '');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    socketPath,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

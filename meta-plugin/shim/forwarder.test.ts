/**
 * bin/plexus, the native forwarder every runtime executes (forwarder.c), tested on its own: compiled here,
 * run as a runtime runs it, against a raw unix-socket server that plays plexusd byte for byte, with a stub
 * `plexus-shim` beside it that records how it was called. What it must do:
 *   - find `socketPath` with its small JSON scanner (top level; inside `ipam` when run as plexus-ipam) and
 *     leave anything it does not understand to the shim;
 *   - send only the CNI_* variables of its environment, and the config exactly as read;
 *   - print the daemon's body (exit 0 on 200, 1 otherwise), or, when the daemon cannot answer at any point
 *     of the exchange, replace itself with the shim with the same argv, stdin and invoked name.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAsync } from '../../hack/cluster';
import { NOT_READY_HEADER, ROUTES } from '../api/protocol';

let dir: string;
let server: Server | undefined;
const requests: { head: string; body: string }[] = [];
/** What the fake daemon does with a complete request. */
let answer: (sock: Socket, body: string) => void;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'plexus-fwd-'));
  // Its default socket is one of ours, never a real daemon's on this machine.
  execFileSync(process.env['CC'] ?? 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', `-DDEFAULT_SOCKET="${join(dir, 'default.sock')}"`, '-o', join(dir, 'plexus'), join(__dirname, 'forwarder.c')]);
  symlinkSync('plexus', join(dir, 'plexus-ipam'));
  // The stub shim: records argv, the invoked name and stdin, and answers with a marker.
  writeFileSync(join(dir, 'plexus-shim'), `#!/bin/sh\nprintf '%s\\n' "$0" "$@" > ${dir}/shim.argv\necho "$PLEXUS_INVOKED_AS" > ${dir}/shim.name\ncat > ${dir}/shim.stdin\necho '{"fallback":true}'\n`);
  chmodSync(join(dir, 'plexus-shim'), 0o755);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  requests.length = 0;
  rmSync(join(dir, 'shim.stdin'), { force: true });
  answer = (sock) => reply(sock, 200, '{"cniVersion":"1.1.0"}');
  server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const text = buf.toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (Buffer.byteLength(text.slice(end + 4)) < length) return;
      requests.push({ head: text.slice(0, end), body: text.slice(end + 4) });
      answer(sock, text.slice(end + 4));
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server!.listen(join(dir, 'd.sock'), resolve));
});

afterEach(async () => {
  await new Promise<void>((resolve) => server!.close(() => resolve()));
  rmSync(join(dir, 'd.sock'), { force: true });
});

function reply(sock: Socket, status: number, body: string, headers: Record<string, string> = {}): void {
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  sock.end(`HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`);
}

const SOCK = () => join(dir, 'd.sock');
const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=a', CNI_PATH: '/opt/cni/bin' };

function forward(stdin: string, opts: { name?: string; env?: Record<string, string | undefined> } = {}) {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], ...ENV };
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v === undefined) delete env[k]; else env[k] = v;
  return runAsync(join(dir, opts.name ?? 'plexus'), [], { env, input: stdin, timeoutMs: 10_000 });
}

const fellBack = () => {
  try {
    return readFileSync(join(dir, 'shim.stdin'), 'utf8');
  } catch {
    return undefined;
  }
};

describe('JSON scanning: where the socket is, or leave it to the shim', () => {
  test('top-level socketPath: the daemon there gets the request; stdout is its body, exit 0 on 200', async () => {
    const config = JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'plexus', socketPath: SOCK() });
    const out = await forward(config);
    expect(out).toEqual({ code: 0, stdout: '{"cniVersion":"1.1.0"}\n', stderr: '' });
    expect(requests).toHaveLength(1);
    expect(requests[0]!.head.split('\r\n')[0]).toBe(`POST ${ROUTES.cni} HTTP/1.1`);
    expect(fellBack()).toBeUndefined();
  });

  test('as plexus-ipam, the socketPath inside "ipam" counts and a top-level one does not', async () => {
    const config = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', socketPath: '/nowhere.sock', ipam: { type: 'plexus-ipam', socketPath: SOCK() } });
    expect((await forward(config, { name: 'plexus-ipam' })).code).toBe(0);
    expect(JSON.parse(requests[0]!.body).invokedAs).toBe('plexus-ipam');
  });

  test.each([
    ['a socketPath nested deeper than the top level', { cniVersion: '1.1.0', name: 'n', plugins: [{ socketPath: '@SOCK' }] }],
    ['the key only inside a string value', { cniVersion: '1.1.0', name: 'n', note: '"socketPath": "@SOCK"' }],
    ['no socketPath at all', { cniVersion: '1.1.0', name: 'n' }],
  ])('%s is not the socket: the default socket gets the request', async (_t, conf) => {
    const config = JSON.stringify(conf).replaceAll('@SOCK', SOCK());
    const seen: string[] = [];
    const fallbackDaemon = createServer((sock) => sock.once('data', (d: Buffer) => {
      seen.push(d.toString('utf8'));
      reply(sock, 200, '{"default":true}');
    }));
    await new Promise<void>((resolve) => fallbackDaemon.listen(join(dir, 'default.sock'), resolve));
    try {
      const out = await forward(config);
      expect(requests).toHaveLength(0); // not the socket the nested or quoted value named
      expect(seen).toHaveLength(1);
      expect(out.stdout).toBe('{"default":true}\n');
    } finally {
      await new Promise<void>((resolve) => fallbackDaemon.close(() => resolve()));
    }
  });

  test.each([
    ['an escaped value', `{"cniVersion":"1.1.0","socketPath":"${'/tmp/a\\u0062.sock'}"}`],
    ['socketPath given twice', '{"cniVersion":"1.1.0","socketPath":"@SOCK","socketPath":"@SOCK"}'],
    ['unbalanced braces', '{"cniVersion":"1.1.0","socketPath":"@SOCK"'],
    ['an unterminated string', '{"cniVersion":"1.1.0","socketPath":"@SOCK}'],
    ['a non-string value', '{"cniVersion":"1.1.0","socketPath":42}'],
  ])('%s: not understood, so the shim judges it with the same stdin', async (_t, raw) => {
    const config = raw.replaceAll('@SOCK', SOCK());
    const out = await forward(config);
    expect(requests).toHaveLength(0);
    expect(out.stdout).toBe('{"fallback":true}\n');
    expect(fellBack()).toBe(config);
  });
});

describe('what reaches the daemon', () => {
  test('only the CNI_* variables, and the config byte for byte (quotes, backslashes, control characters, UTF-8)', async () => {
    const config = JSON.stringify({ cniVersion: '1.1.0', socketPath: SOCK(), text: 'q"b\\s\u0001\ttab é 中' }) + '\n\t';
    await forward(config, { env: { SECRET_TOKEN: 'x', HOME: '/root', CNI_EXTRA: 'y' } });
    const body = JSON.parse(requests[0]!.body);
    expect(body.env).toEqual(ENV);
    expect(body.config).toBe(config);
    expect(body.invokedAs).toBe('plexus');
  });

  test('an unset CNI variable is left out, not sent empty', async () => {
    await forward(JSON.stringify({ cniVersion: '1.1.0', socketPath: SOCK() }), { env: { CNI_NETNS: undefined, CNI_ARGS: undefined } });
    expect(Object.keys(JSON.parse(requests[0]!.body).env).sort()).toEqual(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH']);
  });
});

describe('answers, and falling back to the shim at any point of the exchange', () => {
  const config = () => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'plexus', socketPath: SOCK() });

  test('a CNI error from the daemon: its body on stdout, exit 1', async () => {
    answer = (sock) => reply(sock, 500, '{"cniVersion":"1.1.0","code":101,"msg":"x"}');
    expect(await forward(config())).toEqual({ code: 1, stdout: '{"cniVersion":"1.1.0","code":101,"msg":"x"}\n', stderr: '' });
  });

  test.each<[string, (sock: Socket) => void]>([
    ['not ready (503 with the header)', (sock) => reply(sock, 503, 'not ready\n', { [NOT_READY_HEADER]: '1' })],
    ['the connection closed after the request was read, before any answer', (sock) => sock.destroy()],
    ['a body shorter than its Content-Length', (sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cniVersion"')],
    ['an answer that is not HTTP', (sock) => sock.end('garbage\r\n\r\n')],
  ])('%s: the shim runs with the same argv, stdin and name', async (_t, misbehave) => {
    answer = misbehave;
    const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', ipam: { type: 'plexus-ipam', socketPath: SOCK() } });
    const out = await forward(stdin, { name: 'plexus-ipam' });
    expect(requests).toHaveLength(1); // the daemon did get the request first
    expect(out.stdout).toBe('{"fallback":true}\n');
    expect(fellBack()).toBe(stdin);
    expect(readFileSync(join(dir, 'shim.name'), 'utf8').trim()).toBe('plexus-ipam');
    expect(readFileSync(join(dir, 'shim.argv'), 'utf8').split('\n')[0]).toBe(join(dir, 'plexus-shim'));
  });

  test.each([
    ['VERSION', { CNI_COMMAND: 'VERSION' }],
    ['no CNI_COMMAND', { CNI_COMMAND: undefined }],
    ['an empty CNI_COMMAND', { CNI_COMMAND: '' }],
  ])('%s: answered by the shim without asking the daemon', async (_t, env) => {
    const out = await forward(config(), { env });
    expect(requests).toHaveLength(0);
    expect(out.stdout).toBe('{"fallback":true}\n');
  });

  test('nobody listening on the socket: the shim', async () => {
    const stdin = JSON.stringify({ cniVersion: '1.1.0', socketPath: join(dir, 'nobody.sock') });
    expect((await forward(stdin)).stdout).toBe('{"fallback":true}\n');
    expect(fellBack()).toBe(stdin);
  });
});

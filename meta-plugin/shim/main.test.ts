import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeDaemon, type FakeDaemon, type Reply } from '../../test/helpers/fake-daemon';
import { listQueuedDels } from '../api/del-queue';
import type { CniCommand, Env } from '../../cni/request';
import { SUPPORTED_VERSIONS } from '../../cni/version';
import { runShim } from './main';

// An nsfs file any user can stat, so ADD/CHECK pass the "existing netns" check without root.
const NETNS = '/proc/self/ns/net';
const SANDBOX = { CNI_CONTAINERID: 'c0ffee', CNI_IFNAME: 'eth0', CNI_NETNS: NETNS, CNI_ARGS: 'K8S_POD_NAMESPACE=team;K8S_POD_NAME=web-0' };
const ENV_FOR: Record<Exclude<CniCommand, 'VERSION'>, Env> = {
  ADD: SANDBOX,
  CHECK: SANDBOX,
  DEL: { ...SANDBOX, CNI_NETNS: '' },
  GC: { CNI_PATH: '/opt/cni/bin' },
  STATUS: {},
};

let dir: string;
let daemon: FakeDaemon | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plexus-shim-'));
});
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const socketPath = () => join(dir, 'plexus.sock');
const stateDir = () => join(dir, 'state');
/** The plugin config the runtime writes to stdin, pointing the shim at the temp dir. */
const stdin = (extra: object = {}) =>
  // Whitespace and key order on purpose: the daemon must get these bytes unchanged.
  `{ "cniVersion": "1.1.0",\n  "type": "plexus", "name": "plexus", "socketPath": "${socketPath()}", "stateDir": "${stateDir()}"${Object.entries(extra)
    .map(([k, v]) => `, "${k}": ${JSON.stringify(v)}`)
    .join('')} }\n`;
const env = (cmd: CniCommand, over: Env = {}): Env => ({ CNI_COMMAND: cmd, ...(cmd === 'VERSION' ? {} : ENV_FOR[cmd]), ...over });
const serve = async (reply: (n: number) => Reply) => (daemon = await startFakeDaemon(dir, (_req, n) => reply(n)));
const cniError = (out: { stdout?: string }) => JSON.parse(out.stdout ?? '') as { cniVersion: string; code: number; msg: string };

describe('without a daemon', () => {
  test.each(['{"cniVersion":"0.4.0"}', '', 'not json'])('VERSION is answered here (stdin %p)', async (input) => {
    const out = await runShim({ CNI_COMMAND: 'VERSION' }, input);
    expect(out).toEqual({ code: 0, stdout: JSON.stringify({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] }) });
  });

  test('no CNI_COMMAND: say what this is, as skel does', async () => {
    const out = await runShim({}, '');
    expect(out).toEqual({ code: 0, stderr: `Plexus CNI plugin\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n` });
  });

  test('DEL is queued durably in stateDir and succeeds (DESIGN decision 2)', async () => {
    const input = stdin();
    const out = await runShim({ ...env('DEL'), HOME: '/root', SECRET: 'x' }, input);
    expect(out).toMatchObject({ code: 0, stderr: expect.stringContaining('DEL queued') });
    const queued = listQueuedDels(stateDir());
    expect(queued).toEqual([{ file: expect.any(String), item: { env: { CNI_COMMAND: 'DEL', ...ENV_FOR.DEL }, config: input, invokedAs: 'plexus', queuedAt: expect.any(String) } }]);
  });

  test.each<[CniCommand, number]>([
    ['ADD', 11],
    ['CHECK', 11],
    ['GC', 11],
    ['STATUS', 50],
  ])('%s waits readinessTimeoutSeconds, then fails with code %i (CNI spec 2.1)', async (cmd, code) => {
    const out = await runShim(env(cmd), stdin({ readinessTimeoutSeconds: 0.2 }));
    expect(out.code).toBe(1);
    expect(cniError(out)).toEqual({ cniVersion: '1.1.0', code, msg: `plexus daemon at ${socketPath()} is not ready after 0.2s` });
    expect(listQueuedDels(stateDir())).toEqual([]);
  });
});

describe('forwarding', () => {
  test.each(Object.keys(ENV_FOR) as Exclude<CniCommand, 'VERSION'>[])('%s: only CNI_* env and the raw stdin reach the daemon', async (cmd) => {
    await serve(() => ({ status: 200, body: cmd === 'ADD' ? '{"cniVersion":"1.1.0","ips":[]}' : '' }));
    const input = stdin();
    const out = await runShim({ ...env(cmd), HOME: '/root', PATH: '/usr/bin', PLEXUS_TOKEN: 'secret', cni_lower: 'x' }, input);
    expect(out).toEqual({ code: 0, stdout: cmd === 'ADD' ? '{"cniVersion":"1.1.0","ips":[]}' : '' });
    expect(daemon!.requests).toHaveLength(1);
    const [req] = daemon!.requests;
    expect(req).toMatchObject({ method: 'POST', url: '/v1/cni', headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(req!.body)).toEqual({ env: { CNI_COMMAND: cmd, ...ENV_FOR[cmd] }, config: input, invokedAs: 'plexus' });
  });

  test('as plexus-ipam, the daemon is found through the ipam section and the name is passed on', async () => {
    await serve(() => ({ status: 200, body: '{"cniVersion":"1.0.0","ips":[]}' }));
    const input = JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'macvlan', ipam: { type: 'plexus-ipam', socketPath: socketPath() } });
    const out = await runShim({ ...env('ADD'), PLEXUS_INVOKED_AS: 'plexus-ipam' }, input);
    expect(out.code).toBe(0);
    expect(JSON.parse(daemon!.requests[0]!.body).invokedAs).toBe('plexus-ipam');
  });

  test('as plexus-ipam with the daemon down, DEL is queued under the ipam section\'s stateDir', async () => {
    const input = JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'macvlan', ipam: { type: 'plexus-ipam', socketPath: socketPath(), stateDir: stateDir() } });
    const out = await runShim({ ...env('DEL'), PLEXUS_INVOKED_AS: 'plexus-ipam' }, input);
    expect(out.code).toBe(0);
    expect(listQueuedDels(stateDir())[0]?.item?.invokedAs).toBe('plexus-ipam');
  });

  test('an error reply is printed as the daemon wrote it, exit 1', async () => {
    const body = '{"cniVersion":"1.1.0","code":100,"msg":"network \\"team/x\\" not found"}';
    await serve(() => ({ status: 400, body }));
    expect(await runShim(env('ADD'), stdin())).toEqual({ code: 1, stdout: body });
  });

  test('503 with x-plexus-not-ready: 1 is retried until the daemon is ready', async () => {
    await serve((n) => (n < 3 ? { status: 503, body: 'not ready\n', headers: { 'x-plexus-not-ready': '1' } } : { status: 200, body: '{}' }));
    expect(await runShim(env('ADD'), stdin())).toEqual({ code: 0, stdout: '{}' });
    expect(daemon!.requests).toHaveLength(4);
  });

  test('a 503 without the header is an answer, not a reason to wait', async () => {
    await serve(() => ({ status: 503, body: 'overloaded' }));
    expect(await runShim(env('ADD'), stdin())).toEqual({ code: 1, stdout: 'overloaded' });
    expect(daemon!.requests).toHaveLength(1);
  });

  test('999: an answer that is not HTTP at all is an internal error the runtime sees as such', async () => {
    const { createServer } = await import('node:net');
    // Reads the request, then answers with something no HTTP parser accepts.
    const server = createServer((sock) => sock.once('data', () => sock.end('garbage\r\n\r\n')));
    await new Promise<void>((resolve) => server.listen(socketPath(), resolve));
    try {
      const out = await runShim(env('ADD'), stdin({ readinessTimeoutSeconds: 2 }));
      expect(out.code).toBe(1);
      expect(cniError(out)).toMatchObject({ cniVersion: '1.1.0', code: 999, msg: expect.stringMatching(/^plexus: /) });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('a DEL while the daemon is starting is queued, not waited for', async () => {
    await serve(() => ({ status: 503, body: 'not ready\n', headers: { 'x-plexus-not-ready': '1' } }));
    expect((await runShim(env('DEL'), stdin())).code).toBe(0);
    expect(listQueuedDels(stateDir())).toHaveLength(1);
  });
});

describe('invalid invocations are answered here with the right code', () => {
  test.each<[string, number, CniCommand, Env, string, string]>([
    ['a relative socketPath', 7, 'ADD', {}, '{"cniVersion":"1.0.0","socketPath":"plexus.sock"}', '1.0.0'],
    ['a relative socketPath on DEL (never queued)', 7, 'DEL', {}, '{"cniVersion":"1.0.0","socketPath":"run/p.sock"}', '1.0.0'],
    ['a relative stateDir', 7, 'DEL', {}, '{"cniVersion":"1.1.0","stateDir":"state"}', '1.1.0'],
    ['a socketPath that is not a string', 7, 'ADD', {}, '{"cniVersion":"1.1.0","socketPath":5}', '1.1.0'],
    ['a negative readinessTimeoutSeconds', 7, 'ADD', {}, '{"cniVersion":"1.1.0","readinessTimeoutSeconds":-1}', '1.1.0'],
    ['readinessTimeoutSeconds as a string', 7, 'ADD', {}, '{"cniVersion":"1.1.0","readinessTimeoutSeconds":"5"}', '1.1.0'],
    ['stdin that is not JSON', 6, 'ADD', {}, '{"cniVersion":', '1.1.0'],
    ['a missing CNI_IFNAME', 4, 'ADD', { CNI_IFNAME: undefined }, '{"cniVersion":"1.0.0"}', '1.0.0'],
    ['a CNI_NETNS that is not a netns', 4, 'CHECK', { CNI_NETNS: '/tmp' }, '{"cniVersion":"0.4.0"}', '0.4.0'],
    ['an unknown CNI_COMMAND', 4, 'FOO' as CniCommand, {}, '{"cniVersion":"1.0.0"}', '1.0.0'],
    ['an unsupported cniVersion', 1, 'ADD', {}, '{"cniVersion":"0.2.0"}', '1.1.0'],
    ['STATUS on a 1.0.0 config', 1, 'STATUS', {}, '{"cniVersion":"1.0.0"}', '1.0.0'],
  ])('%s -> code %i', async (_title, code, cmd, over, input, version) => {
    const out = await runShim({ ...(cmd in ENV_FOR ? env(cmd) : { CNI_COMMAND: cmd }), ...over }, input);
    expect(out.code).toBe(1);
    expect(cniError(out)).toMatchObject({ cniVersion: version, code });
    expect(listQueuedDels(stateDir())).toEqual([]);
  });
});

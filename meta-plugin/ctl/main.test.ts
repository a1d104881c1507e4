import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeDaemon, type FakeDaemon, type SeenRequest, type Reply } from '../../test/helpers/fake-daemon';
import { formatNetworkStatus } from '../status/network-status';
import { parseArgs, parseObserveArgs, runCtl } from './main';

const DEFAULT = '/run/plexus/plexus.sock';

describe('parseArgs: --socket before or after the subcommand, then $PLEXUS_SOCKET, then the default', () => {
  test.each<[string, string[], Record<string, string>, ReturnType<typeof parseArgs>]>([
    ['nothing given: the default', ['status', 'ns/p'], {}, { socket: DEFAULT, rest: ['status', 'ns/p'] }],
    ['PLEXUS_SOCKET', ['health'], { PLEXUS_SOCKET: '/env.sock' }, { socket: '/env.sock', rest: ['health'] }],
    ['an empty PLEXUS_SOCKET: the default', ['health'], { PLEXUS_SOCKET: '' }, { socket: DEFAULT, rest: ['health'] }],
    ['--socket PATH before the subcommand', ['--socket', '/a.sock', 'status', 'ns/p'], {}, { socket: '/a.sock', rest: ['status', 'ns/p'] }],
    ['--socket PATH after the subcommand', ['status', '--socket', '/a.sock', 'ns/p'], {}, { socket: '/a.sock', rest: ['status', 'ns/p'] }],
    ['--socket PATH at the end', ['status', 'ns/p', '--socket', '/a.sock'], {}, { socket: '/a.sock', rest: ['status', 'ns/p'] }],
    ['--socket=PATH', ['--socket=/b.sock', 'health'], {}, { socket: '/b.sock', rest: ['health'] }],
    ['the flag beats PLEXUS_SOCKET', ['health', '--socket=/b.sock'], { PLEXUS_SOCKET: '/env.sock' }, { socket: '/b.sock', rest: ['health'] }],
    ['the last flag wins', ['--socket', '/a.sock', '--socket=/b.sock', 'health'], {}, { socket: '/b.sock', rest: ['health'] }],
    ['--socket without a path', ['status', '--socket'], {}, '--socket needs a path'],
    // Regression: an empty path made node's http client fall back to TCP localhost:80.
    ['--socket= with an empty path', ['--socket=', 'health'], {}, '--socket needs a path'],
    ['-h', ['status', '-h'], {}, ''],
    ['--help', ['--help'], {}, ''],
  ])('%s', (_title, argv, env, expected) => expect(parseArgs(argv, env)).toEqual(expected));
});

describe('runCtl', () => {
  let dir: string;
  let daemon: FakeDaemon;
  const serve = async (reply: (req: SeenRequest) => Reply) => (daemon = await startFakeDaemon(dir, reply));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'plexus-ctl-'));
  });
  afterEach(async () => {
    await daemon?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const STATUS = formatNetworkStatus([
    { name: 'cluster', interface: 'eth0', ips: ['10.0.0.2'], default: true, dns: {} },
    { name: 'team/net-a', interface: 'net1', ips: ['10.1.0.2'], default: false, dns: {} },
  ]);

  test.each<[string, (socket: string) => [string[], Record<string, string>]]>([
    ['--socket first', (s) => [['--socket', s, 'status', 'team/web-0'], {}]],
    ['--socket last', (s) => [['status', 'team/web-0', `--socket=${s}`], {}]],
    ['PLEXUS_SOCKET', (s) => [['status', 'team/web-0'], { PLEXUS_SOCKET: s }]],
  ])('status prints exactly the body plus a newline (%s)', async (_title, args) => {
    await serve(() => ({ status: 200, body: STATUS }));
    const [argv, env] = args(daemon.socketPath);
    expect(await runCtl(argv, env)).toEqual({ code: 0, stdout: `${STATUS}\n`, stderr: '' });
    expect(daemon.requests.map((r) => [r.method, r.url])).toEqual([['GET', '/v1/status/team/web-0']]);
  });

  test('status of a pod without one: exit 1 with the daemon reason', async () => {
    await serve(() => ({ status: 404, body: 'no network-status for pod team/gone\n' }));
    expect(await runCtl(['--socket', daemon.socketPath, 'status', 'team/gone'], {})).toEqual({
      code: 1,
      stdout: '',
      stderr: 'plexusctl: no network-status for pod team/gone\n',
    });
  });

  test.each([undefined, 'web-0', 'Team/web-0', 'team/', '/web-0', 'team/web/0', 'team/../etc', 'team/-x', 'team/web-0?x=1', 'team/web 0'])(
    'status %p is not NAMESPACE/POD: exit 2, nothing sent',
    async (arg) => {
      await serve(() => ({ status: 200, body: '[]' }));
      const out = await runCtl(['--socket', daemon.socketPath, 'status', ...(arg === undefined ? [] : [arg])], {});
      expect(out).toMatchObject({ code: 2, stdout: '', stderr: expect.stringContaining('status needs NAMESPACE/POD') });
      expect(daemon.requests).toEqual([]);
    },
  );

  test.each<[string, number, number]>([
    ['alive and ready', 0, 200],
    ['alive, not ready', 1, 503],
  ])('health: %s -> exit %i', async (_title, code, ready) => {
    await serve((req) => (req.url === '/healthz' ? { status: 200, body: 'ok\n' } : { status: ready, body: ready === 200 ? 'ready\n' : 'not ready\n' }));
    const out = await runCtl(['health', '--socket', daemon.socketPath], {});
    expect(out).toEqual({ code, stdout: `healthz: ok\nreadyz: ${ready === 200 ? 'ready' : 'not ready'}\n`, stderr: '' });
  });

  test.each<[string, number, string[], string]>([
    ['an unknown command', 2, ['frobnicate'], 'plexusctl: unknown command frobnicate\n'],
    ['no command', 2, [], 'plexusctl: unknown command (none)\n'],
    ['a flag without its path', 2, ['--socket'], 'plexusctl: --socket needs a path\n'],
  ])('%s -> exit %i with usage', async (_title, code, argv, first) => {
    const out = await runCtl(argv, { PLEXUS_SOCKET: join(dir, 'none.sock') });
    expect(out.code).toBe(code);
    expect(out.stderr.startsWith(first)).toBe(true);
    expect(out.stderr).toContain('usage: plexusctl');
  });

  test('--help prints usage on stdout, exit 0', async () => {
    expect(await runCtl(['--help'], {})).toEqual({ code: 0, stdout: expect.stringContaining('usage: plexusctl'), stderr: '' });
  });

  test('no daemon: exit 1 naming the socket', async () => {
    const socket = join(dir, 'none.sock');
    const out = await runCtl(['status', 'team/web-0'], { PLEXUS_SOCKET: socket });
    expect(out).toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining(`cannot reach plexusd at ${socket}`) });
  });
});

describe('observe: hubble\'s options', () => {
  test.each<[string[], ReturnType<typeof parseObserveArgs>]>([
    [[], { filter: {}, follow: false, json: false }],
    [['--last', '5', '-f', '--from-pod', 'x/a', '--to-port', '80', '--verdict', 'dropped', '-o', 'json'], { filter: { fromPod: 'x/a', toPort: 80, verdict: 'DROPPED' }, last: 5, follow: true, json: true }],
    [['--pod', 'b', '-n', 'y', '--protocol', 'UDP', '--ip', 'fd00::1', '--network', 'x/blue'], { filter: { pod: 'b', namespace: 'y', protocol: 'UDP', ip: 'fd00::1', network: 'x/blue' }, follow: false, json: false }],
    [['--verdict', 'MAYBE'], '--verdict is FORWARDED or DROPPED'],
    [['--port', '70000'], '--port needs a number up to 65535'],
    [['--last'], '--last needs a number up to 1000000'],
    [['--pod', 'Bad/Name/x'], '--pod needs [NAMESPACE/]POD'],
    [['-o', 'table'], '-o is compact or json'],
    [['--since', '1m'], 'observe: unknown option --since'],
  ])('%j', (args, want) => expect(parseObserveArgs(args)).toEqual(want));
});

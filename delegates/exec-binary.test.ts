import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlexusError, type ErrorKind } from '../core/errors';
import { silentLog } from '../test/helpers/fake-registry';
import type { DelegateCommand, DelegateEnv, PluginCall } from './contract';
import { BinaryDelegate, findBinary } from './exec-binary';

let dir: string;
let bin: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plexus-exec-'));
  bin = join(dir, 'bin');
  mkdirSync(bin);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const script = (body: string) => `#!/bin/sh\n${body}\n`;
function plugin(type: string, body: string, where = bin): string {
  const p = join(where, type);
  writeFileSync(p, script(body), { mode: 0o755 });
  return p;
}
const ENV: DelegateEnv = { containerId: 'c1', netns: '/var/run/netns/x', ifName: 'net1', args: 'IgnoreUnknown=1;K8S_POD_NAME=p', path: [] };
function call(over: Partial<PluginCall> = {}): PluginCall {
  return { command: 'ADD', env: { ...ENV, path: [bin] }, config: { cniVersion: '1.0.0', name: 'n', type: 't' }, timeoutMs: 10_000, log: silentLog, ...over };
}
const run = (type: string, over: Partial<PluginCall> = {}) => new BinaryDelegate(type).exec(call(over));
const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (e: PlexusError) => e);

describe('findBinary: the type is a name, never a path', () => {
  test.each(['../evil', 'sub/evil', '/bin/sh', '..', '.', '', '.hidden', '-x', 'a b'])('refuses %p', (type) => {
    writeFileSync(join(dir, 'evil'), script('exit 0'), { mode: 0o755 });
    expect(findBinary(type, [bin, '/bin'])).toBeUndefined();
  });

  test('searches the dirs in order and skips non-executable files', () => {
    const second = join(dir, 'second');
    mkdirSync(second);
    writeFileSync(join(bin, 'macvlan'), 'not executable', { mode: 0o644 });
    const found = plugin('macvlan', 'exit 0', second);
    expect(findBinary('macvlan', [join(dir, 'missing'), bin, second])).toBe(found);
    chmodSync(join(bin, 'macvlan'), 0o755);
    expect(findBinary('macvlan', [bin, second])).toBe(join(bin, 'macvlan'));
    expect(findBinary('macvlan', [])).toBeUndefined();
  });

  test('a type not in the path is an invalid config (code 7) naming the type', async () => {
    const err = await failure(run('nope'));
    expect(err).toMatchObject({ kind: 'InvalidConfig', cniCode: 7, message: expect.stringContaining('"nope"') });
  });
});

describe('success', () => {
  test('the JSON printed is parsed and returned', async () => {
    plugin('ok', `cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'`);
    expect(await run('ok')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
  });

  test('nothing printed is undefined; stderr alone does not fail', async () => {
    plugin('quiet', 'echo "just logging" >&2; exit 0');
    expect(await run('quiet', { command: 'DEL' })).toBeUndefined();
  });

  test('output that is not JSON is a decode failure (code 6)', async () => {
    plugin('chatty', 'echo "hello, world"');
    expect(await failure(run('chatty'))).toMatchObject({ kind: 'DecodeFailure', cniCode: 6 });
  });
});

describe('exactly the given env and stdin reach the plugin (CNI spec 2.2)', () => {
  const COMMANDS: [DelegateCommand, Partial<DelegateEnv>][] = [
    ['ADD', {}],
    ['CHECK', {}],
    ['DEL', { netns: '' }],
    ['GC', { containerId: '', netns: '', ifName: '', args: '' }],
    ['STATUS', { containerId: '', netns: '', ifName: '', args: '' }],
    ['VERSION', {}],
  ];
  test.each(COMMANDS)('%s', async (command, envOver) => {
    plugin('spy', `env > ${dir}/env; cat > ${dir}/stdin; echo '{}'`);
    process.env['PLEXUS_TEST_SECRET'] = 'must-not-leak';
    const config = { cniVersion: '1.1.0', name: 'näme', type: 'spy', prevResult: { ips: [] }, runtimeConfig: { mac: 'x' } };
    const env = { ...ENV, path: [bin, '/opt/cni/bin'], ...envOver };
    try {
      await new BinaryDelegate('spy').exec(call({ command, env, config }));
    } finally {
      delete process.env['PLEXUS_TEST_SECRET'];
    }
    const seen = Object.fromEntries(
      readFileSync(join(dir, 'env'), 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // The shell adds PWD (and some add SHLVL/_): everything else is what Plexus passed.
    for (const k of ['PWD', 'SHLVL', '_', 'OLDPWD']) delete seen[k];
    expect(seen).toEqual({
      CNI_COMMAND: command,
      CNI_CONTAINERID: env.containerId,
      CNI_NETNS: env.netns,
      CNI_IFNAME: env.ifName,
      CNI_ARGS: env.args,
      CNI_PATH: `${bin}:/opt/cni/bin`,
      PATH: process.env['PATH'],
    });
    expect(readFileSync(join(dir, 'stdin'), 'utf8')).toBe(JSON.stringify(config));
  });
});

describe('error results: spec codes kept, others become 101 (PLX_DELEGATE_FAILED)', () => {
  test.each<[number, ErrorKind, number]>([
    [1, 'IncompatibleVersion', 1],
    [2, 'UnsupportedField', 2],
    [3, 'UnknownContainer', 3],
    [4, 'InvalidEnv', 4],
    [5, 'IoFailure', 5],
    [6, 'DecodeFailure', 6],
    [7, 'InvalidConfig', 7],
    [11, 'TryAgainLater', 11],
    [50, 'NotAvailable', 50],
    [51, 'Degraded', 51],
    [0, 'DelegateFailed', 101], // not a spec code: the Go library's "unknown"
    [8, 'DelegateFailed', 8], // skel's "invalid netns": below 100, so passed through to the runtime
    [100, 'DelegateFailed', 101],
    [105, 'DelegateFailed', 101], // a delegate's 105 is not our timeout
    [999, 'DelegateFailed', 101],
  ])('delegate code %i -> %s (CNI code %i)', async (code, kind, cni) => {
    plugin('bad', `echo '{"cniVersion":"1.0.0","code":${code},"msg":"bad thing","details":"more"}'; exit 1`);
    const err = await failure(run('bad', { command: 'CHECK' }));
    expect(err).toMatchObject({ kind, cniCode: cni, message: 'plugin "bad" CHECK failed: bad thing', details: 'more' });
  });

  test.each<[string, string, string]>([
    ['no JSON: the last stderr line is the message', 'echo first >&2; echo "last line" >&2; exit 2', 'last line'],
    ['no output at all: the exit code', 'exit 3', 'exit 3'],
    ['killed by a signal: the signal', 'kill -9 $$', 'exit SIGKILL'],
    ['JSON without msg: the stderr line', `echo '{"code":7}'; echo oops >&2; exit 1`, 'oops'],
  ])('%s', async (_title, body, msg) => {
    plugin('bad', body);
    const err = await failure(run('bad'));
    expect(err).toMatchObject({ message: `plugin "bad" ADD failed: ${msg}` });
  });
});

describe('timeout', () => {
  test('a plugin that hangs is killed, with what it started, after timeoutMs: DelegateTimeout (105)', async () => {
    plugin('slow', `sleep 30 & echo $! > ${dir}/child; wait`);
    const started = Date.now();
    const err = await failure(run('slow', { timeoutMs: 300 }));
    expect(err).toMatchObject({ kind: 'DelegateTimeout', cniCode: 105, message: 'plugin "slow" ADD timed out after 300 ms' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const pid = Number(readFileSync(join(dir, 'child'), 'utf8'));
    await expect(waitGone(pid)).resolves.toBe(true);
  });
});

describe('"text file busy" (libcni retries exec on ETXTBSY)', () => {
  /** Write the plugin through a descriptor that stays open for writing, as an installer replacing it would. */
  function busyPlugin(type: string, body: string): number {
    const fd = openSync(join(bin, type), 'w', 0o755);
    writeSync(fd, script(body));
    return fd;
  }

  test('the writer closes the file ~100 ms later: the retry succeeds', async () => {
    const fd = busyPlugin('fresh', `echo '{"cniVersion":"1.0.0"}'`);
    const closer = setTimeout(() => closeSync(fd), 100);
    try {
      expect(await run('fresh')).toEqual({ cniVersion: '1.0.0' });
    } finally {
      clearTimeout(closer);
    }
  });

  test('the file stays busy: an I/O failure (code 5) after the retries', async () => {
    const fd = busyPlugin('stuck', 'exit 0');
    try {
      const err = await failure(run('stuck'));
      expect(err).toMatchObject({ kind: 'IoFailure', cniCode: 5, message: expect.stringContaining('ETXTBSY') });
    } finally {
      closeSync(fd);
    }
  });
});

/** True once `pid` no longer runs (gone, or a zombie waiting for a reaper). */
async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe('prestart: the process loads ahead of its turn and gets its config at run', () => {
  /** Records its start, then its config once it has it (what it "acts" on), then prints a result. */
  const marked = (type: string) =>
    plugin(type, `echo $$ > "${dir}/${type}.pid"; cat > "${dir}/${type}.config"; echo "$CNI_IFNAME" > "${dir}/${type}.acted"; echo '{"cniVersion":"1.0.0"}'`);
  async function started(type: string): Promise<number> {
    for (let i = 0; i < 500 && !existsSync(join(dir, `${type}.pid`)); i++) await new Promise((r) => setTimeout(r, 10));
    return Number(readFileSync(join(dir, `${type}.pid`), 'utf8'));
  }

  test('it runs before its turn but acts only on run, with the config of that call', async () => {
    marked('warm');
    const warm = new BinaryDelegate('warm').prestart(call())!;
    await started('warm');
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(join(dir, 'warm.acted'))).toBe(false);
    const c = call({ config: { cniVersion: '1.0.0', name: 'n', type: 'warm', marker: 42 } });
    expect(await warm.run(c)).toEqual({ cniVersion: '1.0.0' });
    expect(JSON.parse(readFileSync(join(dir, 'warm.config'), 'utf8'))).toEqual(c.config);
  });

  test('abandoned, it is killed and reaped without acting', async () => {
    marked('unused');
    const warm = new BinaryDelegate('unused').prestart(call())!;
    const pid = await started('unused');
    warm.abandon();
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(`/proc/${pid}`)).toBe(false); // killed and reaped, not left a zombie
    expect(existsSync(join(dir, 'unused.acted'))).toBe(false);
  });

  test('run with a call it was not started for: it is dropped and a process with the right env runs', async () => {
    marked('other');
    const warm = new BinaryDelegate('other').prestart(call())!;
    const first = await started('other');
    expect(await warm.run(call({ env: { ...ENV, path: [bin], ifName: 'net7' } }))).toEqual({ cniVersion: '1.0.0' });
    expect(readFileSync(join(dir, 'other.acted'), 'utf8')).toBe('net7\n');
    for (let i = 0; i < 200 && existsSync(`/proc/${first}`); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(`/proc/${first}`)).toBe(false); // killed and reaped
  });

  test('a plugin that cannot be started (text file busy) and is then abandoned: no unhandled rejection', async () => {
    const fd = openSync(join(bin, 'busy'), 'w', 0o755); // held open for writing: exec fails with ETXTBSY
    writeSync(fd, script('exit 0'));
    const unhandled: unknown[] = [];
    const listener = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', listener);
    try {
      const warm = new BinaryDelegate('busy').prestart(call());
      expect(warm).toBeDefined();
      warm!.abandon();
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', listener);
      closeSync(fd);
    }
  });

  test('a type not in the path is not prestarted; its error comes at its turn', async () => {
    expect(new BinaryDelegate('nope').prestart(call())).toBeUndefined();
    expect(await failure(run('nope'))).toMatchObject({ kind: 'InvalidConfig' });
  });

  test('its errors and timeout are those of exec, the timeout counting from run', async () => {
    plugin('slowfail', `cat >/dev/null; echo '{"code":11,"msg":"later"}'; exit 1`);
    const warm = new BinaryDelegate('slowfail').prestart(call({ timeoutMs: 200 }))!;
    await new Promise((r) => setTimeout(r, 400));
    expect(await failure(warm.run(call({ timeoutMs: 200 })))).toMatchObject({ kind: 'TryAgainLater', cniCode: 11 });
  });
});

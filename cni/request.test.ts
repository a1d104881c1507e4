import { PlexusError, type ErrorKind } from '../core/errors';
import { COMMANDS, parseCniArgs, parseCommand, parseRequest, podRefFromArgs, type CniCommand, type Env } from './request';
import { parseContainerId, parseIfName } from './ids';

const NETNS = '/var/run/netns/test-ns';
const isNetns = (p: string) => p === NETNS;
const conf = (cniVersion = '1.1.0', extra: object = {}) => JSON.stringify({ cniVersion, name: 'plexus', type: 'plexus', ...extra });

const FULL_ENV: Env = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: NETNS,
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=web-0',
  CNI_PATH: '/opt/cni/bin',
};
const env = (command: CniCommand, over: Env = {}): Env => ({ ...FULL_ENV, CNI_COMMAND: command, ...over });
const parse = (e: Env, stdin = conf()) => parseRequest(e, stdin, { isNetns });

function thrown(fn: () => unknown): PlexusError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PlexusError) return e;
    throw e;
  }
  throw new Error('expected a PlexusError');
}
function expectError(fn: () => unknown, kind: ErrorKind, text?: string | RegExp): void {
  const err = thrown(fn);
  expect(err.kind).toBe(kind);
  if (text !== undefined) expect(err.message).toMatch(text);
}

describe('parseCommand', () => {
  test.each(COMMANDS)('accepts %s', (cmd) => expect(parseCommand({ CNI_COMMAND: cmd })).toBe(cmd));
  test.each([undefined, '', 'add', 'FOO', 'ADD '])('rejects %p with code 4 (CNI spec 2.2)', (cmd) =>
    expectError(() => parseCommand({ CNI_COMMAND: cmd }), 'InvalidEnv', /CNI_COMMAND/),
  );
});

describe('required env per command (CNI spec 2.1, skel)', () => {
  const missing: [CniCommand, string, Env, RegExp][] = [];
  for (const cmd of ['ADD', 'CHECK'] as const) {
    missing.push([cmd, 'no CNI_CONTAINERID', { CNI_CONTAINERID: undefined }, /CNI_CONTAINERID is required/]);
    missing.push([cmd, 'no CNI_IFNAME', { CNI_IFNAME: '' }, /CNI_IFNAME is required/]);
    missing.push([cmd, 'no CNI_NETNS', { CNI_NETNS: undefined }, /CNI_NETNS is required/]);
    missing.push([cmd, 'a CNI_NETNS that is not a netns', { CNI_NETNS: '/tmp/not-a-netns' }, /not an existing network namespace/]);
    missing.push([cmd, 'a relative CNI_NETNS', { CNI_NETNS: 'netns/x' }, /not an absolute/]);
  }
  missing.push(['DEL', 'no CNI_CONTAINERID', { CNI_CONTAINERID: '' }, /CNI_CONTAINERID is required/]);
  missing.push(['DEL', 'no CNI_IFNAME', { CNI_IFNAME: undefined }, /CNI_IFNAME is required/]);
  missing.push(['DEL', 'a CNI_NETNS with ".."', { CNI_NETNS: '/var/run/netns/../x' }, /not an absolute/]);
  missing.push(['GC', 'no CNI_PATH', { CNI_PATH: '' }, /CNI_PATH is required for GC/]);

  test.each(missing)('%s with %s -> code 4', (cmd, _what, over, text) => {
    const err = thrown(() => parse(env(cmd, over)));
    expect(err).toMatchObject({ kind: 'InvalidEnv', cniCode: 4 });
    expect(err.message).toMatch(text);
  });

  const ok: [CniCommand, string, Env, object][] = [
    ['ADD', 'full env', {}, { containerId: 'c0ffee', ifName: 'eth0', netns: NETNS }],
    ['CHECK', 'full env', {}, { containerId: 'c0ffee', ifName: 'eth0', netns: NETNS }],
    ['DEL', 'empty CNI_NETNS (netns already gone)', { CNI_NETNS: '' }, { containerId: 'c0ffee', netns: '' }],
    ['DEL', 'no CNI_NETNS', { CNI_NETNS: undefined }, { netns: '' }],
    ['DEL', 'a netns path that no longer exists', { CNI_NETNS: '/var/run/netns/gone' }, { netns: '/var/run/netns/gone' }],
    ['GC', 'only CNI_PATH', { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined, CNI_NETNS: undefined }, { path: ['/opt/cni/bin'] }],
    ['STATUS', 'no env at all', { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined, CNI_NETNS: undefined, CNI_PATH: undefined }, { path: [] }],
    ['VERSION', 'no env at all', { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined, CNI_NETNS: undefined, CNI_PATH: undefined }, {}],
  ];
  test.each(ok)('%s accepts %s', (cmd, _what, over, expected) => {
    const req = parse(env(cmd, over));
    expect(req).toMatchObject({ command: cmd, cniVersion: '1.1.0', ...expected });
    if (cmd === 'GC' || cmd === 'STATUS' || cmd === 'VERSION') {
      expect(req).not.toHaveProperty('containerId');
      expect(req).not.toHaveProperty('netns');
    }
  });

  test('CNI_PATH is split on ":" without empty entries; CNI_ARGS kept raw and parsed', () => {
    const req = parse(env('ADD', { CNI_PATH: '/a::/b:' }));
    expect(req.path).toEqual(['/a', '/b']);
    expect(req.argsRaw).toBe(FULL_ENV['CNI_ARGS']);
    expect(req.args).toEqual({ IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'team', K8S_POD_NAME: 'web-0' });
    expect(req.podRef).toEqual({ namespace: 'team', name: 'web-0' });
  });
});

describe('order of checks: env (4), then decode (6), then version (1), as skel', () => {
  test.each<[string, Env, string, ErrorKind]>([
    ['bad env and bad JSON -> env', env('ADD', { CNI_IFNAME: '' }), '{not json', 'InvalidEnv'],
    ['bad CNI_ARGS and bad JSON -> env', env('ADD', { CNI_ARGS: 'novalue' }), '{not json', 'InvalidEnv'],
    ['missing netns and bad version -> env', env('CHECK', { CNI_NETNS: '' }), conf('0.3.1'), 'InvalidEnv'],
    ['bad JSON and no version -> decode', env('ADD'), '{"cniVersion":', 'DecodeFailure'],
    ['a JSON array -> decode', env('ADD'), '[]', 'DecodeFailure'],
    ['JSON null -> decode', env('DEL'), 'null', 'DecodeFailure'],
    ['good JSON, unsupported version -> version', env('ADD'), conf('0.2.0'), 'IncompatibleVersion'],
  ])('%s', (_title, e, stdin, kind) => expectError(() => parse(e, stdin), kind));
});

describe('container ID syntax (CNI spec 2.2: alnum first, then alnum, "_", ".", "-")', () => {
  test.each(['abc', '0', 'A1', 'a_b.c-d', 'f'.repeat(64), 'x'.repeat(200)])('accepts %p', (id) =>
    expect(parseContainerId(id)).toBe(id),
  );
  test.each(['', '-abc', '_a', '.a', 'a/b', '../x', 'a b', 'a@b', 'a;b', 'x'.repeat(201)])('rejects %p', (id) =>
    expectError(() => parseContainerId(id), 'InvalidEnv', /CNI_CONTAINERID/),
  );
  test('reaches parseRequest', () => expectError(() => parse(env('DEL', { CNI_CONTAINERID: 'a/../b' })), 'InvalidEnv'));
});

describe('interface name syntax (Linux dev_valid_name)', () => {
  test.each(['eth0', 'net1', 'a', 'x'.repeat(15), 'a.b', 'vlan-10', 'é'.repeat(7)])('accepts %p', (n) =>
    expect(parseIfName(n)).toBe(n),
  );
  test.each<[string, RegExp]>([
    ['', /required/],
    ['.', /reserved/],
    ['..', /reserved/],
    ['x'.repeat(16), /longer than 15 bytes/],
    ['é'.repeat(8), /longer than 15 bytes/],
    ['a/b', /'\/'/],
    ['eth0:1', /':'/],
    ['a b', /whitespace/],
    ['a\x01', /control character/],
  ])('rejects %p: %s', (n, why) => expectError(() => parseIfName(n), 'InvalidEnv', why));
});

describe('version rules (CNI spec 2.2 "Version negotiation")', () => {
  test.each<[CniCommand, string, string | null]>([
    ['ADD', conf('0.3.0'), '0.3.0'],
    ['ADD', conf('1.0.0'), '1.0.0'],
    ['ADD', conf('0.2.0'), null],
    ['ADD', conf('2.0.0'), null],
    ['ADD', JSON.stringify({ name: 'no-version' }), null],
    ['DEL', conf('0.3.1'), '0.3.1'],
    ['CHECK', conf('0.3.1'), null],
    ['CHECK', conf('0.4.0'), '0.4.0'],
    ['GC', conf('1.0.0'), null],
    ['GC', conf('1.1.0'), '1.1.0'],
    ['STATUS', conf('1.0.0'), null],
    ['STATUS', conf('1.1.0'), '1.1.0'],
    ['ADD', conf('0.3.1', { cniVersions: ['0.4.0', '1.1.0', '9.9.9'] }), '1.1.0'],
    ['ADD', conf('0.3.1', { cniVersions: ['1.0.0', '0.3.1'] }), '1.0.0'],
    ['ADD', conf('1.0.0', { cniVersions: ['9.9.9'] }), '1.0.0'],
    ['CHECK', conf('0.3.1', { cniVersions: ['0.3.1', '0.4.0'] }), '0.4.0'],
  ])('%s with %s -> %s', (cmd, stdin, expected) => {
    if (expected === null) {
      expect(thrown(() => parse(env(cmd), stdin))).toMatchObject({ kind: 'IncompatibleVersion', cniCode: 1 });
    } else {
      expect(parse(env(cmd), stdin).cniVersion).toBe(expected);
    }
  });
});

describe('parseCniArgs (CNI spec 2.2: K=V;K=V)', () => {
  test.each<[string, Record<string, string>]>([
    ['', {}],
    ['A=1', { A: '1' }],
    ['A=1;B=2;', { A: '1', B: '2' }],
    [';;A=1', { A: '1' }],
    ['A=', { A: '' }],
    ['A=b=c', { A: 'b=c' }],
    ['A=1;A=2', { A: '2' }],
  ])('%p', (raw, expected) => expect(parseCniArgs(raw)).toEqual(expected));
  test.each(['novalue', '=x', 'A=1;bad'])('rejects %p with code 4', (raw) =>
    expectError(() => parseCniArgs(raw), 'InvalidEnv', /CNI_ARGS: invalid pair/),
  );
});

describe('podRefFromArgs', () => {
  test.each<[string, Record<string, string>, object | null]>([
    ['no K8S_POD_NAME -> null (cluster network only)', { K8S_POD_NAMESPACE: 'team' }, null],
    ['empty K8S_POD_NAME -> null', { K8S_POD_NAME: '' }, null],
    ['kubelet', { K8S_POD_NAMESPACE: 'team', K8S_POD_NAME: 'web-0' }, { namespace: 'team', name: 'web-0' }],
    ['podman: no namespace -> default', { K8S_POD_NAME: 'my_container.1' }, { namespace: 'default', name: 'my_container.1' }],
    ['podman: empty namespace -> default', { K8S_POD_NAMESPACE: '', K8S_POD_NAME: 'c1' }, { namespace: 'default', name: 'c1' }],
    [
      'UID kept when given',
      { K8S_POD_NAMESPACE: 'team', K8S_POD_NAME: 'p', K8S_POD_UID: '8d4c1a52-0b6e-4c2f-9f1e-3a7b5c9d0e11' },
      { namespace: 'team', name: 'p', uid: '8d4c1a52-0b6e-4c2f-9f1e-3a7b5c9d0e11' },
    ],
    ['empty UID dropped', { K8S_POD_NAMESPACE: 'team', K8S_POD_NAME: 'p', K8S_POD_UID: '' }, { namespace: 'team', name: 'p' }],
  ])('%s', (_title, args, expected) => {
    const ref = podRefFromArgs(args);
    expect(ref).toEqual(expected);
    if (ref && !('uid' in (expected ?? {}))) expect(ref).not.toHaveProperty('uid');
  });

  test.each<[string, Record<string, string>, RegExp]>([
    ['pod name with "/"', { K8S_POD_NAME: 'a/b' }, /K8S_POD_NAME/],
    ['pod name ending in "-"', { K8S_POD_NAME: 'web-' }, /K8S_POD_NAME/],
    ['upper-case namespace', { K8S_POD_NAMESPACE: 'Team', K8S_POD_NAME: 'p' }, /K8S_POD_NAMESPACE/],
    ['namespace with ".."', { K8S_POD_NAMESPACE: '..', K8S_POD_NAME: 'p' }, /K8S_POD_NAMESPACE/],
    ['UID with "/"', { K8S_POD_NAME: 'p', K8S_POD_UID: '../etc' }, /K8S_POD_UID/],
    ['UID too long', { K8S_POD_NAME: 'p', K8S_POD_UID: 'a'.repeat(65) }, /K8S_POD_UID/],
  ])('rejects %s with code 4', (_title, args, text) => expectError(() => podRefFromArgs(args), 'InvalidEnv', text));
});

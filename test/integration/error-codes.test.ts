/**
 * Every error code Plexus emits, observed where runtimes see it: the JSON bin/plexus (or bin/plexus-ipam, the
 * same binary under its IPAM name) prints on stdout with exit status 1 (CNI spec 2.2 "Error result"). One row
 * per code, each provoking the failure the way a real misconfiguration or fault would. The numbers are pinned
 * in core/errors.test.ts; this suite proves they reach the runtime unchanged.
 *
 * Not observable here, by design: 2 and 51 (reserved for CNI's own meaning; Plexus has no field it refuses as
 * unsupported, and reports an unusable cluster network with 50), 106 (reserved: a DEL without a daemon is
 * queued and succeeds, any other command gets 11 or 50). Seen elsewhere: 115 (the IPAM store refuses a second
 * process for a node: plexusd exits with PLX_STORE_CONFLICT (115), daemon.test.ts) and 999 (an unexpected
 * failure, e.g. a daemon that answers something that is not HTTP: meta-plugin/shim/main.test.ts).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, TestCluster, containerId, run, runProcess, type CniOutput } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

let c: TestCluster;
let bin: string;

/** A delegate script in our own bin dir: `body` runs first, then Debian's bridge does the work. */
function plugin(name: string, body: string): void {
  writeFileSync(join(bin, name), `#!/bin/sh\n${body}\nexec /usr/lib/cni/bridge\n`);
  chmodSync(join(bin, name), 0o755);
}

const bridge = (name: string, type = 'bridge', extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0', name, type, bridge: `brx-${name}`.slice(0, 15), ipam: c.hostLocal(`10.${60 + name.length}.0.0/24`), ...extra,
});

beforeAll(async () => {
  c = await TestCluster.start();
  bin = join(c.dir, 'bin');
  mkdirSync(bin);
  plugin('slow', 'sleep 3');
  plugin('failsdel', '[ "$CNI_COMMAND" = DEL ] && { echo \'{"cniVersion":"1.0.0","code":7,"msg":"cannot delete"}\'; exit 1; }');
  writeFileSync(join(bin, 'nointerp'), '#!/nonexistent/interpreter\n');
  chmodSync(join(bin, 'nointerp'), 0o755);
  await c.writeManifests('nads.yaml', [
    c.nad('blue', bridge('blue')),
    c.nad('red', bridge('red')),
    c.nad('slow', bridge('slow', 'slow')),
    c.nad('failsdel', bridge('failsdel', 'failsdel')),
    c.nad('nointerp', bridge('nointerp', 'nointerp')),
    c.nad('nomaster', { cniVersion: '1.0.0', name: 'nomaster', type: 'macvlan', master: 'plx-no-such-link', ipam: c.hostLocal('10.70.0.0/24') }),
    c.nad('sriov-net', bridge('sriovnet'), 'default', { 'k8s.v1.cni.cncf.io/resourceName': 'example.com/vf' }),
    c.nad('private', bridge('private'), 'team-b'),
  ]);
  await c.restartDaemon({ binDirs: [bin, '/usr/lib/cni'], namespaceIsolation: true, limits: { delegateTimeoutSeconds: 1 } });
});

afterAll(async () => {
  await c?.destroy();
});

/** ADD of a fresh pod whose manifest carries `networks` (JSON or text form), in `namespace`. */
async function addPod(networks?: string | unknown[], namespace = 'default'): Promise<{ out: CniOutput; id: string; netns: string; name: string }> {
  const name = `p${Math.random().toString(16).slice(2, 10)}`;
  await c.writeManifests(`pod-${name}.yaml`, [c.podManifest(name, networks, namespace)]);
  const pod = c.makePod();
  const id = containerId();
  const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name, namespace } });
  return { out, id, netns: pod.path, name };
}

/** bin/plexus-ipam run directly by a runtime, with a network whose ipam section is `ipam`. */
function ipamCall(command: string, id: string, netns: string, ipam: Record<string, unknown>, runtimeConfig?: Record<string, unknown>) {
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'net9', CNI_PATH: '/usr/lib/cni', CNI_ARGS: '' };
  const conf = { cniVersion: '1.0.0', name: 'ipamnet', type: 'bridge', ipam: { type: 'plexus-ipam', socketPath: c.socket, ...ipam }, ...(runtimeConfig ? { runtimeConfig } : {}) };
  return runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-ipam')], env, JSON.stringify(conf));
}

/** The error result a runtime reads: exit 1 and the CNI error JSON on stdout. */
function expectError(out: CniOutput, code: number, text?: RegExp): void {
  expect({ exit: out.code, code: out.json?.code, msg: out.json?.msg }).toMatchObject({ exit: 1, code, ...(text ? { msg: expect.stringMatching(text) } : {}) });
  expect(typeof out.json.cniVersion).toBe('string');
}

test('1 incompatible version: a cniVersion Plexus does not speak', async () => {
  const pod = c.makePod();
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, config: c.plexusConfig('9.9.9') }), 1, /9\.9\.9/);
});

test('3 unknown container: CHECK of a container Plexus never attached', async () => {
  const pod = c.makePod();
  expectError(await c.cni('CHECK', { containerId: containerId(), netns: pod.path }), 3);
});

test('4 invalid env: an interface name the kernel cannot take', async () => {
  const pod = c.makePod();
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, ifName: 'eth0/../x' }), 4, /CNI_IFNAME/);
});

test('5 I/O failure: a delegate binary that cannot be executed', async () => {
  expectError((await addPod('nointerp')).out, 5, /failed to execute plugin "nointerp"/);
});

test('6 decode failure: a config that is not JSON', async () => {
  const pod = c.makePod();
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, config: '{"cniVersion": ' }), 6);
});

test('7 invalid network config: a relative socketPath', async () => {
  const pod = c.makePod();
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, config: c.plexusConfig('1.1.0', { socketPath: 'plexus.sock' }) }), 7, /socketPath/);
});

test('11 try again later and 50 not available: no daemon behind the socket', async () => {
  const pod = c.makePod();
  const config = c.plexusConfig('1.1.0', { socketPath: join(c.dir, 'nobody.sock'), readinessTimeoutSeconds: 0 });
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, config }), 11, /not ready/);
  expectError(await c.cni('STATUS', { containerId: '', config }), 50, /not ready/);
});

test.each<[string, number, string | unknown[], RegExp, string?]>([
  ['100 network not found: the annotation names a NAD that does not exist', 100, 'blue, nope', /default\/nope/],
  ['101 delegate failed: macvlan on a master that does not exist', 101, 'nomaster', /nomaster/],
  ['102 capability missing: a MAC for a network whose plugin does not take one', 102, [{ name: 'blue', mac: '02:00:00:00:00:01' }], /mac/],
  ['103 interface conflict: two networks ask for one interface name (S15)', 103, [{ name: 'blue', interface: 'net5' }, { name: 'red', interface: 'net5' }], /net5/],
  ['104 network not allowed: another namespace under namespaceIsolation (S35)', 104, 'team-b/private', /team-b\/private/],
  ['105 delegate timeout: a delegate slower than limits.delegateTimeoutSeconds', 105, 'slow', /slow/],
  ['110 device unavailable: a NAD with a resourceName and no device for the pod', 110, 'sriov-net', /example\.com\/vf/],
  ['111 kernel failure: a default-route gateway the interface cannot reach (S19)', 111, [{ name: 'blue', 'default-route': ['10.200.0.1'] }], /default/],
  ['112 invalid annotation: ips together with ipam-claim-reference (S21)', 112, [{ name: 'blue', ips: ['10.64.0.9/24'], 'ipam-claim-reference': 'claim' }], /ipam-claim-reference/],
])('%s', async (_title, code, networks, text) => {
  expectError((await addPod(networks)).out, code, text);
});

test('107 DEL incomplete: a delegate whose DEL fails', async () => {
  const { out, id, netns, name } = await addPod('failsdel');
  expect(out.code).toBe(0);
  expectError(await c.cni('DEL', { containerId: id, netns, pod: { name } }), 107, /failsdel|cannot delete/);
});

test('108 CHECK failed: the pod lost an interface Plexus attached', async () => {
  const { out, id, netns, name } = await addPod('blue');
  expect(out.code).toBe(0);
  run('ip', ['-n', netns.split('/').pop()!, 'link', 'del', 'net1']);
  expectError(await c.cni('CHECK', { containerId: id, netns, pod: { name } }), 108, /net1/);
});

test('109 pod mismatch: the runtime names a UID the source does not have', async () => {
  const name = `p${Math.random().toString(16).slice(2, 10)}`;
  await c.writeManifests(`pod-${name}.yaml`, [{ ...c.podManifest(name), metadata: { name, namespace: 'default', uid: 'source-uid', annotations: {} } }]);
  const pod = c.makePod();
  expectError(await c.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name, uid: 'runtime-uid' } }), 109, /UID/);
});

test('113 pool exhausted and 114 address conflict: bin/plexus-ipam as a runtime runs it', async () => {
  const pod = c.makePod();
  const tiny = { ranges: [[{ subnet: '10.91.0.0/30' }]] };
  const held: string[] = [];
  let last: CniOutput | undefined;
  for (let i = 0; i < 4; i++) {
    const id = containerId();
    last = await ipamCall('ADD', id, pod.path, tiny);
    if (last.code !== 0) break;
    held.push(id);
  }
  expect(held.length).toBeGreaterThan(0);
  expectError(last!, 113, /no free IPv4 address/);
  const first = await ipamCall('ADD', containerId(), pod.path, { ranges: [[{ subnet: '10.92.0.0/24' }]] }, { ips: ['10.92.0.7'] });
  expect(first.code).toBe(0);
  expectError(await ipamCall('ADD', containerId(), pod.path, { ranges: [[{ subnet: '10.92.0.0/24' }]] }, { ips: ['10.92.0.1'] }), 114, /10\.92\.0\.1/);
});

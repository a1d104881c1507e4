/**
 * plexusd as a process: its socket, health endpoints, start-up and shutdown behaviour, limits, and how it
 * treats bad manifests and configs. Real daemon, real netns, Debian's reference plugins.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import yaml from 'js-yaml';
import { TestCluster, containerId, ipJson, run, PLEXUSCTL_BIN, PLEXUSD_BIN } from '../helpers/plexus-harness';
import { eventually, expectEventually } from '../helpers/eventually';

jest.setTimeout(120_000);

const ifNames = (netns: string) => ipJson(netns, ['link']).map((l) => l.ifname).sort();

/**
 * A delegate that sleeps, then behaves as Debian's bridge plugin: a stand-in for a slow real plugin. It leaves
 * `started.<CNI_COMMAND>` in `dir` as it starts, so a test knows the request is in flight.
 */
function writeSlowPlugin(dir: string, seconds: number): void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'slowbridge');
  writeFileSync(path, `#!/bin/sh\ntouch "${dir}/started.$CNI_COMMAND"\nsleep ${seconds}\nexec /usr/lib/cni/bridge\n`);
  chmodSync(path, 0o755);
}

/** Until the slow plugin has started `command` (at most 20 s), consuming the marker. */
async function slowPluginStarted(dir: string, command: string): Promise<void> {
  const marker = join(dir, `started.${command}`);
  await eventually(`the slow plugin to start ${command}`, () => existsSync(marker), 20_000, 50);
  rmSync(marker);
}

describe('plexusd process behaviour', () => {
  let c: TestCluster;
  let slowDir: string;

  beforeAll(async () => {
    c = await TestCluster.start();
    slowDir = join(c.dir, 'slowbin');
    writeSlowPlugin(slowDir, 1.5);
    await c.writeManifests('nads.yaml', [
      c.nad('slow', { cniVersion: '1.0.0', type: 'slowbridge', bridge: 'br-slow', ipam: c.hostLocal('10.70.0.0/24') }),
      c.nad('fast', { cniVersion: '1.0.0', type: 'bridge', bridge: 'br-fast', ipam: c.hostLocal('10.71.0.0/24') }),
    ]);
    await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'] });
  });

  afterAll(async () => {
    await c.destroy();
  });

  test('the socket is created 0600 and /healthz, /readyz answer', () => {
    const st = statSync(c.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    const health = run(PLEXUSCTL_BIN, ['health', '--socket', c.socket]);
    expect(health.stdout).toBe('healthz: ok\nreadyz: ready\n');
  });

  test('plexusctl finds the daemon through PLEXUS_SOCKET', () => {
    const r = run(PLEXUSCTL_BIN, ['health'], { env: { ...process.env, PLEXUS_SOCKET: c.socket } });
    expect(r.code).toBe(0);
  });

  test('plexusctl metrics: every answered request counted by command, plugin and result, with its latency, beside the IPAM series', async () => {
    const scrape = () => run(PLEXUSCTL_BIN, ['metrics', '--socket', c.socket]).stdout;
    const value = (text: string, series: string): number => Number(new RegExp(`^${series.replace(/[{}()|.+"]/g, (ch) => `\\${ch}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const node = (await import('node:os')).hostname();
    const ok = `plexus_cni_requests_total{node="${node}",command="ADD",plugin="plexus",result="ok"}`;
    const unknown = `plexus_cni_requests_total{node="${node}",command="CHECK",plugin="plexus",result="3"}`;
    const before = scrape();
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path })).code).toBe(0);
    expect((await c.cni('CHECK', { containerId: containerId(), netns: pod.path })).json.code).toBe(3); // unknown container
    expect((await c.cni('DEL', { containerId: id, netns: pod.path })).code).toBe(0);
    const after = scrape();
    expect(value(after, ok) - value(before, ok)).toBe(1);
    expect(value(after, unknown) - value(before, unknown)).toBe(1);
    const count = (t: string) => [...t.matchAll(/^plexus_cni_request_seconds_count\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(count(after) - count(before)).toBe(3);
    expect(after).toMatch(/^# TYPE plexus_ipam_allocations_total counter$/m);
    expect(after).toMatch(/^# TYPE plexus_ipam_allocation_seconds histogram$/m);
  });

  /**
   * A delegate that logs when each of its runs starts and ends (per container, nanoseconds), sleeping in
   * between, then lets Debian's bridge do the work: the witness for what ran at the same time.
   */
  function writeTimedPlugin(barrier = 1): string {
    const log = join(c.dir, 'timed.log');
    const path = join(slowDir, 'timedbridge');
    writeFileSync(path, [
      '#!/bin/sh',
      `echo "$CNI_CONTAINERID start $(date +%s%N)" >> ${log}`,
      // A barrier, not a sleep: wait (at most 10 s) until `barrier` runs have started. Runs that can run at
      // the same time then always overlap; runs that are serialised wait here in vain and never overlap.
      `i=0; while [ "$(grep -c start ${log})" -lt ${barrier} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`,
      'sleep 0.1',
      'out=$(/usr/lib/cni/bridge); rc=$?',
      `echo "$CNI_CONTAINERID end $(date +%s%N)" >> ${log}`,
      'printf "%s" "$out"; exit $rc',
    ].join('\n'));
    chmodSync(path, 0o755);
    writeFileSync(log, '');
    return log;
  }

  /** [start, end] of each container's delegate runs, from the timed plugin's log. */
  function intervals(log: string): Map<string, [number, number]> {
    const out = new Map<string, [number, number]>();
    for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
      const [id, what, t] = line.split(' ') as [string, string, string];
      const cur = out.get(id) ?? [0, 0];
      cur[what === 'start' ? 0 : 1] = Number(BigInt(t) / 1000n) / 1000; // ms
      out.set(id, cur);
    }
    return out;
  }
  const overlap = (a: [number, number], b: [number, number]) => a[0] < b[1] && b[0] < a[1];

  /** ADD `pods` (name, container) all at once; every ADD must succeed. Returns a DEL for all of them. */
  async function addAtOnce(pods: { name: string; id: string }[]): Promise<() => Promise<void>> {
    await c.writeManifests('pods-timed.yaml', [...new Set(pods.map((p) => p.name))].map((n) => c.podManifest(n, 'timed')));
    const netns = pods.map(() => c.makePod());
    const outs = await Promise.all(pods.map((p, i) => c.cni('ADD', { containerId: p.id, netns: netns[i]!.path, pod: { name: p.name } })));
    expect(outs.map((o) => o.code)).toEqual(pods.map(() => 0));
    return async () => {
      for (const [i, p] of pods.entries()) expect((await c.cni('DEL', { containerId: p.id, netns: netns[i]!.path, pod: { name: p.name } })).code).toBe(0);
    };
  }

  test('S34: different pods are attached in parallel; one pod\'s requests run one at a time', async () => {
    const log = writeTimedPlugin(5); // the four pods and the first sandbox of `solo`
    await c.writeManifests('nad-timed.yaml', [c.nad('timed', { cniVersion: '1.0.0', type: 'timedbridge', bridge: 'br-timed', ipam: c.hostLocal('10.72.0.0/24') })]);
    const parallel = ['par0', 'par1', 'par2', 'par3'].map((name) => ({ name, id: containerId() }));
    const solo = [{ name: 'solo', id: containerId() }, { name: 'solo', id: containerId() }];
    const delAll = await addAtOnce([...parallel, ...solo]);
    const t = intervals(log);
    // Every pair of different pods' delegate runs overlapped in time...
    for (const a of parallel) for (const b of parallel) if (a !== b) expect(overlap(t.get(a.id)!, t.get(b.id)!)).toBe(true);
    // ...and the two sandboxes of one pod never did (S34: one pod's requests are serialised).
    expect(overlap(t.get(solo[0]!.id)!, t.get(solo[1]!.id)!)).toBe(false);
    await delAll();
  });

  test('limits.maxConcurrentRequests: 1 answers different pods one at a time', async () => {
    await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'], limits: { maxConcurrentRequests: 1 } });
    try {
      const log = writeTimedPlugin();
      const pods = ['lim0', 'lim1', 'lim2'].map((name) => ({ name, id: containerId() }));
      const delAll = await addAtOnce(pods);
      const t = intervals(log);
      for (const a of pods) for (const b of pods) if (a !== b) expect(overlap(t.get(a.id)!, t.get(b.id)!)).toBe(false);
      await delAll();
    } finally {
      await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'] });
    }
  });

  test('SIGTERM lets a request in flight finish, then the daemon exits', async () => {
    await c.writeManifests('pod-slow.yaml', [c.podManifest('slowpod', 'slow')]);
    const pod = c.makePod();
    const id = containerId();
    const pending = c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'slowpod' } });
    await slowPluginStarted(slowDir, 'ADD');
    const stopped = c.stopDaemon('SIGTERM');
    const out = await pending;
    await stopped;
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1']);
    await c.startDaemon();
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'slowpod' } })).code).toBe(0);
    expect(c.leases()).toEqual([]);
  });

  test('limits.shutdownGraceSeconds: SIGTERM waits for a request in flight no longer than that, then exits', async () => {
    let cleanup = async (): Promise<void> => undefined;
    // A delegate that outlives the 1 s grace (but not the delegate timeout) and says when it is done.
    const finished = join(c.dir, 'grace.finished');
    writeFileSync(join(slowDir, 'gracebridge'), `#!/bin/sh\ntouch "${slowDir}/started.$CNI_COMMAND"\nsleep 4\ntouch ${finished}\nexec /usr/lib/cni/bridge\n`);
    chmodSync(join(slowDir, 'gracebridge'), 0o755);
    await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'], limits: { shutdownGraceSeconds: 1 } });
    try {
      await c.writeManifests('pod-grace.yaml', [
        c.nad('grace', { cniVersion: '1.0.0', type: 'gracebridge', bridge: 'br-grace', ipam: c.hostLocal('10.74.0.0/24') }),
        c.podManifest('gracepod', 'grace'),
      ]);
      const pod = c.makePod();
      const id = containerId();
      const pending = c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'gracepod' }, config: c.plexusConfig('1.1.0', { readinessTimeoutSeconds: 0 }) });
      await slowPluginStarted(slowDir, 'ADD');
      await c.stopDaemon('SIGTERM');
      cleanup = async () => {
        // As a runtime does after a failed ADD (CNI 2.2): DEL, once the orphaned delegate has finished.
        await eventually('the orphaned delegate to finish', () => c.leases().some((l) => l.startsWith('grace/')), 20_000, 100);
        expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'gracepod' } })).code).toBe(0);
        expect(c.leases()).toEqual([]);
      };
      // The daemon is gone while its delegate is still running: it did not wait for the request to end.
      expect(existsSync(finished)).toBe(false);
      expect(c.log()).toContain('shutting down: finishing requests in flight');
      // The runtime's ADD did not succeed: its connection was closed and the shim found no ready daemon (11).
      expect((await pending).json?.code).toBe(11);
    } finally {
      await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'] });
      await cleanup();
    }
  });

  test('a delegate slower than limits.delegateTimeoutSeconds is killed: error 105, ADD rolled back', async () => {
    await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'], limits: { delegateTimeoutSeconds: 1 } });
    await c.writeManifests('pod-timeout.yaml', [c.podManifest('timeoutpod', 'fast, slow')]);
    const pod = c.makePod();
    const out = await c.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name: 'timeoutpod' } });
    expect(out.json.code).toBe(105);
    expect(out.json.msg).toContain('default/slow');
    expect(ifNames(pod.name)).toEqual(['lo']);
    expect(c.leases()).toEqual([]);
    await c.restartDaemon({ binDirs: [slowDir, '/usr/lib/cni'] });
  });

  test('a runtime UID that differs from the source pod UID is refused (109), nothing attached', async () => {
    const manifest = c.podManifest('uidpod', 'fast') as any;
    manifest.metadata.uid = '11111111-2222-3333-4444-555555555555';
    await c.writeManifests('pod-uid.yaml', [manifest]);
    const pod = c.makePod();
    const bad = await c.cni('ADD', { containerId: containerId(), netns: pod.path, pod: { name: 'uidpod', uid: '99999999-2222-3333-4444-555555555555' } });
    expect(bad.json.code).toBe(109);
    expect(ifNames(pod.name)).toEqual(['lo']);
    const id = containerId();
    const good = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'uidpod', uid: '11111111-2222-3333-4444-555555555555' } });
    expect(good.code).toBe(0);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'uidpod' } })).code).toBe(0);
  });

  test('a malformed manifest is reported and skipped; its neighbours still load', async () => {
    writeFileSync(join(c.manifestDir, 'broken.yaml'), 'kind: [unclosed\n');
    await c.writeManifests('mixed.yaml', [{ kind: 'NetworkAttachmentDefinition', metadata: { name: 'Bad_Name' } }, c.podManifest('mixedpod', 'fast')]);
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'mixedpod' } });
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1']);
    expect(c.log()).toContain('broken.yaml');
    expect(c.log()).toContain('Bad_Name');
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'mixedpod' } })).code).toBe(0);
  });

  test('after SIGKILL the stale socket is replaced on restart', async () => {
    await c.stopDaemon('SIGKILL');
    expect(statSync(c.socket).isSocket()).toBe(true);
    await c.startDaemon();
    expect(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'health']).code).toBe(0);
  });

  test('a second daemon on the same socket refuses to start and leaves the first one serving', () => {
    const r = spawnSync(process.execPath, [PLEXUSD_BIN, '--config', join(c.dir, 'plexusd.yaml')], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('already listening');
    expect(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'health']).code).toBe(0);
  });

  test('115: a second daemon for the same node and IPAM store, on another socket, refuses to start with the code', () => {
    const config = yaml.load(readFileSync(join(c.dir, 'plexusd.yaml'), 'utf8')) as Record<string, unknown>;
    const path = join(c.dir, 'second.yaml');
    writeFileSync(path, JSON.stringify({ ...config, socketPath: join(c.dir, 'second.sock') }));
    const r = spawnSync(process.execPath, [PLEXUSD_BIN, '--config', path], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/plexusd: PLX_STORE_CONFLICT \(115\): node .* is already registered in the IPAM store/);
    expect(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'health']).code).toBe(0);
  });

  test.each([
    ['an unknown key', { clusterNetwork: 'x', socketPath: '/tmp/x.sock', bogus: 1 }, 'bogus'],
    ['a relative socketPath', { clusterNetwork: 'x', socketPath: 'plexus.sock' }, 'socketPath'],
    ['no clusterNetwork', { socketPath: '/tmp/x.sock' }, 'clusterNetwork'],
    ['a wrong type', { clusterNetwork: 'x', limits: { maxConcurrentRequests: 'many' } }, 'maxConcurrentRequests'],
  ])('an invalid config (%s) stops plexusd with a message naming the field', (_t, config, field) => {
    const path = join(c.dir, 'bad-config.json');
    writeFileSync(path, JSON.stringify(config));
    const r = spawnSync(process.execPath, [PLEXUSD_BIN, '--config', path], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toContain(field);
  });
});

// DESIGN decision 2: a queued DEL is never lost. One that fails when replayed stays queued and is retried; one
// that can never be replayed (unreadable, or not a valid request) is moved aside with the reason.
describe('replaying the DEL queue', () => {
  let c: TestCluster;
  const queueDir = () => join(c.stateDir, 'del-queue');
  const queued = (): string[] => readdirSync(queueDir()).filter((f) => f.endsWith('.json'));

  beforeAll(async () => {
    c = await TestCluster.start();
  });

  afterAll(async () => {
    await c.destroy();
  });

  test('an unreadable item and an invalid request are quarantined in del-queue/failed with the reason; the rest replays', async () => {
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path })).code).toBe(0);
    await c.stopDaemon();
    expect((await c.cni('DEL', { containerId: id, netns: pod.path })).code).toBe(0); // queued
    mkdirSync(queueDir(), { recursive: true });
    writeFileSync(join(queueDir(), '000000000000001-garbage.json'), '{not json');
    writeFileSync(join(queueDir(), '000000000000002-invalid.json'), JSON.stringify({ env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: '', CNI_IFNAME: 'eth0' }, config: '{}', queuedAt: 'x' }));
    expect(queued()).toHaveLength(3);
    await c.startDaemon();
    expect(queued()).toEqual([]);
    expect(c.leases()).toEqual([]); // the real DEL was replayed
    const failed = readdirSync(join(queueDir(), 'failed')).sort();
    expect(failed).toEqual(['000000000000001-garbage.json', '000000000000002-invalid.json']);
    const invalid = JSON.parse(readFileSync(join(queueDir(), 'failed', '000000000000002-invalid.json'), 'utf8'));
    expect(invalid.reason).toMatch(/CNI_CONTAINERID/);
    expect(JSON.parse(invalid.body).env.CNI_COMMAND).toBe('DEL'); // the original, kept whole
    // The log file is written asynchronously: the line may land just after the daemon reports ready.
    await expectEventually(() => expect(c.log()).toContain('queued DEL cannot be replayed; moved to del-queue/failed'));
  });

  test('a DEL that fails when replayed stays queued, and is replayed once it can succeed', async () => {
    const bin = join(c.dir, 'faildel-bin');
    mkdirSync(bin, { recursive: true });
    const flag = join(c.dir, 'del-may-succeed');
    // Fails DEL until the flag exists, then behaves as Debian's bridge.
    writeFileSync(join(bin, 'faildel'), `#!/bin/sh
if [ "$CNI_COMMAND" = DEL ] && [ ! -e ${flag} ]; then echo '{"cniVersion":"1.0.0","code":11,"msg":"not yet"}'; exit 1; fi
exec /usr/lib/cni/bridge
`);
    chmodSync(join(bin, 'faildel'), 0o755);
    await c.writeManifests('faildel.yaml', [
      c.nad('faildel', { cniVersion: '1.0.0', type: 'faildel', bridge: 'br-faildel', ipam: c.hostLocal('10.73.0.0/24') }),
      c.podManifest('retried', 'faildel'),
    ]);
    await c.restartDaemon({ binDirs: [bin, '/usr/lib/cni'] });
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'retried' } })).code).toBe(0);
    await c.stopDaemon();
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'retried' } })).code).toBe(0);
    expect(queued()).toHaveLength(1);
    await c.startDaemon();
    expect(queued()).toHaveLength(1); // replay failed: kept, not dropped
    // The log file is written asynchronously: the line may land just after the daemon reports ready.
    await expectEventually(() => expect(c.log()).toContain('queued DEL failed; will retry'));
    // The cluster network was deleted; the network whose DEL failed still holds its address (107, D-2).
    expect(c.leases()).toEqual([expect.stringMatching(/^faildel\//)]);
    writeFileSync(flag, '');
    await c.restartDaemon(); // a start drains again (the periodic retry would, within 10 s)
    expect(queued()).toEqual([]);
    expect(c.leases()).toEqual([]);
  });
});

// Issue 8's defect: the shim's stateDir (CNI config) and plexusd's could differ, and a DEL queued while the
// daemon was down then sat where the daemon never looked, holding the pod's addresses forever.
describe('the shim and plexusd cannot disagree on where queued DELs live', () => {
  let c: TestCluster;
  const elsewhere = () => join(c.dir, 'shim-state');
  const queued = (dir: string): string[] => {
    try {
      return require('node:fs').readdirSync(join(dir, 'del-queue')).filter((f: string) => f.endsWith('.json'));
    } catch {
      return [];
    }
  };

  beforeEach(async () => {
    c = await TestCluster.start();
  });

  afterEach(async () => {
    await c.destroy();
  });

  /** ADD a pod, stop the daemon (and empty /run, as a reboot does), DEL it through bin/plexus with `config`. */
  async function delWhileDown(config: Record<string, unknown>, reboot = false) {
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path })).code).toBe(0);
    expect(c.leases()).toHaveLength(1);
    await c.stopDaemon();
    if (reboot) rmSync(`${c.socket}.state-dir`);
    const out = await c.cni('DEL', { containerId: id, netns: pod.path, config });
    expect(out.code).toBe(0);
    return out;
  }

  test('a shim configured with another stateDir queues where the running daemon publishes its own', async () => {
    expect(require('node:fs').readFileSync(`${c.socket}.state-dir`, 'utf8').trim()).toBe(c.stateDir);
    const out = await delWhileDown(c.plexusConfig('1.1.0', { stateDir: elsewhere() }));
    expect(out.stderr).toContain(`DEL queued in ${c.stateDir}`);
    expect(queued(c.stateDir)).toHaveLength(1);
    expect(queued(elsewhere())).toEqual([]);
    await c.startDaemon();
    await eventually('the queued DEL to be replayed', () => queued(c.stateDir).length === 0 && c.leases().length === 0, 10_000);
  });

  test('plexusd restarted with another stateDir still drains what was queued for it under the old one', async () => {
    const old = c.stateDir;
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path })).code).toBe(0);
    await c.stopDaemon();
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, config: c.plexusConfig('1.1.0', { stateDir: undefined }) })).stderr).toContain(`DEL queued in ${old}`);
    const moved = join(c.dir, 'state-moved');
    await c.restartDaemon({ stateDir: moved });
    await eventually('the DEL queued under the old stateDir to be replayed', () => queued(old).length === 0, 10_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${c.log().slice(-3000)}`);
    });
    expect(readFileSync(`${c.socket}.state-dir`, 'utf8').trim()).toBe(moved);
  });

  test('after a reboot (no published stateDir), plexusd drains the stateDir a plexus config in confDir names for its socket', async () => {
    const config = c.plexusConfig('1.1.0', { stateDir: elsewhere() });
    writeFileSync(join(c.confDir, '00-plexus.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'plexus', plugins: [config] }));
    // The shim had nothing better than its config: it queued there.
    expect((await delWhileDown(config, true)).stderr).toContain(`DEL queued in ${elsewhere()}`);
    expect(queued(c.stateDir)).toEqual([]);
    expect(queued(elsewhere())).toHaveLength(1);
    await c.startDaemon();
    await eventually('the queued DEL to be replayed', () => queued(elsewhere()).length === 0 && c.leases().length === 0, 10_000);
    // The log file is written asynchronously: the line may land just after the daemon reports ready.
    await expectEventually(() => expect(c.log()).toContain('draining its DEL queue too'));
  });
});

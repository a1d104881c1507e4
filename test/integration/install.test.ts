/**
 * `install` and `plexusd uninstall`, as the DaemonSet runs them: binaries into the CNI bin directory by
 * write-then-rename (a plugin being executed keeps its file), the cluster network found among the conflists
 * (empty and unreadable ones skipped), the Plexus conflist written once the daemon is ready and kept through
 * restarts (an ADD sent while plexusd is down waits for it), and uninstall removing the conflist before the
 * binaries (strace, the independent witness, shows the order of the unlinks).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectEventually } from '../helpers/eventually';
import { containerId, PLEXUSCTL_BIN, PLEXUSD_BIN, ROOT, run, runProcess, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(90_000);

describe('install and uninstall', () => {
  let c: TestCluster;
  let binDir = '';
  const conflist = () => join(c.confDir, '00-plexus.conflist');

  beforeAll(async () => {
    c = await TestCluster.start({
      beforeDaemon: async (cluster) => {
        c = cluster;
        binDir = join(cluster.dir, 'opt-cni-bin');
        mkdirSync(binDir);
        // What a node may hold before its primary network: an empty file and a broken one, both before it.
        writeFileSync(join(cluster.confDir, '05-empty.conflist'), '');
        writeFileSync(join(cluster.confDir, '07-broken.conflist'), '{"name": ');
        writeFileSync(join(cluster.confDir, '20-other.conflist'), JSON.stringify(cluster.ptpNetwork('other', '10.98.0.0/24')));
        cluster.setDaemonConfig({ clusterNetwork: undefined, install: { cniBinDir: binDir, fromDir: join(ROOT, 'bin') } });
      },
    });
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('binaries and delegate names are installed; the first valid conflist is the cluster network; the conflist names this daemon', async () => {
    for (const name of ['plexus', 'plexus-shim']) expect(readFileSync(join(binDir, name)).equals(readFileSync(join(ROOT, 'bin', name)))).toBe(true);
    for (const alias of ['plexus-ipam', 'plexus-routed', 'plexus-sriov', 'plexus-dpdk']) {
      expect(lstatSync(join(binDir, alias)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(binDir, alias))).toBe('plexus');
    }
    await expectEventually(() => expect(c.log()).toMatch(/"conflist":"10-cluster.conflist","clusterNetwork":"cluster".*cluster network: the primary conflist/));
    const installed = JSON.parse(readFileSync(conflist(), 'utf8'));
    expect(installed).toMatchObject({ name: 'plexus', plugins: [{ type: 'plexus', socketPath: c.socket, stateDir: c.stateDir }] });
    // A pod through the installed binary and conflist, as the runtime would run them.
    const out = await cniWithInstalled('ADD', c.makePod().path);
    expect({ code: out.code, ips: out.json?.ips?.map((i: { address: string }) => i.address) }).toEqual({ code: 0, ips: [expect.stringMatching(/^10\.99\.0\./)] });
  });

  test('a plugin being executed while plexusd installs again keeps running (write-then-rename: no "text file busy")', async () => {
    await c.stopDaemon();
    copyFileSync('/bin/sleep', join(binDir, 'plexus'));
    const busy = spawn(join(binDir, 'plexus'), ['30'], { stdio: 'ignore' });
    try {
      await c.startDaemon();
      expect(readFileSync(join(binDir, 'plexus')).equals(readFileSync(join(ROOT, 'bin/plexus')))).toBe(true);
      expect(busy.exitCode).toBeNull();
      expect(readlinkSync(`/proc/${busy.pid}/exe`)).toMatch(/\(deleted\)$/); // it runs the old file, unlinked by the rename
    } finally {
      busy.kill('SIGKILL');
    }
  });

  test('the conflist stays while plexusd restarts, and an ADD sent meanwhile waits for the daemon instead of failing', async () => {
    await c.stopDaemon();
    expect(existsSync(conflist())).toBe(true);
    const pending = cniWithInstalled('ADD', c.makePod().path);
    await new Promise((r) => setTimeout(r, 1500));
    await c.startDaemon();
    const out = await pending;
    expect({ code: out.code, out: out.stdout.slice(0, 300) }).toMatchObject({ code: 0 });
  });

  test('on a node whose primary CNI has not written its conflist yet, plexusd waits, not ready, and goes on once a valid one appears', async () => {
    await c.stopDaemon();
    const aside = join(c.dir, 'conf-aside');
    mkdirSync(aside);
    for (const f of readdirSync(c.confDir)) renameSync(join(c.confDir, f), join(aside, f)); // a fresh node: nothing yet
    const starting = c.startDaemon(30_000);
    await expectEventually(() => expect(c.log()).toMatch(/waiting for the primary network's conflist/));
    writeFileSync(join(c.confDir, '10-cluster.conflist'), ''); // the primary CNI's installer, half-way
    await new Promise((r) => setTimeout(r, 1500));
    expect(existsSync(conflist())).toBe(false);
    expect(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'health'], { allowFail: true }).code).not.toBe(0);
    copyFileSync(join(aside, '10-cluster.conflist'), join(c.confDir, '10-cluster.conflist'));
    await starting;
    expect(JSON.parse(readFileSync(conflist(), 'utf8'))).toMatchObject({ plugins: [{ type: 'plexus', socketPath: c.socket }] });
    expect(c.log()).toMatch(/"conflist":"10-cluster.conflist","clusterNetwork":"cluster"/);
    for (const f of readdirSync(aside)) if (!existsSync(join(c.confDir, f))) renameSync(join(aside, f), join(c.confDir, f));
  });

  test('plexusd uninstall removes the conflist first, then the binaries', async () => {
    await c.stopDaemon();
    const trace = run('strace', ['-f', '-e', 'trace=unlink,unlinkat', '-o', join(c.dir, 'uninstall.strace'), 'ip', 'netns', 'exec', c.node, PLEXUSD_BIN, 'uninstall', '--config', join(c.dir, 'plexusd.yaml')], { allowFail: true });
    expect(trace.code).toBe(0);
    const unlinks = [...readFileSync(join(c.dir, 'uninstall.strace'), 'utf8').matchAll(/unlink(?:at)?\([^"]*"([^"]+)"/g)].map((m) => m[1]!).filter((p) => p.startsWith(binDir) || p === conflist());
    expect(unlinks[0]).toBe(conflist());
    expect(unlinks.slice(1).sort()).toEqual(['plexus', 'plexus-dpdk', 'plexus-ipam', 'plexus-routed', 'plexus-shim', 'plexus-sriov'].map((n) => join(binDir, n)));
    expect(existsSync(conflist())).toBe(false);
    for (const n of ['plexus', 'plexus-shim', 'plexus-ipam']) expect(existsSync(join(binDir, n))).toBe(false);
    await c.startDaemon(); // for destroy; it installs again
  });

  /** The installed forwarder with the installed conflist's plugin config, in the node, as a runtime runs it. */
  function cniWithInstalled(command: string, netns: string) {
    const list = JSON.parse(readFileSync(conflist(), 'utf8'));
    const config = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0], readinessTimeoutSeconds: 20 };
    return runProcess('ip', ['netns', 'exec', c.node, join(binDir, 'plexus')], {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: containerId(), CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: binDir, CNI_ARGS: '',
    }, JSON.stringify(config));
  }
});

/**
 * A real container runtime calling Plexus: podman 4.3 with its CNI backend executes bin/plexus exactly as
 * it executes any CNI plugin (it passes only K8S_POD_NAME, so the namespace is `default`). The container
 * itself reports its interfaces; the daemon runs in a node netns as in the other suites.
 */
import { mkdirSync, symlinkSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster, ROOT, run } from '../helpers/plexus-harness';

jest.setTimeout(180_000);

describe('podman (CNI backend) runs containers through Plexus', () => {
  let c: TestCluster;
  let env: NodeJS.ProcessEnv;
  const image = 'localhost/plexus-busybox:test';

  beforeAll(async () => {
    c = await TestCluster.start();
    await c.writeManifests('nads.yaml', [c.nad('blue', { cniVersion: '1.0.0', type: 'bridge', bridge: 'br-blue', ipam: c.hostLocal('10.50.0.0/24') })]);
    const p = join(c.dir, 'podman');
    for (const d of ['cnibin', 'net.d', 'rootfs/bin', 'rootfs/proc', 'rootfs/sys', 'rootfs/dev', 'rootfs/etc']) mkdirSync(join(p, d), { recursive: true });
    for (const b of ['plexus', 'plexus-shim']) symlinkSync(join(ROOT, 'bin', b), join(p, 'cnibin', b));
    writeFileSync(join(p, 'net.d/plexus.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'plexus', plugins: [{ type: 'plexus', socketPath: c.socket, stateDir: c.stateDir }] }));
    writeFileSync(join(p, 'containers.conf'), [
      '[containers]', 'default_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]',
      '[network]', 'network_backend = "cni"', `cni_plugin_dirs = ["${p}/cnibin"]`, `network_config_dir = "${p}/net.d"`,
      '[engine]', 'runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'events_logger = "none"', '',
    ].join('\n'));
    writeFileSync(join(p, 'storage.conf'), ['[storage]', 'driver = "vfs"', `graphroot = "${p}/graph"`, `runroot = "${p}/run"`, ''].join('\n'));
    run('cp', ['/usr/bin/busybox', join(p, 'rootfs/bin/busybox')]);
    for (const cmd of ['sh', 'ip', 'cat']) symlinkSync('busybox', join(p, 'rootfs/bin', cmd));
    run('tar', ['-C', join(p, 'rootfs'), '-cf', join(p, 'rootfs.tar'), '.']);
    env = { ...process.env, CONTAINERS_CONF: join(p, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(p, 'storage.conf') };
    run('podman', ['import', join(p, 'rootfs.tar'), image], { env });
  });

  afterAll(async () => {
    run('podman', ['rm', '--all', '--force'], { env, allowFail: true });
    run('podman', ['system', 'reset', '--force'], { env, allowFail: true });
    await c.destroy();
  });

  test('a container named after a pod gets the cluster network and the pod\'s annotation networks', async () => {
    const name = `plxpod-${c.id}`;
    await c.writeManifests('pod.yaml', [c.podManifest(name, 'blue')]);
    const podman = run('podman', ['run', '--rm', '--name', name, '--network', 'plexus', image, 'ip', '-o', '-4', 'addr'], { env });
    expect(podman.stdout).toMatch(/eth0\s+inet 10\.99\.0\.\d+\/24/);
    expect(podman.stdout).toMatch(/net1\s+inet 10\.50\.0\.\d+\/24/);
    // --rm made podman DEL the sandbox: every address is released and no record is left.
    expect(c.leases()).toEqual([]);
    const records = join(c.stateDir, 'records');
    expect(existsSync(records) ? readdirSync(records).filter((f) => f.endsWith('.json')) : []).toEqual([]);
  });

  test('a container no pod manifest describes gets the cluster network only', () => {
    const podman = run('podman', ['run', '--rm', '--name', `plxlone-${c.id}`, '--network', 'plexus', image, 'ip', '-o', '-4', 'addr'], { env });
    expect(podman.stdout).toMatch(/eth0\s+inet 10\.99\.0\.\d+\/24/);
    expect(podman.stdout).not.toMatch(/net1/);
    expect(c.leases()).toEqual([]);
  });
});

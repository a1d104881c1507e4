/**
 * The meta-plugin end to end, as root: a real plexusd in a node netns, real pod netns, Debian's reference
 * plugins as delegates, bin/plexus executed as a runtime would. Effects are checked with `ip` and host-local's
 * lease files, not only with Plexus's own answers. Spec rules are cited per test.
 */
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster, containerId, ipJson, run, PLEXUSCTL_BIN } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

const ifNames = (netns: string) => ipJson(netns, ['link']).map((l) => l.ifname).sort();
const addrsOf = (netns: string, ifname: string) =>
  (ipJson(netns, ['addr', 'show', 'dev', ifname])[0]?.addr_info ?? []).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);
const recordFiles = (c: TestCluster) => (existsSync(join(c.stateDir, 'records')) ? readdirSync(join(c.stateDir, 'records')).filter((f) => f.endsWith('.json')) : []);
const queueFiles = (c: TestCluster) => (existsSync(join(c.stateDir, 'del-queue')) ? readdirSync(join(c.stateDir, 'del-queue')).filter((f) => f.endsWith('.json')) : []);

function bridgeNet(c: TestCluster, bridge: string, subnet: string, extra: Record<string, unknown> = {}) {
  return { cniVersion: '1.0.0', type: 'bridge', bridge, ipam: c.hostLocal(subnet), ...extra };
}

describe('meta-plugin with reference plugins', () => {
  let c: TestCluster;
  let baseNads: Record<string, unknown>[];

  beforeAll(async () => {
    c = await TestCluster.start();
    // A veth pair inside the node is the macvlan parent (no dummy links here).
    c.inNode('ip', ['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p']);
    c.inNode('ip', ['link', 'set', 'uplink0', 'up']);
    c.inNode('ip', ['link', 'set', 'uplink0p', 'up']);
    baseNads = [
      c.nad('blue', bridgeNet(c, 'br-blue', '10.50.0.0/24')),
      c.nad('red', bridgeNet(c, 'br-red', '10.51.0.0/24')),
      c.nad('mv', { cniVersion: '1.0.0', name: 'mv', plugins: [{ type: 'macvlan', master: 'uplink0', mode: 'bridge', ipam: c.hostLocal('10.52.0.0/24') }, { type: 'tuning', capabilities: { mac: true } }] }),
      c.nad('static', { cniVersion: '1.0.0', name: 'static', plugins: [{ type: 'bridge', bridge: 'br-static', ipam: { type: 'static' }, capabilities: { ips: true } }, { type: 'tuning', capabilities: { mac: true } }] }),
      c.nad('broken', { cniVersion: '1.0.0', type: 'macvlan', master: 'no-such-link', ipam: c.hostLocal('10.53.0.0/24') }),
      c.nad('gw', bridgeNet(c, 'br-gw', '10.54.0.0/24', { isGateway: true })),
      c.nad('other-ns-net', bridgeNet(c, 'br-other', '10.55.0.0/24'), 'team-b'),
    ];
    await c.writeManifests('nads.yaml', baseNads);
  });

  afterAll(async () => {
    await c.destroy();
  });

  async function addPod(name: string, networks?: string | unknown[], opts: { version?: string; extraAnnotations?: Record<string, string> } = {}) {
    await c.writeManifests(`pod-${name}.yaml`, [c.podManifest(name, networks, 'default', opts.extraAnnotations)]);
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name }, config: c.plexusConfig(opts.version ?? '1.1.0') });
    return { pod, id, out, name };
  }

  test.each([
    ['0 extra networks (S29: cluster network only)', 'zero', undefined, ['eth0', 'lo']],
    ['1 extra network', 'one', 'blue', ['eth0', 'lo', 'net1']],
    ['3 extra networks in order, net1..net3 (S9, S15)', 'three', 'blue, red, mv', ['eth0', 'lo', 'net1', 'net2', 'net3']],
  ])('ADD/CHECK/DEL a pod with %s', async (_t, name, networks, expected) => {
    const { pod, id, out } = await addPod(name, networks);
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(expected);
    // The runtime gets the cluster network's result only (as Multus does), in its own version.
    expect(out.json.cniVersion).toBe('1.1.0');
    expect(out.json.ips[0].address).toMatch(/^10\.99\.0\.\d+\/24$/);
    expect(addrsOf(pod.name, 'eth0')).toEqual([out.json.ips[0].address]);
    // S26/S27: status has one default entry and one per attachment, names namespaced.
    const status = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'status', `default/${name}`]).stdout);
    expect(status.filter((s: any) => s.default)).toHaveLength(1);
    expect(status).toHaveLength(expected.length - 1);
    for (const s of status.slice(1)) expect(s.name).toMatch(/^default\//);
    for (const s of status) expect(addrsOf(pod.name, s.interface).map((a: string) => a.split('/')[0])).toEqual(s.ips);
    expect((await c.cni('CHECK', { containerId: id, netns: pod.path, pod: { name } })).code).toBe(0);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name } })).code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['lo']);
    expect(c.leases()).toEqual([]);
    expect(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'status', `default/${name}`], { allowFail: true }).code).toBe(1);
  });

  test('S22: the same NAD twice gives two attachments and two status entries', async () => {
    const { pod, id, out } = await addPod('twice', 'blue,blue');
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1', 'net2']);
    const a = addrsOf(pod.name, 'net1')[0];
    const b = addrsOf(pod.name, 'net2')[0];
    expect(a).not.toEqual(b);
    const status = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'status', 'default/twice']).stdout);
    expect(status.map((s: any) => s.name)).toEqual(['cluster', 'default/blue', 'default/blue']);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'twice' } })).code).toBe(0);
    expect(c.leases()).toEqual([]);
  });

  test('S14, S15, S13: custom interface name, MAC and static IPs reach the pod', async () => {
    const networks = [
      { name: 'mv', interface: 'data0', mac: '02:11:22:33:44:55' },
      { name: 'static', interface: 'sig0', ips: ['10.60.0.7/24', 'fd00:60::7/64'], mac: '02:aa:bb:cc:dd:ee' },
    ];
    const { pod, id, out } = await addPod('custom', networks);
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['data0', 'eth0', 'lo', 'sig0']);
    expect(ipJson(pod.name, ['link', 'show', 'data0'])[0].address).toBe('02:11:22:33:44:55');
    expect(ipJson(pod.name, ['link', 'show', 'sig0'])[0].address).toBe('02:aa:bb:cc:dd:ee');
    expect(addrsOf(pod.name, 'sig0').sort()).toEqual(['10.60.0.7/24', 'fd00:60::7/64']);
    const status = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'status', 'default/custom']).stdout);
    expect(status[2]).toMatchObject({ name: 'default/static', interface: 'sig0', ips: ['10.60.0.7', 'fd00:60::7'], mac: '02:aa:bb:cc:dd:ee', default: false });
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'custom' } })).code).toBe(0);
  });

  test('S5: a missing NAD fails ADD naming it, and leaves nothing in the netns', async () => {
    const { pod, out } = await addPod('missing', 'blue, nope');
    expect(out.code).toBe(1);
    expect(out.json.code).toBe(100);
    expect(out.json.msg).toContain('default/nope');
    expect(ifNames(pod.name)).toEqual(['lo']);
    expect(c.leases()).toEqual([]);
    expect(recordFiles(c)).toEqual([]);
  });

  test('S32: a delegate failing mid-ADD rolls back the earlier attachments', async () => {
    const { pod, out } = await addPod('midfail', 'blue, red, broken');
    expect(out.code).toBe(1);
    expect(out.json.code).toBe(101); // macvlan's own failure, as a delegate failure
    expect(out.json.msg).toContain('default/broken');
    expect(out.json.msg).toContain('net3');
    // Witnesses: the pod has only lo, no host-local address is held, the node has no veth left for it.
    expect(ifNames(pod.name)).toEqual(['lo']);
    expect(c.leases()).toEqual([]);
    expect(recordFiles(c)).toEqual([]);
  });

  test('S19: default-route moves the default route to the requested interface', async () => {
    const { pod, id, out } = await addPod('gwpod', [{ name: 'gw', 'default-route': ['10.54.0.1'] }]);
    expect(out.code).toBe(0);
    const defaults = ipJson(pod.name, ['route', 'show', 'default']);
    expect(defaults).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.54.0.1', dev: 'net1' })]);
    // The recorded and returned results say the same: the cluster result lost its default route.
    expect((out.json.routes ?? []).filter((r: any) => r.dst === '0.0.0.0/0')).toEqual([]);
    const status = JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'status', 'default/gwpod']).stdout);
    expect(status[1]['default-route']).toEqual(['10.54.0.1']);
    expect(status[0]['default-route']).toBeUndefined();
    expect((await c.cni('CHECK', { containerId: id, netns: pod.path, pod: { name: 'gwpod' } })).code).toBe(0);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'gwpod' } })).code).toBe(0);
  });

  test('S13-S19: an invalid annotation is ignored with a warning; the pod gets the cluster network', async () => {
    const { pod, id, out } = await addPod('badann', [{ name: 'blue', mac: 'not-a-mac' }]);
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo']);
    expect(c.log()).toContain('not-a-mac');
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'badann' } })).code).toBe(0);
  });

  test('S13: ips on a network whose plugins lack the ips capability fails the ADD, nothing left', async () => {
    const { pod, out } = await addPod('nocap', [{ name: 'blue', ips: ['10.50.0.99/24'] }]);
    expect(out.code).toBe(1);
    expect(out.json.code).toBe(102);
    expect(out.json.msg).toMatch(/blue.*ips|ips.*blue/);
    expect(ifNames(pod.name)).toEqual(['lo']);
  });

  test('DEL twice and containerd-style DEL with empty CNI_NETNS succeed and release once', async () => {
    const { pod, id, out } = await addPod('deltwice', 'blue');
    expect(out.code).toBe(0);
    expect(c.leases()).toHaveLength(2);
    const del1 = await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'deltwice' } });
    const del2 = await c.cni('DEL', { containerId: id, netns: '', pod: { name: 'deltwice' } });
    const del3 = await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'deltwice' } });
    expect([del1.code, del2.code, del3.code]).toEqual([0, 0, 0]);
    expect(c.leases()).toEqual([]);
    expect(recordFiles(c)).toEqual([]);
  });

  test('DEL after the netns is deleted succeeds and releases the addresses', async () => {
    const { pod, id, out } = await addPod('nsgone', 'blue, red');
    expect(out.code).toBe(0);
    run('ip', ['netns', 'del', pod.name]);
    const del = await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'nsgone' } });
    expect(del.code).toBe(0);
    expect(c.leases()).toEqual([]);
    run('ip', ['netns', 'add', pod.name]); // the harness deletes it by name later
  });

  test('a NAD changed or deleted after ADD does not matter to DEL (the record is used)', async () => {
    const { pod, id, out } = await addPod('nadchange', 'red');
    expect(out.code).toBe(0);
    await c.writeManifests('nads-extra.yaml', [c.nad('red', bridgeNet(c, 'br-elsewhere', '10.59.0.0/24'), 'team-c')]);
    const objects = [c.nad('blue', bridgeNet(c, 'br-blue', '10.50.0.0/24'))];
    await c.writeManifests('nads.yaml', objects); // "red" is gone from default
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'nadchange' } })).code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['lo']);
    expect(c.leases()).toEqual([]);
    rmSync(join(c.manifestDir, 'nads-extra.yaml'));
    await c.writeManifests('nads.yaml', baseNads);
  });

  test('CHECK catches a deleted interface and names it', async () => {
    const { pod, id, out } = await addPod('checkme', 'blue, red');
    expect(out.code).toBe(0);
    expect((await c.cni('CHECK', { containerId: id, netns: pod.path, pod: { name: 'checkme' } })).code).toBe(0);
    run('ip', ['-n', pod.name, 'link', 'del', 'net2']);
    const check = await c.cni('CHECK', { containerId: id, netns: pod.path, pod: { name: 'checkme' } });
    expect(check.code).toBe(1);
    expect(check.json.msg).toContain('net2');
    expect(check.json.msg).not.toContain('net1 ');
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'checkme' } })).code).toBe(0);
    expect(c.leases()).toEqual([]);
  });

  test('GC removes attachments not in cni.dev/valid-attachments and keeps the valid ones', async () => {
    const keep = await addPod('gckeep', 'blue');
    const stale = await addPod('gcstale', 'blue');
    expect(keep.out.code).toBe(0);
    expect(stale.out.code).toBe(0);
    const config = c.plexusConfig('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] });
    const gc = await c.cni('GC', { containerId: '', config, env: { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined } });
    expect(gc.code).toBe(0);
    expect(ifNames(stale.pod.name)).toEqual(['lo']);
    expect(ifNames(keep.pod.name)).toEqual(['eth0', 'lo', 'net1']);
    expect(c.leases()).toHaveLength(2);
    expect((await c.cni('DEL', { containerId: keep.id, netns: keep.pod.path, pod: { name: 'gckeep' } })).code).toBe(0);
    expect(c.leases()).toEqual([]);
  });

  test.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('ADD answers in the runtime version %s', async (version) => {
    const name = `v${version.replace(/\./g, '')}`;
    const { pod, id, out } = await addPod(name, 'blue', { version });
    expect(out.code).toBe(0);
    expect(out.json.cniVersion).toBe(version);
    if (version.startsWith('0.')) expect(out.json.ips[0].version).toBe('4');
    else expect(out.json.ips[0].version).toBeUndefined();
    const del = await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name }, config: c.plexusConfig(version) });
    expect(del.code).toBe(0);
  });

  test('podman names only K8S_POD_NAME: namespace default is used', async () => {
    await c.writeManifests('pod-podman.yaml', [c.podManifest('podmanpod', 'blue')]);
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, args: 'IgnoreUnknown=1;K8S_POD_NAME=podmanpod' });
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1']);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, args: 'IgnoreUnknown=1;K8S_POD_NAME=podmanpod' })).code).toBe(0);
  });

  test('a runtime that names no pod gets the cluster network only', async () => {
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path });
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo']);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path })).code).toBe(0);
  });

  test('S35: with namespaceIsolation a pod cannot select a NAD of another namespace', async () => {
    await c.restartDaemon({ namespaceIsolation: true, globalNamespaces: ['kube-system'] });
    try {
      const { pod, out } = await addPod('isolated', 'team-b/other-ns-net');
      expect(out.code).toBe(1);
      expect(out.json.code).toBe(104);
      expect(out.json.msg).toContain('team-b/other-ns-net');
      expect(ifNames(pod.name)).toEqual(['lo']);
    } finally {
      await c.restartDaemon({});
    }
  });

  test('S35: with namespaceIsolation a pod may still select a NAD of its own namespace and of a global namespace', async () => {
    await c.writeManifests('nad-global.yaml', [c.nad('shared', bridgeNet(c, 'br-shared', '10.56.0.0/24'), 'kube-system')]);
    await c.restartDaemon({ namespaceIsolation: true, globalNamespaces: ['kube-system'] });
    try {
      await c.writeManifests('pod-teamb.yaml', [c.podManifest('insider', 'other-ns-net, kube-system/shared', 'team-b')]);
      const pod = c.makePod();
      const id = containerId();
      const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'insider', namespace: 'team-b' } });
      expect(out.code).toBe(0);
      expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1', 'net2']);
      expect(addrsOf(pod.name, 'net1')[0]).toMatch(/^10\.55\.0\./); // team-b/other-ns-net, its own namespace
      expect(addrsOf(pod.name, 'net2')[0]).toMatch(/^10\.56\.0\./); // kube-system/shared, a global namespace
      expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'insider', namespace: 'team-b' } })).code).toBe(0);
    } finally {
      await c.restartDaemon({});
    }
  });

  test('the file source notices a new NAD without a restart', async () => {
    await c.writeManifests('late.yaml', [c.nad('late', bridgeNet(c, 'br-late', '10.58.0.0/24'))]);
    const { pod, id, out } = await addPod('latecomer', 'late');
    expect(out.code).toBe(0);
    expect(ifNames(pod.name)).toEqual(['eth0', 'lo', 'net1']);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'latecomer' } })).code).toBe(0);
    rmSync(join(c.manifestDir, 'late.yaml'));
  });

  // Timing (pods in parallel, one pod serialised, S34) is proven in daemon.test.ts with a delegate that logs its runs.
  test('four pods ADDed at once all attach with distinct addresses, and DEL frees every lease', async () => {
    const names = ['par0', 'par1', 'par2', 'par3'];
    await c.writeManifests('pods-par.yaml', names.map((n) => c.podManifest(n, 'blue, red')));
    const pods = names.map((name) => ({ name, pod: c.makePod(), id: containerId() }));
    const outs = await Promise.all(pods.map((p) => c.cni('ADD', { containerId: p.id, netns: p.pod.path, pod: { name: p.name } })));
    expect(outs.map((o) => o.code)).toEqual([0, 0, 0, 0]);
    const ips = pods.map((p) => addrsOf(p.pod.name, 'net1')[0]);
    expect(new Set(ips).size).toBe(4);
    const dels = await Promise.all(pods.map((p) => c.cni('DEL', { containerId: p.id, netns: p.pod.path, pod: { name: p.name } })));
    expect(dels.map((o) => o.code)).toEqual([0, 0, 0, 0]);
    expect(c.leases()).toEqual([]);
  });

  test('DEL while the daemon is stopped is queued, then drained on restart (addresses freed)', async () => {
    const { pod, id, out } = await addPod('queued', 'blue');
    expect(out.code).toBe(0);
    expect(c.leases()).toHaveLength(2);
    await c.stopDaemon();
    const del = await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'queued' } });
    expect(del.code).toBe(0);
    expect(queueFiles(c)).toHaveLength(1);
    expect(c.leases()).toHaveLength(2); // nothing released yet: the daemon is down
    await c.startDaemon();
    expect(queueFiles(c)).toEqual([]);
    expect(c.leases()).toEqual([]);
    expect(ifNames(pod.name)).toEqual(['lo']);
  });
});

describe('CNI protocol edge cases', () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await TestCluster.start();
  });
  afterAll(async () => {
    await c.destroy();
  });

  test('VERSION lists every supported version', async () => {
    const out = await c.cni('VERSION', { containerId: '', config: { cniVersion: '1.0.0' } });
    expect(out.code).toBe(0);
    expect(out.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  test('STATUS succeeds when the daemon and cluster network are ready, 50 when the daemon is down', async () => {
    expect((await c.cni('STATUS', { containerId: '' })).code).toBe(0);
    await c.stopDaemon();
    const down = await c.cni('STATUS', { containerId: '', config: c.plexusConfig('1.1.0', { readinessTimeoutSeconds: 0.3 }) });
    expect(down.code).toBe(1);
    expect(down.json.code).toBe(50);
    await c.startDaemon();
  });

  test('STATUS reports 50 when the cluster network cannot be found', async () => {
    rmSync(join(c.confDir, '10-cluster.conflist'));
    const out = await c.cni('STATUS', { containerId: '' });
    expect(out.json.code).toBe(50);
    writeFileSync(join(c.confDir, '10-cluster.conflist'), JSON.stringify(c.ptpNetwork('cluster', '10.99.0.0/24')));
    expect((await c.cni('STATUS', { containerId: '' })).code).toBe(0);
  });

  const good = () => ({ containerId: containerId(), netns: c.makePod().path });
  test.each([
    ['malformed JSON', 6, () => ({ ...good(), config: '{"cniVersion": "1.0.0",' })],
    ['a config that is not an object', 6, () => ({ ...good(), config: '[1,2]' })],
    ['missing CNI_CONTAINERID', 4, () => ({ ...good(), env: { CNI_CONTAINERID: undefined } })],
    ['missing CNI_NETNS on ADD', 4, () => ({ ...good(), netns: '' })],
    ['a CNI_NETNS that is not a netns', 4, () => ({ ...good(), netns: '/etc/hostname' })],
    ['a relative CNI_NETNS', 4, () => ({ ...good(), netns: 'var/run/netns/x' })],
    ['missing CNI_IFNAME', 4, () => ({ ...good(), env: { CNI_IFNAME: undefined } })],
    ['an unsupported cniVersion', 1, () => ({ ...good(), config: c.plexusConfig('0.2.0') })],
    ['an unknown cniVersion', 1, () => ({ ...good(), config: c.plexusConfig('9.9.9') })],
    ['a container ID with a slash', 4, () => ({ ...good(), containerId: '../../etc/passwd' })],
    ['a container ID starting with a dot', 4, () => ({ ...good(), containerId: '.hidden' })],
    ['an ifname longer than 15 bytes', 4, () => ({ ...good(), ifName: 'a-very-long-ifname0' })],
    ['an ifname with a slash', 4, () => ({ ...good(), ifName: 'eth/0' })],
    ['the ifname ".."', 4, () => ({ ...good(), ifName: '..' })],
    ['an ifname with a space', 4, () => ({ ...good(), ifName: 'eth 0' })],
    ['a CNI_ARGS pair without "="', 4, () => ({ ...good(), args: 'IgnoreUnknown=1;garbage' })],
    ['an invalid pod namespace', 4, () => ({ ...good(), args: 'K8S_POD_NAMESPACE=Bad_NS;K8S_POD_NAME=x' })],
    ['an unknown CNI_COMMAND', 4, () => ({ ...good(), env: { CNI_COMMAND: 'EXPLODE' } })],
  ])('ADD with %s fails with code %d and writes nothing', async (_t, code, make) => {
    const call = make() as any;
    const command = call.env?.CNI_COMMAND ?? 'ADD';
    const out = await c.cni(command, call);
    expect(out.code).not.toBe(0);
    expect(out.json.code).toBe(code);
    expect(typeof out.json.msg).toBe('string');
    expect(recordFiles(c)).toEqual([]);
    expect(queueFiles(c)).toEqual([]);
    expect(c.leases()).toEqual([]);
    if (call.netns?.startsWith('/var/run/netns/')) expect(ifNames(call.netns.split('/').pop())).toEqual(['lo']);
  });

  test('CHECK needs cniVersion >= 0.4.0 and GC needs 1.1.0 (code 1)', async () => {
    const check = await c.cni('CHECK', { ...good(), config: c.plexusConfig('0.3.1') });
    expect(check.json.code).toBe(1);
    const gc = await c.cni('GC', { containerId: '', config: c.plexusConfig('1.0.0') });
    expect(gc.json.code).toBe(1);
  });

  test('DEL with a bad container ID is rejected even while the daemon is down: nothing queued', async () => {
    await c.stopDaemon();
    const out = await c.cni('DEL', { containerId: '-bad', netns: '' });
    expect(out.json.code).toBe(4);
    expect(queueFiles(c)).toEqual([]);
    await c.startDaemon();
  });

  test('ADD waits for the daemon to become ready, up to readinessTimeoutSeconds', async () => {
    await c.stopDaemon();
    const pod = c.makePod();
    const id = containerId();
    const pending = c.cni('ADD', { containerId: id, netns: pod.path, config: c.plexusConfig('1.1.0', { readinessTimeoutSeconds: 20 }) });
    await new Promise((r) => setTimeout(r, 500));
    await c.startDaemon();
    const out = await pending;
    expect(out.stdout).not.toContain('"code"');
    expect(out.code).toBe(0);
    expect((await c.cni('DEL', { containerId: id, netns: pod.path })).code).toBe(0);
  });

  test('ADD fails with 11 (try again later) when the daemon stays down', async () => {
    await c.stopDaemon();
    const out = await c.cni('ADD', { ...good(), config: c.plexusConfig('1.1.0', { readinessTimeoutSeconds: 0.3 }) });
    expect(out.json.code).toBe(11);
    await c.startDaemon();
  });
});

// S36: kubelet's runtimeConfig (portMappings, bandwidth) reaches the cluster network's plugins and no other
// network's, here through Debian's real portmap and bandwidth plugins chained after ptp. Witnesses: the
// node's iptables NAT rules (portmap) and tc qdiscs on the host veths (bandwidth).
describe('S36: portMappings and bandwidth reach the real portmap and bandwidth plugins of the cluster network only', () => {
  let c: TestCluster;
  const chained = (name: string, subnet: string, c2: TestCluster) => ({
    cniVersion: '1.0.0', name,
    plugins: [
      { type: 'ptp', ipam: c2.hostLocal(subnet, { gateway: subnet.replace('0/24', '1') }) },
      { type: 'portmap', capabilities: { portMappings: true }, snat: false },
      { type: 'bandwidth', capabilities: { bandwidth: true } },
    ],
  });

  beforeAll(async () => {
    c = await TestCluster.start();
    writeFileSync(join(c.confDir, '10-cluster.conflist'), JSON.stringify(chained('cluster', '10.99.0.0/24', c)));
    await c.writeManifests('nads.yaml', [c.nad('extra', chained('extra', '10.57.0.0/24', c))]);
    await c.writeManifests('pod.yaml', [c.podManifest('web', 'extra')]);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  test('ADD installs the DNAT for the cluster address and shapes its host veth; the extra network gets neither; DEL removes them', async () => {
    const pod = c.makePod();
    const id = containerId();
    const runtimeConfig = {
      portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 8_000_000, ingressBurst: 100_000, egressRate: 8_000_000, egressBurst: 100_000 },
    };
    const config = c.plexusConfig('1.1.0', { capabilities: { portMappings: true, bandwidth: true }, runtimeConfig });
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'web' }, config });
    expect(out.code).toBe(0);
    const eth0 = addrsOf(pod.name, 'eth0')[0]!.split('/')[0]!;
    const net1 = addrsOf(pod.name, 'net1')[0]!.split('/')[0]!;
    const nat = c.inNode('iptables', ['-t', 'nat', '-S']).stdout;
    expect(nat).toMatch(new RegExp(`--dport 18080 .*--to-destination ${eth0.replaceAll('.', '\\.')}:80`));
    expect(nat).not.toContain(`--to-destination ${net1}:`);
    // bandwidth shapes the host end of each veth that carries it (tbf), egress through an ifb device.
    const tbf = c.inNode('tc', ['-j', 'qdisc', 'show']).stdout;
    const shaped = (JSON.parse(tbf) as { kind: string; dev: string }[]).filter((q) => q.kind === 'tbf').map((q) => q.dev);
    const hostVeths = (JSON.parse(c.inNode('ip', ['-j', 'addr']).stdout) as { ifname: string; addr_info: { local: string }[] }[]);
    const hostOf = (gw: string) => hostVeths.find((l) => l.addr_info.some((a) => a.local === gw))?.ifname;
    expect([hostOf('10.99.0.1'), hostOf('10.57.0.1')]).toEqual([expect.any(String), expect.any(String)]);
    expect(shaped).toContain(hostOf('10.99.0.1'));
    expect(shaped).not.toContain(hostOf('10.57.0.1'));
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'web' }, config })).code).toBe(0);
    expect(c.inNode('iptables', ['-t', 'nat', '-S']).stdout).not.toContain('--dport 18080');
    const left = (JSON.parse(c.inNode('tc', ['-j', 'qdisc', 'show']).stdout) as { kind: string }[]).filter((q) => q.kind === 'tbf');
    expect(left).toEqual([]); // bandwidth's shaping (and its ifb device) went with DEL
  });
});

/**
 * plexus-dpdk through bin/plexus as a runtime calls it, with plexus-dataplane as the engine and dpdk-testpmd as
 * the pods' applications, each run exactly as the pod contract says (its socket directory mounted at the
 * NAD's containerDir; the socket and device-info named in network-status). Witnesses: the engine's counters,
 * the socket files, network-status, the records.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EngineProcess, Testpmd } from '../helpers/dpdk';
import { expectEventually } from '../helpers/eventually';
import { containerId, ROOT, run, runProcess, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

const CONTAINER_DIR = '/mnt/plexus';

describe('plexus-dpdk: vhost-user and memif pods on one engine network', () => {
  const engine = new EngineProcess();
  // Short: sockets must fit a unix socket path. Made in beforeAll (a describe that -t skips leaves nothing).
  let socketDir = '';
  let c: TestCluster;
  const peers: Testpmd[] = [];
  /** Pods a test added: DELed after it whatever happened, so one failure does not leave ports to the next. */
  const added: Array<{ id: string; pod: { path: string }; name: string; uid: string }> = [];

  beforeAll(async () => {
    socketDir = mkdtempSync(join(tmpdir(), 'pxd-'));
    await engine.start();
    c = await TestCluster.start({ daemon: { dpdk: { socketPath: engine.socket, socketDir }, ipam: { pools: [{ name: 'dp-pool', cidrs: ['10.70.0.0/24'], blockSize: 28 }] } } });
    const nad = (name: string, extra: Record<string, unknown>) =>
      c.nad(name, { cniVersion: '1.1.0', name, type: 'plexus-dpdk', network: 'dp-net', containerDir: CONTAINER_DIR, ...extra });
    await c.writeManifests('dpdk-nads.yaml', [
      nad('dp-vhost', { interface: 'vhost-user', ipam: { pool: 'dp-pool' } }),
      nad('dp-memif', { interface: 'memif', queues: 2 }),
    ]);
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) await p.kill();
    for (const a of added.splice(0)) await c.cni('DEL', { containerId: a.id, netns: a.pod.path, pod: { name: a.name, uid: a.uid } });
  });
  afterAll(async () => {
    await c?.destroy();
    await engine.destroy();
    if (socketDir) rmSync(socketDir, { recursive: true, force: true });
  });

  const status = (name: string) => JSON.parse(run(join(ROOT, 'bin/plexusctl'), ['--socket', c.socket, 'status', `default/${name}`]).stdout);

  async function addPod(name: string, networks: string) {
    const uid = `00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`;
    await c.writeManifests(`pod-${name}.yaml`, [c.podManifest(name, networks)]);
    const pod = c.makePod();
    const id = containerId();
    const out = await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name, uid } });
    if (out.code !== 0) throw new Error(`ADD ${name}: ${out.stdout}`);
    added.push({ pod, id, uid, name });
    return { pod, id, uid, name };
  }

  test('ADD creates the ports and sockets, network-status names them with device-info; the pods exchange packets through the engine; DEL removes everything', async () => {
    const a = await addPod('dpa', 'dp-vhost');
    const b = await addPod('dpb', 'dp-memif');
    const sa = status('dpa')[1];
    const sb = status('dpb')[1];
    expect(sa).toMatchObject({ name: 'default/dp-vhost', interface: 'net1', ips: [expect.stringMatching(/^10\.70\.0\./)], 'device-info': { type: 'vhost-user', version: '1.1.0', 'vhost-user': { mode: 'server', path: `${CONTAINER_DIR}/net1.sock` } } });
    expect(sb).toMatchObject({ name: 'default/dp-memif', interface: 'net1', 'device-info': { type: 'memif', version: '1.1.0', memif: { role: 'slave', path: `${CONTAINER_DIR}/net1.sock`, mode: 'ethernet' } } });
    // vhost-user: the pod creates its socket (the engine connects, and reconnects); memif: the engine does.
    const ports = await engine.ports();
    const pa = Object.values(ports).find((p) => p.name === `${a.id.slice(0, 12)}-net1`)!;
    const pb = Object.values(ports).find((p) => p.name === `${b.id.slice(0, 12)}-net1`)!;
    expect(pa).toMatchObject({ kind: 'vhost-user', role: 'client', network: 'dp-net', socket: join(socketDir, a.uid, 'net1.sock') });
    expect(pb).toMatchObject({ kind: 'memif', role: 'server', network: 'dp-net', socket: join(socketDir, b.uid, 'net1.sock'), queues: 2 });
    expect(existsSync(join(socketDir, b.uid, 'net1.sock'))).toBe(true);

    // The pods' applications, each seeing only its own directory at CONTAINER_DIR.
    peers.push(new Testpmd(a.pod.name, [`net_virtio_user0,path=${CONTAINER_DIR}/net1.sock,server=1,mac=02:00:00:00:0d:0a`],
      ['--forward-mode=txonly', '--eth-peer=0,02:00:00:00:0d:0b'], { mount: { hostDir: join(socketDir, a.uid), containerDir: CONTAINER_DIR } }));
    peers.push(new Testpmd(b.pod.name, [`net_memif0,role=client,socket=${CONTAINER_DIR}/net1.sock,socket-abstract=no,id=0,mac=02:00:00:00:0d:0b`],
      ['--forward-mode=mac', '--eth-peer=0,02:00:00:00:0d:0a', '--tx-first', '--rxq=2', '--txq=2'], { mount: { hostDir: join(socketDir, b.uid), containerDir: CONTAINER_DIR } }));
    await expectEventually(async () => {
      const p = await engine.ports();
      const va = p[pa.name]!.counters!;
      const vb = p[pb.name]!.counters!;
      expect(va.rxPackets).toBeGreaterThan(5000); // pod a sent
      expect(vb.txPackets).toBeGreaterThan(5000); // ... to pod b, which read it
      expect(vb.rxPackets).toBeGreaterThan(5000); // pod b sent it back to pod a's MAC
      expect(va.txPackets + va.txDropped).toBeGreaterThan(5000);
    }, { timeoutMs: 40_000, context: () => peers.map((p) => p.output().slice(-1500)).join('\n---\n') });
    for (const p of peers.splice(0)) await p.kill();

    // CHECK through the meta-plugin: no kernel interface to find, the port and socket are what is checked.
    for (const pod of [a, b]) {
      const out = await c.cni('CHECK', { containerId: pod.id, netns: pod.pod.path, pod: { name: pod.name, uid: pod.uid } });
      expect({ pod: pod.name, code: out.code, out: out.stdout }).toEqual({ pod: pod.name, code: 0, out: '' });
    }
    for (const pod of [a, b]) {
      const out = await c.cni('DEL', { containerId: pod.id, netns: pod.pod.path, pod: { name: pod.name, uid: pod.uid } });
      expect(out.code).toBe(0);
    }
    expect(await engine.ports()).toEqual({});
    expect(readdirSync(socketDir)).toEqual([]);
    expect(readdirSync(join(c.stateDir, 'dpdk'))).toEqual([]);
    expect(readdirSync(join(c.dir, 'devinfo', 'cni'))).toEqual([]);
  });

  test('engine restart: the daemon re-creates its ports from the records; an orphan port nothing records is removed', async () => {
    const a = await addPod('dpr', 'dp-vhost');
    const name = `${a.id.slice(0, 12)}-net1`;
    await engine.kill('SIGKILL');
    await engine.start(); // a new engine: it starts with no port (the daemon's reconcile may already be re-creating it)
    await engine.put({ name: 'feedfacecafe-net9', network: 'dp-net', kind: 'memif', socket: join(socketDir, 'orphan', 'net9.sock'), role: 'server' });
    await expectEventually(async () => expect(Object.keys(await engine.ports())).toEqual([name]), { timeoutMs: 15_000 });
    // The port the new engine has is the one the daemon re-created (the log names it), and the orphan went.
    await expectEventually(() => expect(c.log()).toMatch(new RegExp(`"created":\\["${name}"\\].*DPDK engine reconciled with the records`)));
    await expectEventually(() => expect(c.log()).toMatch(/"removed":\["feedfacecafe-net9"\].*DPDK engine reconciled with the records/));
    expect((await c.cni('DEL', { containerId: a.id, netns: a.pod.path, pod: { name: 'dpr', uid: a.uid } })).code).toBe(0);
    expect(await engine.ports()).toEqual({});
  });

  test('daemon restart: the engine keeps forwarding meanwhile, and the restarted daemon keeps the ports its records name', async () => {
    const a = await addPod('dpd1', 'dp-vhost');
    const b = await addPod('dpd2', 'dp-vhost');
    const [na, nb] = [`${a.id.slice(0, 12)}-net1`, `${b.id.slice(0, 12)}-net1`];
    // One pod application per side would be two pollers besides the engine; one testpmd holds both pods' sockets.
    peers.push(new Testpmd(a.pod.name, [`net_virtio_user0,path=${join(socketDir, a.uid, 'net1.sock')},server=1`, `net_virtio_user1,path=${join(socketDir, b.uid, 'net1.sock')},server=1`], ['--forward-mode=txonly']));
    await expectEventually(async () => expect((await engine.ports())[na]?.counters?.rxPackets ?? 0).toBeGreaterThan(1000), { timeoutMs: 30_000 });
    await c.stopDaemon('SIGKILL');
    const during = (await engine.ports())[na]!.counters!.rxPackets;
    await expectEventually(async () => expect((await engine.ports())[na]!.counters!.rxPackets).toBeGreaterThan(during + 1000), { timeoutMs: 20_000 });
    const passes = () => c.log().split('DPDK engine matches the records').length;
    const before = passes();
    await c.startDaemon();
    // A reconcile pass of the new daemon found the engine as its records say: nothing removed, nothing created.
    await expectEventually(() => expect(passes()).toBeGreaterThan(before), { timeoutMs: 15_000 });
    expect(Object.keys(await engine.ports()).sort()).toEqual([na, nb].sort());
    expect((await engine.ports())[na]!.linkUp).toBe(true);
  });

  test('GC (plexus-dpdk run directly, as a runtime would): ports of attachments not in cni.dev/valid-attachments go with their sockets and records; valid ones stay', async () => {
    const conf = { cniVersion: '1.1.0', name: 'dp-direct', type: 'plexus-dpdk', socketPath: c.socket, interface: 'memif', network: 'dp-net' };
    const plugin = (command: string, id: string, extra: Record<string, unknown> = {}, netns = '') => runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-dpdk')], {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni', CNI_ARGS: '',
    }, JSON.stringify({ ...conf, ...extra }));
    const [keep, stale] = [containerId(), containerId()];
    for (const id of [keep, stale]) expect((await plugin('ADD', id, {}, c.makePod().path)).code).toBe(0);
    const names = [keep, stale].map((id) => `${id.slice(0, 12)}-net1`);
    expect(Object.keys(await engine.ports()).sort()).toEqual([...names].sort());
    const gc = await plugin('GC', '', { 'cni.dev/valid-attachments': [{ containerID: keep, ifname: 'net1' }] });
    expect(gc.code).toBe(0);
    expect(Object.keys(await engine.ports())).toEqual([names[0]]);
    expect(readdirSync(socketDir)).toEqual([keep.slice(0, 12)]);
    expect(readdirSync(join(c.stateDir, 'dpdk'))).toEqual([`${names[0]}.json`]);
    expect((await plugin('DEL', keep)).code).toBe(0);
    expect(await engine.ports()).toEqual({});
  });

  test('bad configs: code 7 naming the key; nothing is created', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ interface: 'tap' }, /\/interface must be equal to one of the allowed values/],
      [{ interface: 'memif', memifMode: 'ip' }, /memifMode "ip" is not supported/],
      [{ interface: 'vhost-user', memifMode: 'ethernet' }, /memifMode is for memif interfaces/],
      [{ interface: 'vhost-user', queues: 17 }, /\/queues must be <= 16/],
      [{ interface: 'vhost-user', socketDir: '/x' }, /must NOT have additional properties "socketDir"/],
    ];
    for (const [extra, message] of cases) {
      const conf = { cniVersion: '1.1.0', name: 'dp-bad', type: 'plexus-dpdk', socketPath: c.socket, network: 'dp-net', ...extra };
      const pod = c.makePod();
      const out = await runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-dpdk')], {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: containerId(), CNI_NETNS: pod.path, CNI_IFNAME: 'net1', CNI_PATH: '/usr/lib/cni', CNI_ARGS: '',
      }, JSON.stringify(conf));
      expect({ extra, code: out.json?.code, msg: out.json?.msg }).toEqual({ extra, code: 7, msg: expect.stringMatching(message) });
    }
    expect(await engine.ports()).toEqual({});
  });
});

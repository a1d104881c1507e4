/**
 * plexus-dataplane with real peers: dpdk-testpmd plays the pods' DPDK applications, over virtio-user (to the
 * engine's vhost-user ports) and memif, started inside pod network namespaces (unix sockets cross them).
 * Witnesses: the engine's per-port counters and testpmd's own port statistics. Counts, never rates: these
 * machines have two cores and the engine and testpmd both poll.
 */
import { randomBytes } from 'node:crypto';
import { EngineProcess, type PortView, Testpmd } from '../helpers/dpdk';
import { expectEventually } from '../helpers/eventually';
import { run } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

const rx = (p?: PortView) => p?.counters?.rxPackets ?? 0;
const tx = (p?: PortView) => p?.counters?.txPackets ?? 0;

describe('plexus-dataplane with testpmd peers', () => {
  const engine = new EngineProcess();
  const netns = [`pxdp-${randomBytes(3).toString('hex')}-a`, `pxdp-${randomBytes(3).toString('hex')}-b`];
  const peers: Testpmd[] = [];

  beforeAll(async () => {
    for (const ns of netns) run('ip', ['netns', 'add', ns]);
    await engine.start();
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) await p.kill();
  });
  afterAll(async () => {
    await engine.destroy();
    for (const ns of netns) run('ip', ['netns', 'del', ns], { allowFail: true });
  });

  test('bad port specs are refused with 400 naming the field; nothing is created', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'x', network: 'n', kind: 'vhost-user', socket: `${engine.socks}/x,y.sock`, role: 'server' }, /\/socket must match/],
      [{ name: 'x', network: 'n', kind: 'vhost-user', role: 'server' }, /a vhost-user port needs socket/],
      [{ name: 'x', network: 'n', kind: 'tap', iface: 'eth0' }, /\/kind must be equal to one of the allowed values/],
      [{ name: 'x y', network: 'n', kind: 'af_packet', iface: 'eth0' }, /\/name must match/],
      [{ name: 'x', network: 'n', kind: 'af_packet', iface: 'eth0', devargs: 'net_null0' }, /must NOT have additional properties "devargs"/],
    ];
    for (const [spec, message] of cases) {
      const r = await engine.call('PUT', '/v1/ports/x', spec);
      expect({ spec, status: r.status, msg: r.json?.msg }).toEqual({ spec, status: 400, msg: expect.stringMatching(message) });
    }
    expect(await engine.ports()).toEqual({});
  });

  test('vhost-user (the pod creates the socket) and memif (the engine does) on one network: packets both ways, MACs learned so unicast stops flooding, another network sees nothing', async () => {
    const a = { name: 'pod-a', network: 'net-a', kind: 'vhost-user', socket: `${engine.socks}/a/net1.sock`, role: 'client' };
    const b = { name: 'pod-b', network: 'net-a', kind: 'memif', socket: `${engine.socks}/b/net1.sock`, role: 'server' };
    const c = { name: 'pod-c', network: 'net-b', kind: 'vhost-user', socket: `${engine.socks}/c/net1.sock`, role: 'server' };
    for (const spec of [a, b, c]) await engine.put(spec);
    expect((await engine.call('PUT', '/v1/ports/pod-a', a)).status).toBe(200); // idempotent
    expect((await engine.call('PUT', '/v1/ports/pod-a', { ...a, network: 'net-b' })).status).toBe(409);
    // One testpmd holds both pods' ports (netns does not matter to unix sockets; one poller spares the two
    // cores): mac forwarding rewrites each packet to come from its port and go to the other pod's MAC.
    peers.push(new Testpmd(netns[0]!, [
      `net_virtio_user0,path=${a.socket},server=1,mac=02:00:00:00:0a:01`,
      `net_memif0,role=client,socket=${b.socket},socket-abstract=no,id=0,mac=02:00:00:00:0b:01`,
    ], ['--forward-mode=mac', '--eth-peer=0,02:00:00:00:0b:01', '--eth-peer=1,02:00:00:00:0a:01', '--tx-first']));
    await expectEventually(async () => {
      const p = await engine.ports();
      expect(rx(p['pod-a'])).toBeGreaterThan(10_000);
      expect(rx(p['pod-b'])).toBeGreaterThan(10_000);
    }, { timeoutMs: 30_000 });
    const p = await engine.ports();
    // Everything one pod sent that the engine forwarded went to the other pod, and all but the first few
    // packets as known unicast (learned), not floods.
    expect(tx(p['pod-b'])).toBeGreaterThan(10_000);
    expect(tx(p['pod-a'])).toBeGreaterThan(10_000);
    expect(p['pod-a']!.counters!.flooded + p['pod-b']!.counters!.flooded).toBeLessThan(1000);
    expect((await engine.call('GET', '/v1/stats')).json.learned).toBeGreaterThanOrEqual(2);
    expect(p['pod-c']!.counters).toEqual({ rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, txDropped: 0, flooded: 0 });
    for (const name of ['pod-a', 'pod-b', 'pod-c']) expect((await engine.call('DELETE', `/v1/ports/${name}`)).status).toBe(204);
    expect((await engine.call('DELETE', '/v1/ports/pod-a')).status).toBe(204); // idempotent
    expect(await engine.ports()).toEqual({});
  });

  test('misbehaving pods never take the engine or other pods down: a peer that never comes, a memif client killed mid-traffic, a port removed while traffic flows', async () => {
    const a1 = { name: 'a1', network: 'net-x', kind: 'vhost-user', socket: `${engine.socks}/a1/net1.sock`, role: 'client' };
    const a2 = { name: 'a2', network: 'net-x', kind: 'vhost-user', socket: `${engine.socks}/a2/net1.sock`, role: 'client' };
    const ghost = { name: 'ghost', network: 'net-x', kind: 'vhost-user', socket: `${engine.socks}/ghost/net1.sock`, role: 'server' };
    const m = { name: 'm1', network: 'net-x', kind: 'memif', socket: `${engine.socks}/m1/net1.sock`, role: 'server' };
    for (const spec of [a1, a2, ghost, m]) await engine.put(spec);
    peers.push(new Testpmd(netns[0]!, [`net_virtio_user0,path=${a1.socket},server=1`, `net_virtio_user1,path=${a2.socket},server=1`], ['--forward-mode=io', '--tx-first']));
    const memifClient = new Testpmd(netns[1]!, [`net_memif0,role=client,socket=${m.socket},socket-abstract=no,id=0`], ['--forward-mode=txonly']);
    peers.push(memifClient);
    await expectEventually(async () => expect(rx((await engine.ports())['m1'])).toBeGreaterThan(1000), { timeoutMs: 30_000 });
    // The floods towards the peer that never came are dropped at its port, and nothing else is disturbed.
    await expectEventually(async () => expect((await engine.ports())['ghost']!.counters!.txDropped).toBeGreaterThan(0), { timeoutMs: 20_000 });
    await memifClient.kill('SIGKILL');
    const before = await engine.ports();
    await expectEventually(async () => expect(rx((await engine.ports())['a1'])).toBeGreaterThan(rx(before['a1']) + 1000), { timeoutMs: 20_000 });
    expect(engine.alive()).toBe(true);
    // Remove a port while its peer still sends: the engine lets go of it and keeps running.
    expect((await engine.call('DELETE', '/v1/ports/a2')).status).toBe(204);
    const after = await engine.ports();
    expect(Object.keys(after).sort()).toEqual(['a1', 'ghost', 'm1']);
    expect((await engine.call('GET', '/healthz')).status).toBe(200);
    for (const name of ['a1', 'ghost', 'm1']) await engine.call('DELETE', `/v1/ports/${name}`);
  });

  test('engine SIGKILL and restart: the ports are created again and the pods (which own their vhost-user sockets) reconnect by themselves', async () => {
    const a = { name: 'r-a', network: 'net-r', kind: 'vhost-user', socket: `${engine.socks}/ra/net1.sock`, role: 'client' };
    const b = { name: 'r-b', network: 'net-r', kind: 'vhost-user', socket: `${engine.socks}/rb/net1.sock`, role: 'client' };
    for (const spec of [a, b]) await engine.put(spec);
    const pod = new Testpmd(netns[0]!, [`net_virtio_user0,path=${a.socket},server=1`, `net_virtio_user1,path=${b.socket},server=1`], ['--forward-mode=txonly']);
    peers.push(pod);
    await expectEventually(async () => expect(rx((await engine.ports())['r-a'])).toBeGreaterThan(1000), { timeoutMs: 30_000 });
    await engine.kill('SIGKILL');
    await engine.start();
    for (const spec of [a, b]) await engine.put(spec); // what plexusd does from its records
    // The new engine starts from zero: what it counts came over the reconnected sockets.
    await expectEventually(async () => {
      const p = await engine.ports();
      expect(rx(p['r-a'])).toBeGreaterThan(1000);
      expect(rx(p['r-b'])).toBeGreaterThan(1000);
      // What r-b sent to no known MAC was flooded to r-a (whose txonly pod does not read it: dropped at its ring).
      expect(p['r-a']!.counters!.flooded).toBeGreaterThan(0);
    }, { timeoutMs: 30_000 });
  });
});

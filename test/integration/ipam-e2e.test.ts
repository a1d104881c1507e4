/**
 * plexus-ipam end to end: Debian's macvlan and bridge plugins, inside NADs, use bin/plexus-ipam (found in
 * binDirs like any IPAM plugin), which asks plexusd's IPAM service. Checked with `ip` in the pods and with
 * `plexusctl ipam pods` (one record per pod, every network's address in it).
 */
import { symlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster, containerId, ipJson, runProcess, run, CNI_BIN_DIR, ROOT, PLEXUSCTL_BIN } from '../helpers/plexus-harness';
import { eventually } from '../helpers/eventually';

jest.setTimeout(120_000);

const addrsOf = (netns: string, ifname: string) =>
  (ipJson(netns, ['addr', 'show', 'dev', ifname])[0]?.addr_info ?? []).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);

describe('plexus-ipam used by reference plugins through the meta-plugin', () => {
  let c: TestCluster;
  let bin: string;
  const ipamPods = () => JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pods']).stdout) as any[];
  /** Pool names in force (the view has a row per pool and family). */
  const poolNames = (): string[] => [...new Set((JSON.parse(run(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pools']).stdout) as any[]).map((p) => p.name ?? p.pool))];
  const holders = () => ipamPods().map((p) => `${p.namespace}/${p.name}`).sort();
  /** bin/plexus-ipam run directly, as a runtime runs a plain network config's IPAM plugin. */
  const ipamCall = (command: string, cid: string, netns: string, pod?: string) => runProcess('ip', ['netns', 'exec', c.node, join(bin, 'plexus-ipam')], {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: 'net9',
    CNI_PATH: CNI_BIN_DIR, CNI_ARGS: pod ? `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod}` : '',
  }, JSON.stringify({ cniVersion: '1.0.0', name: 'direct', type: 'macvlan', ipam: { type: 'plexus-ipam', socketPath: c.socket, pool: 'data-pool' } }));

  beforeAll(async () => {
    c = await TestCluster.start();
    bin = join(c.dir, 'bin');
    mkdirSync(bin);
    for (const b of ['plexus', 'plexus-shim']) symlinkSync(join(ROOT, 'bin', b), join(bin, b));
    symlinkSync('plexus', join(bin, 'plexus-ipam'));
    c.inNode('ip', ['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p']);
    c.inNode('ip', ['link', 'set', 'uplink0', 'up']);
    c.inNode('ip', ['link', 'set', 'uplink0p', 'up']);
    const ipam = (extra: object) => ({ type: 'plexus-ipam', socketPath: c.socket, stateDir: c.stateDir, ...extra });
    await c.writeManifests('nads.yaml', [
      // A configured pool, by name.
      c.nad('data', { cniVersion: '1.0.0', type: 'macvlan', master: 'uplink0', mode: 'bridge', ipam: ipam({ pool: 'data-pool' }) }),
      // host-local style ranges, dual-stack: moved over by changing only `type`.
      c.nad('storage', { cniVersion: '1.0.0', type: 'bridge', bridge: 'br-st', ipam: ipam({ ranges: [[{ subnet: '10.81.0.0/24' }], [{ subnet: 'fd00:81::/64' }]] }) }),
      // Whereabouts style.
      c.nad('legacy', { cniVersion: '1.0.0', name: 'legacy', plugins: [{ type: 'bridge', bridge: 'br-lg', ipam: ipam({ range: '10.82.0.0/24', range_start: '10.82.0.10', exclude: ['10.82.0.12/32'] }) }] }),
    ]);
    await c.restartDaemon({
      binDirs: [bin, '/usr/lib/cni'],
      // GC from the source every half second with a 2 s grace, so the test sees it (defaults: 60 s, 10 min).
      ipam: { pools: [{ name: 'data-pool', cidrs: ['10.80.0.0/24'], blockSize: 28 }], gcGraceMs: 2000, gcIntervalSeconds: 0.5 },
    });
  });

  afterAll(async () => {
    await c.destroy();
  });

  test('two pods get unique addresses on every network; one IPAM record per pod holds them all; DEL frees them', async () => {
    await c.writeManifests('pods.yaml', [c.podManifest('a', 'data, storage, legacy'), c.podManifest('b', 'data, storage, legacy')]);
    const pods = ['a', 'b'].map((name) => ({ name, ns: c.makePod(), id: containerId() }));
    for (const p of pods) {
      const out = await c.cni('ADD', { containerId: p.id, netns: p.ns.path, pod: { name: p.name } });
      expect({ code: out.code, stdout: out.stdout }).toEqual({ code: 0, stdout: expect.any(String) });
    }
    const addrs = pods.map((p) => ({
      data: addrsOf(p.ns.name, 'net1'),
      storage: addrsOf(p.ns.name, 'net2').sort(),
      legacy: addrsOf(p.ns.name, 'net3'),
    }));
    for (const a of addrs) {
      expect(a.data).toEqual([expect.stringMatching(/^10\.80\.0\.\d+\/24$/)]);
      expect(a.storage).toEqual([expect.stringMatching(/^10\.81\.0\.\d+\/24$/), expect.stringMatching(/^fd00:81::[0-9a-f:]+\/64$/)]);
      expect(a.legacy).toEqual([expect.stringMatching(/^10\.82\.0\.\d+\/24$/)]);
      const legacyLast = Number(a.legacy[0]!.split('/')[0]!.split('.')[3]);
      expect(legacyLast).toBeGreaterThanOrEqual(10);
      expect(legacyLast).not.toBe(12);
    }
    const all = addrs.flatMap((a) => [...a.data, ...a.storage, ...a.legacy]);
    expect(new Set(all).size).toBe(all.length);
    // The configured pool and the two inline-range pools (named after their ranges) are all in force.
    expect(poolNames()).toEqual(expect.arrayContaining(['data-pool', expect.stringMatching(/^cni-10\.81\.0\.0-24-/), expect.stringMatching(/^cni-10\.82\.0\.0-24-/)]));
    const records = ipamPods();
    expect(records).toHaveLength(2);
    for (const r of records) expect(JSON.stringify(r)).toMatch(/10\.80\.0\..*10\.81\.0\.|10\.81\.0\..*10\.80\.0\./s);
    for (const p of pods) expect((await c.cni('DEL', { containerId: p.id, netns: p.ns.path, pod: { name: p.name } })).code).toBe(0);
    expect(ipamPods()).toEqual([]);
  });

  test('after a restart the inline-range pools are in force before the first request', async () => {
    const before = poolNames().filter((n) => n.startsWith('cni-')).sort();
    expect(before).toHaveLength(2);
    await c.restartDaemon();
    expect(poolNames().filter((n) => n.startsWith('cni-')).sort()).toEqual(before);
  });

  test('a pod removed from the manifests loses its addresses after the grace period; pod-less and unlisted holders keep theirs', async () => {
    await c.writeManifests('pods.yaml', [c.podManifest('g', 'data')]);
    const ns = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: ns.path, pod: { name: 'g' } })).code).toBe(0);
    const [podless, ghost] = [containerId(), containerId()];
    expect((await ipamCall('ADD', podless, ns.path)).code).toBe(0); // no K8S_POD_*: namespace _cni
    expect((await ipamCall('ADD', ghost, ns.path, 'ghost')).code).toBe(0); // a pod no manifest describes
    expect(holders()).toEqual([`_cni/${podless}`, 'default/g', 'default/ghost']);
    // The source lists g again after its ADD (a reload notes which holders it lists): no wait for a GC pass.
    await c.writeManifests('pods.yaml', [c.podManifest('g', 'data')]);
    const mark = c.log().length;
    await c.writeManifests('pods.yaml', []);
    // No wall-clock window: the daemon's own GC log says what each pass did. The first pass that saw g
    // unlisted kept it as a candidate (the grace period starts then); a later one released it.
    const gcLines = () => c.log().slice(mark).split('\n').filter((l) => l.includes('IPAM garbage collection (source)')).map((l) => JSON.parse(l) as { released: string[]; waiting: number });
    await eventually('g released', () => !holders().includes('default/g'), 15_000);
    const lines = gcLines();
    const released = lines.findIndex((l) => l.released.some((r) => r.includes(id)));
    expect(released).toBeGreaterThan(0);
    expect(lines[0]).toMatchObject({ released: [], waiting: 1 });
    // Holders the source never listed are never candidates: no pass released them.
    expect(lines.flatMap((l) => l.released).filter((r) => r.includes(podless) || r.includes(ghost))).toEqual([]);
    expect(holders()).toEqual([`_cni/${podless}`, 'default/ghost']);
    expect(c.log()).toMatch(/IPAM garbage collection \(source\)/);
    for (const cid of [podless, ghost]) expect((await ipamCall('DEL', cid, ns.path)).code).toBe(0);
    expect((await c.cni('DEL', { containerId: id, netns: ns.path, pod: { name: 'g' } })).code).toBe(0);
    expect(holders()).toEqual([]);
  });

  test('DEL while the daemon is down is queued and, replayed at start, releases the IPAM addresses', async () => {
    await c.writeManifests('pods.yaml', [c.podManifest('q', 'data')]);
    const ns = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: ns.path, pod: { name: 'q' } })).code).toBe(0);
    expect(ipamPods()).toHaveLength(1);
    await c.stopDaemon();
    expect((await c.cni('DEL', { containerId: id, netns: ns.path, pod: { name: 'q' } })).code).toBe(0);
    await c.startDaemon();
    expect(ipamPods()).toEqual([]);
  });
});

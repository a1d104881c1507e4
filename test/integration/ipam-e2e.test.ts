/**
 * plexus-ipam end to end: Debian's macvlan and bridge plugins, inside NADs, use bin/plexus-ipam (found in
 * binDirs like any IPAM plugin), which asks plexusd's IPAM service. Checked with `ip` in the pods and with
 * `plexusctl ipam pods` (one record per pod, every network's address in it).
 */
import { symlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster, containerId, ipJson, sh, ROOT, PLEXUSCTL_BIN } from '../helpers/plexus-harness';

jest.setTimeout(120_000);

const addrsOf = (netns: string, ifname: string) =>
  (ipJson(netns, ['addr', 'show', 'dev', ifname])[0]?.addr_info ?? []).filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);

describe('plexus-ipam used by reference plugins through the meta-plugin', () => {
  let c: TestCluster;
  const ipamPods = () => JSON.parse(sh(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pods']).stdout) as any[];

  beforeAll(async () => {
    c = await TestCluster.start();
    const bin = join(c.dir, 'bin');
    mkdirSync(bin);
    for (const b of ['plexus', 'plexus-shim']) symlinkSync(join(ROOT, 'bin', b), join(bin, b));
    symlinkSync('plexus', join(bin, 'plexus-ipam'));
    c.inNode('ip', ['link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0p']);
    c.inNode('ip', ['link', 'set', 'uplink0', 'up']);
    c.inNode('ip', ['link', 'set', 'uplink0p', 'up']);
    const ipam = (extra: object) => ({ type: 'plexus-ipam', socketPath: c.socket, stateDir: c.stateDir, ...extra });
    c.writeManifests('nads.yaml', [
      // A configured pool, by name.
      c.nad('data', { cniVersion: '1.0.0', type: 'macvlan', master: 'uplink0', mode: 'bridge', ipam: ipam({ pool: 'data-pool' }) }),
      // host-local style ranges, dual-stack: moved over by changing only `type`.
      c.nad('storage', { cniVersion: '1.0.0', type: 'bridge', bridge: 'br-st', ipam: ipam({ ranges: [[{ subnet: '10.81.0.0/24' }], [{ subnet: 'fd00:81::/64' }]] }) }),
      // Whereabouts style.
      c.nad('legacy', { cniVersion: '1.0.0', name: 'legacy', plugins: [{ type: 'bridge', bridge: 'br-lg', ipam: ipam({ range: '10.82.0.0/24', range_start: '10.82.0.10', exclude: ['10.82.0.12/32'] }) }] }),
    ]);
    await c.restartDaemon({ binDirs: [bin, '/usr/lib/cni'], ipam: { pools: [{ name: 'data-pool', cidrs: ['10.80.0.0/24'], blockSize: 28 }] } });
    await c.settle(700);
  });

  afterAll(async () => {
    await c.destroy();
  });

  test('two pods get unique addresses on every network; one IPAM record per pod holds them all; DEL frees them', async () => {
    c.writeManifests('pods.yaml', [c.podManifest('a', 'data, storage, legacy'), c.podManifest('b', 'data, storage, legacy')]);
    await c.settle(700);
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
    // The configured pool and the two inline-range pools (registered at first use) are all in force.
    const pools = JSON.parse(sh(PLEXUSCTL_BIN, ['--socket', c.socket, 'ipam', 'pools']).stdout) as any[];
    expect(pools.map((p) => p.name ?? p.pool)).toEqual(expect.arrayContaining(['data-pool', 'cni-storage', 'cni-legacy']));
    const records = ipamPods();
    expect(records).toHaveLength(2);
    for (const r of records) expect(JSON.stringify(r)).toMatch(/10\.80\.0\..*10\.81\.0\.|10\.81\.0\..*10\.80\.0\./s);
    for (const p of pods) expect((await c.cni('DEL', { containerId: p.id, netns: p.ns.path, pod: { name: p.name } })).code).toBe(0);
    expect(ipamPods()).toEqual([]);
  });

  test('DEL while the daemon is down is queued and, replayed at start, releases the IPAM addresses', async () => {
    c.writeManifests('pods.yaml', [c.podManifest('q', 'data')]);
    await c.settle(700);
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

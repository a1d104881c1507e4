/**
 * Hot-plug with the file source: the networks annotation of a running pod changes in its manifest and plexusd
 * attaches the added networks and detaches the removed ones in the pod's netns, without a new sandbox.
 * Witnesses: `ip` in the pod's netns, host-local's lease files, and network-status as plexusctl reads it.
 */
import { join } from 'node:path';
import { expectEventually } from '../helpers/eventually';
import { containerId, ROOT, run, TestCluster } from '../helpers/plexus-harness';

jest.setTimeout(90_000);

describe('hot-plug of secondary networks (file source)', () => {
  let c: TestCluster;
  const links = (netns: string) => (JSON.parse(run('ip', ['-n', netns, '-j', 'link', 'show']).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n !== 'lo').sort();
  const status = (name: string) => JSON.parse(run(join(ROOT, 'bin/plexusctl'), ['--socket', c.socket, 'status', `default/${name}`]).stdout) as Array<{ name: string; interface: string; ips?: string[] }>;
  const leases = (net: string) => c.leases().filter((l) => l.startsWith(`${net}/`));

  beforeAll(async () => {
    c = await TestCluster.start();
    const nad = (name: string, subnet: string) => c.nad(name, { cniVersion: '1.0.0', name, type: 'bridge', bridge: `hb-${name}`, ipam: c.hostLocal(subnet) });
    const broken = c.nad('broken', { cniVersion: '1.0.0', name: 'broken', type: 'macvlan', master: 'no-such-link', ipam: c.hostLocal('10.83.0.0/24') });
    await c.writeManifests('nads.yaml', [nad('blue', '10.81.0.0/24'), nad('green', '10.82.0.0/24'), broken]);
  });
  afterAll(async () => {
    await c?.destroy();
  });

  test('added networks are attached, removed ones detached (their addresses released), kept ones untouched; a failing addition changes nothing', async () => {
    await c.writeManifests('pod.yaml', [c.podManifest('hp', 'blue')]);
    const pod = c.makePod();
    const id = containerId();
    expect((await c.cni('ADD', { containerId: id, netns: pod.path, pod: { name: 'hp' } })).code).toBe(0);
    expect(links(pod.name)).toEqual(['eth0', 'net1']);
    const blueAddr = run('ip', ['-n', pod.name, '-j', 'addr', 'show', 'net1']).stdout;

    // blue, green: green arrives as net2; blue keeps its interface and address.
    await c.writeManifests('pod.yaml', [c.podManifest('hp', 'blue, green')]);
    await expectEventually(() => expect(links(pod.name)).toEqual(['eth0', 'net1', 'net2']), { timeoutMs: 20_000, context: () => c.log().slice(-3000) });
    expect(run('ip', ['-n', pod.name, '-j', 'addr', 'show', 'net1']).stdout).toBe(blueAddr);
    expect(run('ip', ['-n', pod.name, '-j', 'addr', 'show', 'net2']).stdout).toMatch(/10\.82\.0\./);
    await expectEventually(() => expect(status('hp').map((s) => `${s.name} ${s.interface}`)).toEqual(['cluster eth0', 'default/blue net1', 'default/green net2']));
    expect(leases('green')).toHaveLength(1);

    // A network that cannot be attached: rolled back, the pod as it was, the failure logged.
    await c.writeManifests('pod.yaml', [c.podManifest('hp', 'blue, green, broken')]);
    await expectEventually(() => expect(c.log()).toMatch(/hot-plug failed; retried at the next change/), { timeoutMs: 20_000 });
    expect(links(pod.name)).toEqual(['eth0', 'net1', 'net2']);
    expect(leases('broken')).toEqual([]);
    expect(status('hp').map((s) => s.name)).toEqual(['cluster', 'default/blue', 'default/green']);

    // green only: blue goes (interface and lease); green keeps net2.
    await c.writeManifests('pod.yaml', [c.podManifest('hp', 'green')]);
    await expectEventually(() => expect(links(pod.name)).toEqual(['eth0', 'net2']), { timeoutMs: 20_000 });
    await expectEventually(() => expect(leases('blue')).toEqual([]), { timeoutMs: 5000 }); // the plugin may drop its link before its lease
    await expectEventually(() => expect(status('hp').map((s) => `${s.name} ${s.interface}`)).toEqual(['cluster eth0', 'default/green net2']));

    // DEL removes what the pod has now.
    expect((await c.cni('DEL', { containerId: id, netns: pod.path, pod: { name: 'hp' } })).code).toBe(0);
    expect(leases('green')).toEqual([]);
    expect(c.leases().filter((l) => l.startsWith('cluster/'))).toEqual([]);
  });
});

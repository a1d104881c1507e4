/**
 * hack/cluster/: a two-node cluster in network namespaces with the ptp datapath (Debian's ptp plus
 * plexus-ipam over one shared local IPAM store). Pods on different nodes are not expected to reach each
 * other with ptp (no routes between nodes), so that is not tested here. Every address pinged lives in a
 * namespace the cluster created.
 */
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Cluster, type Pod, REPO_ROOT, clusterNetns, run } from '../../hack/cluster';
import { describeAsRoot } from '../helpers/netns';

const newPrefix = () => `plxc${randomBytes(3).toString('hex')}`;

interface AddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
}

/** The pod's links and global addresses, from `ip -n POD -j addr` (the kernel, not the CNI result). */
function podAddrs(pod: Pod): { links: string[]; v4: string[]; v6: string[] } {
  const out = JSON.parse(run('ip', ['-n', pod.netns, '-j', 'addr']).stdout) as { ifname: string; addr_info: AddrInfo[] }[];
  const global = out.flatMap((l) => l.addr_info).filter((a) => a.scope === 'global');
  return {
    links: out.map((l) => l.ifname),
    v4: global.filter((a) => a.family === 'inet').map((a) => a.local),
    v6: global.filter((a) => a.family === 'inet6').map((a) => a.local),
  };
}

/** The /26 block an address of 10.244.0.0/16 belongs to. */
const v4Block = (addr: string): number => {
  const [, , c, d] = addr.split('.').map(Number);
  return (c! * 256 + d!) >> 6;
};

const ipamPods = (c: Cluster, node: string): { namespace: string; name: string }[] =>
  JSON.parse(run(join(REPO_ROOT, 'bin/plexusctl'), ['--socket', c.node(node).socket, 'ipam', 'pods']).stdout);

/** An IPv6 address as 32 hex digits (the test's own parser: not the IPAM code under test). */
function expandV6(a: string): string {
  const [head, tail = ''] = a.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => g.padStart(4, '0')).join('');
}

const processAlive = (pid: number): boolean => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('plexusd');

describeAsRoot('a two-node cluster in network namespaces (datapath ptp)', () => {
  let c: Cluster;
  const pods: Record<string, Pod> = {};
  /** Each test gets the pods it needs whatever ran before it (no order dependence): made once, on demand. */
  const podA = async () => (pods['a'] ??= await c.addPod('n1', { name: 'a' }));
  const podB = async () => (pods['b'] ??= await c.addPod('n2', { name: 'b' }));
  const STATEFUL = { name: 'd', annotations: { 'k8s.v1.cni.cncf.io/networks': 'extra' }, ownerStatefulSet: 'db' };
  async function podD(): Promise<Pod> {
    const extra = { cniVersion: '1.0.0', name: 'extra', type: 'bridge', bridge: 'plx-extra', ipam: { type: 'host-local', dataDir: join(c.rootDir, 'host-local'), ranges: [[{ subnet: '10.77.0.0/24' }]] } };
    await c.writeManifest('nad-extra.yaml', [{ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'extra', namespace: 'default' }, spec: { config: JSON.stringify(extra) } }]);
    return (pods['d'] ??= await c.addPod('n2', STATEFUL));
  }

  beforeAll(async () => {
    c = await Cluster.create({ prefix: newPrefix(), nodes: 2, datapath: 'ptp' });
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  test.each([
    ['IPv4', 'ipv4'],
    ['IPv6', 'ipv6'],
  ] as const)('the nodes reach each other over the underlay (%s)', (_family, key) => {
    const [n1, n2] = c.nodes;
    expect(c.ping(n1!.netns, n2![key])).toBe(true);
    expect(c.ping(n2!.netns, n1![key])).toBe(true);
  });

  test('a pod on each node gets its own dual-stack addresses from the shared pool', async () => {
    const [pa, pb] = [await podA(), await podB()];
    const a = podAddrs(pa);
    const b = podAddrs(pb);
    for (const [pod, got] of [[pa, a], [pb, b]] as const) {
      expect(got.v4).toHaveLength(1);
      expect(got.v6).toHaveLength(1);
      expect(got.v4[0]).toMatch(/^10\.244\./);
      expect(got.v6[0]).toMatch(/^fd00:244:/);
      expect([pod.ipv4, pod.ipv6]).toEqual([got.v4[0], got.v6[0]]);
      expect(pod.result.ips?.map((i) => i.address.split('/')[0])).toEqual([got.v4[0], got.v6[0]]);
    }
    expect(a.v4[0]).not.toBe(b.v4[0]);
    expect(a.v6[0]).not.toBe(b.v6[0]);
    // Each daemon claims blocks for its own node (nodeName) in the one store.
    expect(v4Block(a.v4[0]!)).not.toBe(v4Block(b.v4[0]!));
  });

  test.each([
    ['IPv4', 'ipv4'],
    ['IPv6', 'ipv6'],
  ] as const)('pods on the same node reach each other (%s)', async (_family, key) => {
    const a = await podA();
    pods['c'] ??= await c.addPod('n1', { name: 'c' });
    expect(c.ping(a.netns, pods['c'][key]!)).toBe(true);
    expect(c.ping(pods['c'].netns, a[key]!)).toBe(true);
  });

  test("a pod's manifest reaches its daemon before ADD: the network its annotation asks for is attached", async () => {
    const got = podAddrs(await podD());
    expect(got.links).toEqual(expect.arrayContaining(['eth0', 'net1']));
    expect(got.v4).toEqual(expect.arrayContaining([expect.stringMatching(/^10\.77\.0\./)]));
  });

  test('a StatefulSet pod gets its cluster addresses back in a new sandbox; a pod of no StatefulSet does not', async () => {
    const d = await podD();
    await c.delPod(d);
    pods['d'] = await c.addPod('n2', STATEFUL);
    // Witness: the kernel's addresses on eth0 in the new sandbox.
    expect([pods['d'].ipv4, pods['d'].ipv6]).toEqual([d.ipv4, d.ipv6]);
    const e = await c.addPod('n2', { name: 'e' });
    await c.delPod(e);
    const e2 = await c.addPod('n2', { name: 'e' });
    // Released addresses are handed out last (oldest release first): a plain pod gets fresh ones.
    expect(e2.ipv4).not.toBe(e.ipv4);
    await c.delPod(e2);
  });

  test('plexusctl ipam blocks: each pod\'s kernel addresses lie in a block its own node owns', async () => {
    await podA();
    await podB();
    const blocks = JSON.parse(run(join(REPO_ROOT, 'bin/plexusctl'), ['--socket', c.node('n1').socket, 'ipam', 'blocks']).stdout) as { cidr: string; owner: string | null }[];
    const inCidr = (ip: string, cidr: string): boolean => {
      const [net, bits] = cidr.split('/') as [string, string];
      if (ip.includes(':') !== net.includes(':')) return false;
      const big = (a: string) => (a.includes(':') ? BigInt(`0x${expandV6(a)}`) : a.split('.').reduce((x, o) => (x << 8n) + BigInt(o), 0n));
      const width = ip.includes(':') ? 128 : 32;
      const shift = BigInt(width - Number(bits));
      return big(ip) >> shift === big(net) >> shift;
    };
    for (const pod of [pods['a']!, pods['b']!]) {
      for (const ip of [pod.ipv4!, pod.ipv6!]) {
        const home = blocks.filter((b) => inCidr(ip, b.cidr));
        expect(home.map((b) => b.owner)).toEqual([c.node(pod.node).netns]);
      }
    }
  });

  test('CHECK of an attached pod succeeds', async () => {
    const out = await c.checkPod(await podA());
    expect(out).toMatchObject({ code: 0, stdout: '' });
  });

  test("DEL removes the pod's interface and its IPAM record", async () => {
    const pod = await c.addPod('n1', { name: 'gone' });
    expect(ipamPods(c, 'n1').map((p) => p.name)).toContain('gone');
    await c.delPod(pod, { keepNetns: true });
    expect(podAddrs(pod).links).toEqual(['lo']);
    expect(ipamPods(c, 'n1').map((p) => p.name)).not.toContain('gone');
  });

  test('restartDaemon: a new plexusd, ready; old pods still CHECK, new pods attach', async () => {
    const a = await podA();
    const before = c.daemonPid('n1');
    await c.restartDaemon('n1');
    const after = c.daemonPid('n1');
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(processAlive(before!)).toBe(false);
    expect((await c.checkPod(a)).code).toBe(0);
    const f = await c.addPod('n1', { name: 'f' });
    expect(f.ipv4).toMatch(/^10\.244\./);
    expect(c.ping(f.netns, a.ipv4!)).toBe(true);
  });

  test('killDaemon and startDaemon: a DEL while the daemon is down is queued and replayed', async () => {
    const b = await podB();
    await c.killDaemon('n2', 'SIGKILL');
    expect(c.daemonPid('n2')).toBeUndefined();
    await c.delPod(b, { keepNetns: true });
    delete pods['b']; // gone: a later test gets a new one
    await c.startDaemon('n2');
    expect(podAddrs(b).links).toEqual(['lo']);
    expect(ipamPods(c, 'n2').map((p) => p.name)).not.toContain('b');
  });

  test('destroy removes every netns, daemon, file and pin of the cluster', async () => {
    const pids = c.nodes.map((n) => c.daemonPid(n)!);
    expect(pids.every((p) => p > 0)).toBe(true);
    await c.destroy();
    expect(clusterNetns(c.prefix)).toEqual([]);
    expect(pids.filter(processAlive)).toEqual([]);
    expect(existsSync(c.rootDir)).toBe(false);
    for (const n of c.nodes) expect(existsSync(n.pinDir)).toBe(false);
    await c.destroy(); // idempotent
  });
});

describeAsRoot('a cluster left behind by a crashed run', () => {
  test('a new cluster with the same prefix removes its daemons, namespaces and files first', async () => {
    const prefix = newPrefix();
    const crashed = await Cluster.create({ prefix, nodes: 1 });
    const next = new Cluster({ prefix, nodes: 1 });
    try {
      const pod = await crashed.addPod('n1', { name: 'old' });
      const oldPid = crashed.daemonPid('n1')!;
      await next.up();
      expect(processAlive(oldPid)).toBe(false);
      expect(clusterNetns(prefix)).not.toContain(pod.netns);
      const fresh = await next.addPod('n1', { name: 'new' });
      // The store was removed with the old root dir: the first address is free again.
      expect(fresh.ipv4).toBe(pod.ipv4);
    } finally {
      await next.destroy();
      await crashed.destroy(); // finds nothing left
    }
    expect(clusterNetns(prefix)).toEqual([]);
    expect(existsSync(next.rootDir)).toBe(false);
  }, 120_000);
});

describeAsRoot('destroy while the cluster is still starting', () => {
  test('stops the set-up and leaves nothing', async () => {
    const c = new Cluster({ prefix: newPrefix(), nodes: 2 });
    const starting = c.up().then(
      () => 'up',
      (e: Error) => e.message,
    );
    await c.destroy();
    expect(await starting).toMatch(/destroyed while starting/);
    expect(clusterNetns(c.prefix)).toEqual([]);
    expect(existsSync(c.rootDir)).toBe(false);
  }, 60_000);
});

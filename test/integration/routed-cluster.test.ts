/**
 * plexus-routed across nodes: a two-node cluster in network namespaces (hack/cluster/: an underlay bridge,
 * one plexusd per node sharing one IPAM store), pods on both nodes, in native and VXLAN modes, IPv4 and IPv6.
 * Witnesses: `ip route` / `ip neigh` / `bridge fdb` on the nodes, `ping` and `iperf3` between pods.
 */
import { join } from 'node:path';
import { Background, Cluster, REPO_ROOT, type Pod } from '../../hack/cluster';
import { eventually } from '../helpers/eventually';
import { explained } from '../helpers/explained';

jest.setTimeout(120_000);

const routes = (c: Cluster, node: string, family: 4 | 6): { dst: string; gateway?: string; dev: string; protocol?: string }[] =>
  JSON.parse(c.exec(c.node(node).netns, 'ip', ['-j', `-${family}`, 'route', 'show', 'proto', '180']).stdout || '[]');

// Cross-node routes follow claims within routeSyncMs (500 ms): `eventually` retries for a few seconds.

/** Bytes iperf3 sent over TCP; the server is ours (by PID) and stopped whatever happens. */
async function tcp(c: Cluster, from: Pod, to: Pod, address: string, port: number): Promise<number> {
  const server = new Background('ip', ['netns', 'exec', to.netns, 'iperf3', '-s', '-1', '-p', String(port)]);
  try {
    await eventually(`iperf3 listening on :${port}`, () => c.exec(to.netns, 'ss', ['-ltn']).stdout.includes(`:${port}`), 5000, 50);
    const client = c.exec(from.netns, 'iperf3', ['-c', address, '-p', String(port), '-n', '2M', '-J'], { allowFail: true });
    expect(client.code).toBe(0);
    return JSON.parse(client.stdout).end.sum_sent.bytes;
  } finally {
    await server.stop();
  }
}

describe.each([
  ['native', true],
  ['vxlan', true],
  ['vxlan', false],
] as const)('two nodes, mode %s, eBPF %s', (mode, ebpf) => {
  let c: Cluster;
  let pods: Pod[] = [];

  beforeAll(async () => {
    // /28 and /124 blocks: a second block is claimed after 16 pods.
    const pool = { name: 'pods', cidrs: ['10.244.0.0/16', 'fd00:244::/56'], blockSize: { v4: 28, v6: 124 } };
    c = await Cluster.create({ prefix: `plxrc${mode === 'native' ? 'n' : ebpf ? 'v' : 'k'}${process.pid % 1000}`, nodes: 2, datapath: 'routed', mode, ebpf, pool });
    pods = [await c.addPod('n1', { name: 'a1' }), await c.addPod('n1', { name: 'a2' }), await c.addPod('n2', { name: 'b1' })];
  });

  afterAll(async () => {
    await c?.destroy();
  });

  /** A test whose failure message includes both nodes' and every pod's kernel state and the daemon logs. */
  const clusterTest = (name: string, body: () => Promise<void>): void => test(name, () => explained(() => c.diagnose(), body));

  clusterTest('each node routes the other node\'s blocks', async () => {
    const [, , b1] = pods;
    // n2 claims its IPv4 and IPv6 blocks one after the other: n1 may see one before the other.
    await eventually('routes on n1 to n2\'s IPv4 and IPv6 blocks', () =>
      routes(c, 'n1', 4).some((r) => r.dst.endsWith('/28')) && routes(c, 'n1', 6).some((r) => r.dst.endsWith('/124')));
    const v4 = routes(c, 'n1', 4).filter((r) => r.dst.endsWith('/28'));
    const v6 = routes(c, 'n1', 6).filter((r) => r.dst.endsWith('/124'));
    expect(v4).toHaveLength(1);
    expect(v6).toHaveLength(1);
    if (mode === 'native') {
      expect(v4[0]).toMatchObject({ gateway: c.node('n2').ipv4, dev: 'eth0' });
      expect(v6[0]).toMatchObject({ gateway: c.node('n2').ipv6, dev: 'eth0' });
    } else {
      expect(v4[0]).toMatchObject({ dev: 'plexus.vxlan', gateway: v4[0]!.dst.split('/')[0] });
      const fdb = c.exec(c.node('n1').netns, 'bridge', ['fdb', 'show', 'dev', 'plexus.vxlan']).stdout;
      expect(fdb).toContain(`dst ${c.node('n2').ipv4} self permanent`);
      const neigh = c.exec(c.node('n1').netns, 'ip', ['neigh', 'show', 'dev', 'plexus.vxlan']).stdout;
      expect(neigh).toContain(`${v4[0]!.gateway} lladdr`);
      expect(c.exec(b1!.netns, 'ip', ['-j', 'link', 'show', 'eth0']).stdout).toContain('"mtu":1450');
    }
  });

  clusterTest('same node: ping and TCP, IPv4 and IPv6', async () => {
    const [a1, a2] = pods;
    expect(c.ping(a1!.netns, a2!.ipv4!)).toBe(true);
    expect(c.ping(a1!.netns, a2!.ipv6!)).toBe(true);
    expect(await tcp(c, a1!, a2!, a2!.ipv4!, 5411)).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  });

  clusterTest('across nodes: ping and TCP, IPv4 and IPv6, both directions', async () => {
    const [a1, , b1] = pods;
    await eventually('cross-node ping', () => c.ping(a1!.netns, b1!.ipv4!, 1));
    expect(c.ping(b1!.netns, a1!.ipv4!)).toBe(true);
    await eventually('cross-node IPv6 ping', () => c.ping(a1!.netns, b1!.ipv6!, 1));
    expect(c.ping(b1!.netns, a1!.ipv6!)).toBe(true);
    expect(await tcp(c, a1!, b1!, b1!.ipv4!, 5412)).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(await tcp(c, b1!, a1!, a1!.ipv6!, 5413)).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  });

  // Issue 13: which path cross-node packets take. With from_pod, a pod's packet to another node is looked up in
  // the FIB and redirected to the underlay (or VXLAN) device by the program: its `routed` counter grows by the
  // packets sent, and the node's IP stack forwards none of them (only the replies, which arrive on eth0 where
  // no program runs). On kernel routing alone the stack forwards both directions. Witness for the stack:
  // the node's own forwarding counters (/proc/net/snmp, /proc/net/snmp6).
  clusterTest('across nodes: the path taken (from_pod FIB redirect, or kernel forwarding)', async () => {
    const [a1, , b1] = pods;
    const n1 = c.node('n1');
    const hostIf = a1!.result.interfaces![0]!.name;
    const forwarded = (): { 4: number; 6: number } => {
      const snmp = c.exec(n1.netns, 'cat', ['/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
      const v4 = Number(snmp[1]!.split(/\s+/)[snmp[0]!.split(/\s+/).indexOf('ForwDatagrams')]);
      const v6 = Number(/^Ip6OutForwDatagrams\s+(\d+)/m.exec(c.exec(n1.netns, 'cat', ['/proc/net/snmp6']).stdout)![1]);
      return { 4: v4, 6: v6 };
    };
    const routedCount = (): number | undefined => {
      const view = JSON.parse(c.exec(n1.netns, join(REPO_ROOT, 'bin/plexusctl'), ['--socket', n1.socket, 'routed']).stdout);
      return view.endpoints.find((e: { hostIf: string }) => e.hostIf === hostIf)?.counters?.routed;
    };
    await eventually('cross-node ping', () => c.ping(a1!.netns, b1!.ipv4!, 1) && c.ping(a1!.netns, b1!.ipv6!, 1));
    const N = 10;
    for (const family of [4, 6] as const) {
      const [fwd0, routed0] = [forwarded()[family], routedCount() ?? 0];
      const dst = family === 4 ? b1!.ipv4! : b1!.ipv6!;
      expect(c.exec(a1!.netns, 'ping', ['-c', String(N), '-i', '0.05', '-W', '1', dst], { allowFail: true }).stdout).toContain(`${N} received`);
      const stack = forwarded()[family] - fwd0;
      if (ebpf) {
        expect((routedCount() ?? 0) - routed0).toBeGreaterThanOrEqual(N);
        expect(stack).toBeLessThanOrEqual(N); // the replies only
      } else {
        expect(routedCount()).toBeUndefined(); // no program, no counters
        expect(stack).toBeGreaterThanOrEqual(2 * N); // requests and replies
      }
    }
  });

  clusterTest('a block claimed later is routed by the other node as it happens; DEL leaves the node clean', async () => {
    const before = routes(c, 'n1', 4).length;
    const extra: Pod[] = [];
    for (let i = 0; i < 16; i++) extra.push(await c.addPod('n2', { name: `x${i}` }));
    await eventually('a second block route on n1', () => routes(c, 'n1', 4).length > before);
    const last = extra[extra.length - 1]!;
    await eventually('ping to the newest pod', () => c.ping(pods[0]!.netns, last.ipv4!, 1));
    for (const p of extra) await c.delPod(p);
    const left = c.exec(c.node('n2').netns, 'ip', ['-j', 'link', 'show']).stdout;
    expect((JSON.parse(left) as { ifname: string }[]).filter((l) => /^plx[0-9a-f]{11}$/.test(l.ifname))).toHaveLength(1);
  });
});

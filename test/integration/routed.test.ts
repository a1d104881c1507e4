/**
 * plexus-routed on one node, checked with independent witnesses: `ip` (addresses, routes, neighbours), `tc`
 * (the attached program), `bpftool` (the pinned maps and counters), `ping` and `iperf3` (traffic). The node is
 * a netns running a real plexusd; pods are netns attached through bin/plexus (cluster network) or
 * bin/plexus-routed (standalone conflist), exactly as a runtime does. Multi-node routing is in
 * routed-cluster.test.ts.
 */
import { rmSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { containerId, ipJson, ROOT, runProcess, run, TestCluster } from '../helpers/plexus-harness';
import { eventually } from '../helpers/eventually';
import { Background } from '../../hack/cluster';

const POOL = { name: 'pods', cidrs: ['10.97.0.0/16', 'fd00:97::/56'], blockSize: { v4: 26, v6: 122 } };
const clusterNetwork = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'cluster',
  plugins: [{ type: 'plexus-routed', ipam: { type: 'plexus-ipam', pool: 'pods' }, ...extra }],
});

let c: TestCluster;
let pinDir: string;

function daemonConfig(routed: Record<string, unknown> = {}): Record<string, unknown> {
  return { ipam: { pools: [POOL] }, routed: { pinDir, ...routed } };
}

interface Pod {
  ns: string;
  cid: string;
  name: string;
  v4: string;
  v6: string;
  hostIf: string;
}

async function addPod(name = `p${Math.random().toString(16).slice(2, 8)}`): Promise<Pod> {
  const pod = c.makePod();
  const cid = containerId();
  const out = await c.cni('ADD', { containerId: cid, netns: pod.path, pod: { name } });
  expect(out).toMatchObject({ code: 0 });
  const ips = out.json.ips.map((i: { address: string }) => i.address);
  return {
    ns: pod.name, cid, name,
    v4: ips.find((a: string) => a.includes('.')).split('/')[0],
    v6: ips.find((a: string) => a.includes(':')).split('/')[0],
    hostIf: out.json.interfaces[0].name,
  };
}

const del = (p: Pod) => c.cni('DEL', { containerId: p.cid, netns: `/var/run/netns/${p.ns}`, pod: { name: p.name } });
const check = (p: Pod, prevResult?: unknown) =>
  c.cni('CHECK', { containerId: p.cid, netns: `/var/run/netns/${p.ns}`, pod: { name: p.name }, config: c.plexusConfig('1.1.0', prevResult ? { prevResult } : {}) });

function ping(ns: string, dst: string, opts: string[] = []): boolean {
  return run('ip', ['netns', 'exec', ns, 'ping', '-c', '2', '-i', '0.2', '-W', '1', ...opts, dst], { allowFail: true }).code === 0;
}

/** The addresses the IPAM service holds for a container (plexusctl ipam pods: the IPAM store's pod records). */
const ipamHeld = (cid: string): string[] =>
  (JSON.parse(run(join(ROOT, 'bin/plexusctl'), ['--socket', c.socket, 'ipam', 'pods']).stdout) as { addresses: { containerId: string; ip: string }[] }[])
    .flatMap((p) => p.addresses.filter((a) => a.containerId === cid).map((a) => a.ip));

const hostIndex = (ifName: string): number => ipJson(c.node, ['link', 'show', ifName])[0].ifindex;

/** endpoint_stats of one host veth, decoded from bpftool's raw bytes and summed over CPUs. */
function stats(ifindex: number): Record<string, number> | undefined {
  const key = [0, 8, 16, 24].map((s) => String((ifindex >> s) & 0xff));
  const r = run('bpftool', ['-j', 'map', 'lookup', 'pinned', join(pinDir, 'endpoint_stats'), 'key', ...key], { allowFail: true });
  if (r.code !== 0) return undefined;
  const names = ['redirected', 'routed', 'passed', 'spoofedPackets', 'spoofedBytes', 'malformed'];
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const v of JSON.parse(r.stdout).values as { value: string[] }[]) {
    const b = Buffer.from(v.value.map((x) => parseInt(x, 16)));
    names.forEach((n, i) => (out[n]! += Number(b.readBigUInt64LE(i * 8))));
  }
  return out;
}

/** IPv4 addresses in the pinned endpoints map, decoded from bpftool's raw key bytes (struct endpoint_key). */
function mapAddresses(): string[] {
  const r = run('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinDir, 'endpoints')], { allowFail: true });
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { key: string[] }[]).map(({ key }) => {
    const b = Buffer.from(key.map((x) => parseInt(x, 16)));
    return b.readUInt32LE(0) === 4 ? [...b.subarray(4, 8)].join('.') : b.subarray(4, 20).toString('hex');
  });
}

function tcAttached(ifName: string): boolean {
  const r = run('ip', ['netns', 'exec', c.node, 'tc', '-j', 'filter', 'show', 'dev', ifName, 'ingress'], { allowFail: true });
  return r.code === 0 && r.stdout.includes('from_pod');
}

/**
 * Packets from `spoofed` that a capture in `receiver` sees while `sender` pings `dst` from that address three
 * times (tcpdump, an independent witness, started and known to listen before the first packet).
 */
async function spoofedSeenBy(sender: string, receiver: string, dst: string, spoofed: string, prefix: string, addrFlags: string[]): Promise<number> {
  run('ip', ['-n', sender, 'addr', 'add', `${spoofed}${prefix}`, 'dev', 'eth0', ...addrFlags]);
  const cap = new Background('ip', ['netns', 'exec', receiver, 'tcpdump', '-i', 'eth0', '-n', '-l', '-p', 'src', spoofed]);
  try {
    await eventually('tcpdump listening', () => cap.output.includes('listening on'), 10_000, 20);
    ping(sender, dst, ['-I', spoofed, '-c', '3']);
    run('ip', ['netns', 'exec', receiver, 'ping', '-c', '1', '-W', '1', '127.0.0.1'], { allowFail: true }); // let the capture drain
  } finally {
    await cap.stop();
  }
  return cap.output.split('\n').filter((l) => l.includes(`${spoofed} >`)).length;
}

/** Two pods attached by a runtime running bin/plexus-routed with a standalone network config. */
type StandalonePod = Pod & { del(): Promise<unknown> };

async function standalonePair(extra: Record<string, unknown>): Promise<[StandalonePod, StandalonePod]> {
  const conf = { cniVersion: '1.1.0', name: `standalone-${Math.random().toString(16).slice(2, 6)}`, type: 'plexus-routed', socketPath: c.socket, ipam: { type: 'plexus-ipam', pool: 'pods' }, ...extra };
  const out: StandalonePod[] = [];
  for (let i = 0; i < 2; i++) {
    const p = c.makePod();
    const cid = containerId();
    const call = (cmd: string) => runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-routed')], {
      PATH: process.env['PATH']!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: p.path, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
    }, JSON.stringify(conf));
    const add = await call('ADD');
    expect(add.code).toBe(0);
    const ips = add.json.ips.map((x: { address: string }) => x.address.split('/')[0]);
    out.push({
      ns: p.name, cid, name: p.name, hostIf: add.json.interfaces[0].name,
      v4: ips.find((x: string) => x.includes('.')), v6: ips.find((x: string) => x.includes(':')),
      del: () => call('DEL'),
    });
  }
  return [out[0]!, out[1]!];
}

beforeAll(async () => {
  pinDir = `/sys/fs/bpf/plexus/plxt-routed-${process.pid}`;
  c = await TestCluster.start({ clusterNetwork: clusterNetwork(), daemon: daemonConfig() });
  expect(existsSync(join(ROOT, 'bin/bpf/from_pod.o'))).toBe(true);
});

afterAll(async () => {
  await c?.destroy();
  rmSync(pinDir, { recursive: true, force: true });
});

describe('plexus-routed on one node', () => {
  test('ADD gives /32 and /128 addresses, link-local gateways with permanent neighbours, host routes, the program and map entries', async () => {
    const p = await addPod();
    const addrs = ipJson(p.ns, ['addr', 'show', 'eth0'])[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toEqual(expect.arrayContaining([`${p.v4}/32`, `${p.v6}/128`]));
    expect(ipJson(p.ns, ['route', 'show', 'default'])[0]).toMatchObject({ gateway: '169.254.1.1', dev: 'eth0' });
    expect(ipJson(p.ns, ['-6', 'route', 'show', 'default'])[0]).toMatchObject({ gateway: 'fe80::1', dev: 'eth0' });
    const hostMac = ipJson(c.node, ['link', 'show', p.hostIf])[0].address;
    const neigh = ipJson(p.ns, ['neigh', 'show', 'dev', 'eth0']);
    for (const gw of ['169.254.1.1', 'fe80::1']) {
      expect(neigh.find((n: any) => n.dst === gw)).toMatchObject({ lladdr: hostMac, state: ['PERMANENT'] });
    }
    expect(ipJson(c.node, ['route', 'show', `${p.v4}/32`])[0]).toMatchObject({ dev: p.hostIf, protocol: '180' });
    expect(ipJson(c.node, ['-6', 'route', 'show', `${p.v6}/128`])[0]).toMatchObject({ dev: p.hostIf, protocol: '180' });
    expect(p.hostIf).toMatch(/^plx[0-9a-f]{11}$/);
    expect(tcAttached(p.hostIf)).toBe(true);
    expect(mapAddresses()).toContain(p.v4);
    expect(stats(hostIndex(p.hostIf))).toMatchObject({ redirected: 0, spoofedPackets: 0 });
    await del(p);
  });

  test('two pods on the node: ping and TCP over IPv4 and IPv6, delivered by bpf_redirect_peer', async () => {
    const [a, b] = [await addPod(), await addPod()];
    expect(ping(a.ns, b.v4)).toBe(true);
    expect(ping(a.ns, b.v6)).toBe(true);
    const server = new Background('ip', ['netns', 'exec', b.ns, 'iperf3', '-s', '-1', '-p', '5301']);
    await eventually('iperf3 listening on :5301', () => run('ip', ['netns', 'exec', b.ns, 'ss', '-ltnH']).stdout.includes(':5301'), 5000, 50).catch(async (e) => {
      await server.stop();
      throw e;
    });
    const client = run('ip', ['netns', 'exec', a.ns, 'iperf3', '-c', b.v6, '-p', '5301', '-n', '4M', '-J'], { allowFail: true });
    await server.stop();
    expect(client.code).toBe(0);
    expect(JSON.parse(client.stdout).end.sum_sent.bytes).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    const s = stats(hostIndex(a.hostIf))!;
    expect(s.redirected).toBeGreaterThan(4);
    expect(s.spoofedPackets).toBe(0);
    await del(a);
    await del(b);
  });

  test('a spoofed source address is dropped and counted', async () => {
    const [a, b] = [await addPod(), await addPod()];
    run('ip', ['-n', a.ns, 'addr', 'add', '10.97.255.250/32', 'dev', 'eth0']);
    expect(ping(a.ns, b.v4, ['-I', '10.97.255.250'])).toBe(false);
    const s = stats(hostIndex(a.hostIf))!;
    expect(s.spoofedPackets).toBeGreaterThanOrEqual(2);
    expect(s.spoofedBytes).toBeGreaterThanOrEqual(2 * 84);
    expect(ping(a.ns, b.v4)).toBe(true); // its own address still works
    // Operators see the same counters through plexusctl.
    const view = JSON.parse(run(join(ROOT, 'bin/plexusctl'), ['--socket', c.socket, 'routed']).stdout);
    expect(view).toMatchObject({ mode: 'native', ebpf: true });
    expect(view.endpoints.find((e: any) => e.hostIf === a.hostIf)).toMatchObject({ ebpf: true, addresses: [`${a.v4}/32`, `${a.v6}/128`], counters: { spoofed_packets: s.spoofedPackets } });
    await del(a);
    await del(b);
  });

  // Issue 13: the drop is proven at the receiver. A capture in the destination pod sees no packet from a spoofed
  // source when the sender's endpoint runs from_pod, and sees them when the same topology runs on kernel
  // routing alone (ebpf: false, reverse-path filtering off in the node so the kernel forwards them): so it is
  // the eBPF source check, not a missing route back, that stops them. IPv4 and IPv6.
  describe.each([
    ['IPv4', '10.97.255.250', '/32', (p: Pod) => p.v4, []],
    ['IPv6', 'fd00:97:ff::fa', '/128', (p: Pod) => p.v6, ['nodad']],
  ] as const)('anti-spoofing at the receiver, %s', (_family, spoofed, prefix, dst, addrFlags) => {
    test('from_pod on: the destination pod never sees a spoofed packet', async () => {
      const [a, b] = [await addPod(), await addPod()];
      expect(await spoofedSeenBy(a.ns, b.ns, dst(b), spoofed, prefix, [...addrFlags])).toBe(0);
      expect(stats(hostIndex(a.hostIf))!.spoofedPackets).toBeGreaterThanOrEqual(3);
      await del(a);
      await del(b);
    });

    test('ebpf: false: the same packets reach the destination pod', async () => {
      const [a, b] = await standalonePair({ ebpf: false });
      const all = run('ip', ['netns', 'exec', c.node, 'sysctl', '-n', 'net.ipv4.conf.all.rp_filter']).stdout.trim();
      run('ip', ['netns', 'exec', c.node, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${a.hostIf}.rp_filter=0`]);
      try {
        expect(await spoofedSeenBy(a.ns, b.ns, dst(b), spoofed, prefix, [...addrFlags])).toBeGreaterThanOrEqual(3);
      } finally {
        run('ip', ['netns', 'exec', c.node, 'sysctl', '-qw', `net.ipv4.conf.all.rp_filter=${all}`]);
        await a.del();
        await b.del();
      }
    });
  });

  test('CHECK passes on a healthy pod and reports a deleted route and a detached program', async () => {
    const p = await addPod();
    const prev = { cniVersion: '1.1.0', ips: [{ address: `${p.v4}/32` }, { address: `${p.v6}/128` }] };
    expect(await check(p, prev)).toMatchObject({ code: 0 });
    run('ip', ['-n', c.node, 'route', 'del', `${p.v4}/32`, 'dev', p.hostIf]);
    run('ip', ['netns', 'exec', c.node, 'tc', 'filter', 'del', 'dev', p.hostIf, 'ingress']);
    const out = await check(p, prev);
    expect(out.json.code).toBe(108);
    expect(out.json.msg).toContain(`host route ${p.v4}/32 dev ${p.hostIf} is missing`);
    expect(out.json.msg).toContain(`program from_pod is not attached to ${p.hostIf} ingress`);
    await del(p);
  });

  test('CHECK reports a missing host neighbour, a missing gateway neighbour in the pod and a missing map entry', async () => {
    const p = await addPod();
    const prev = { cniVersion: '1.1.0', ips: [{ address: `${p.v4}/32` }, { address: `${p.v6}/128` }] };
    run('ip', ['-n', c.node, 'neigh', 'del', p.v6, 'dev', p.hostIf]);
    run('ip', ['-n', p.ns, 'neigh', 'del', '169.254.1.1', 'dev', 'eth0']);
    // struct endpoint_key: family (u32, little endian) and 16 address bytes; bpftool as the independent tool.
    const key = ['4', '0', '0', '0', ...p.v4.split('.'), ...Array(12).fill('0')];
    run('bpftool', ['map', 'delete', 'pinned', join(pinDir, 'endpoints'), 'key', ...key]);
    expect(mapAddresses()).not.toContain(p.v4);
    const out = await check(p, prev);
    expect(out.json.code).toBe(108);
    expect(out.json.msg).toContain(`host neighbour ${p.v6} on ${p.hostIf} is missing`);
    expect(out.json.msg).toContain('gateway neighbour 169.254.1.1 is missing in the pod');
    expect(out.json.msg).toContain(`endpoint map entry for ${p.v4} is missing`);
    await del(p);
  });

  test('DEL leaves nothing behind (link, routes, map entries, stats, record, IPAM addresses) and is idempotent', async () => {
    const p = await addPod();
    const index = hostIndex(p.hostIf);
    expect(ipamHeld(p.cid).sort()).toEqual([p.v4, p.v6].sort());
    for (let i = 0; i < 3; i++) expect(await del(p)).toMatchObject({ code: 0 });
    expect(run('ip', ['-n', c.node, 'link', 'show', p.hostIf], { allowFail: true }).code).not.toBe(0);
    expect(ipJson(c.node, ['route', 'show', `${p.v4}/32`])).toEqual([]);
    expect(ipJson(c.node, ['-6', 'route', 'show', `${p.v6}/128`])).toEqual([]);
    expect(mapAddresses()).not.toContain(p.v4);
    expect(stats(index)).toBeUndefined();
    expect(readdirSync(join(c.stateDir, 'routed')).filter((f) => f.startsWith(p.hostIf))).toEqual([]);
    expect(ipJson(p.ns, ['link', 'show']).map((l: any) => l.ifname)).toEqual(['lo']);
    expect(ipamHeld(p.cid)).toEqual([]);
  });

  test('DEL after the pod netns is gone still succeeds and releases the addresses', async () => {
    const p = await addPod();
    expect(ipamHeld(p.cid)).toHaveLength(2);
    run('ip', ['netns', 'del', p.ns]);
    expect(await c.cni('DEL', { containerId: p.cid, netns: '', pod: { name: p.name } })).toMatchObject({ code: 0 });
    expect(ipamHeld(p.cid)).toEqual([]);
    expect(mapAddresses()).not.toContain(p.v4);
    expect(ipJson(c.node, ['route', 'show', `${p.v4}/32`])).toEqual([]);
    run('ip', ['netns', 'add', p.ns]); // the harness removes its pods by name
  });

  test('GC removes the endpoints of attachments the runtime no longer lists, and keeps the others', async () => {
    const [a, b] = [await addPod(), await addPod()];
    const gc = await c.cni('GC', {
      containerId: '', config: c.plexusConfig('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: a.cid, ifname: 'eth0' }] }),
    });
    expect(gc).toMatchObject({ code: 0 });
    expect(run('ip', ['-n', c.node, 'link', 'show', b.hostIf], { allowFail: true }).code).not.toBe(0);
    expect(mapAddresses()).not.toContain(b.v4);
    expect(mapAddresses()).toContain(a.v4);
    expect(await check(a)).toMatchObject({ code: 0 });
    await del(a);
    await del(b);
  });

  test('traffic keeps flowing across a daemon restart (0 packets lost), and the restart reconciles the kernel', async () => {
    const [a, b] = [await addPod(), await addPod()];
    // Broken while the daemon is down: a map entry and a host route go missing, an orphan veth appears.
    const pinger = require('node:child_process').spawn('ip', ['netns', 'exec', a.ns, 'ping', '-i', '0.01', '-c', '400', '-W', '1', b.v4], { stdio: ['ignore', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    pinger.stdout.on('data', (d: Buffer) => out.push(d));
    const done = new Promise<number>((r) => pinger.on('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    await c.stopDaemon();
    run('ip', ['-n', c.node, 'link', 'add', 'plx00000000000', 'type', 'veth', 'peer', 'name', 'plxorphanpeer']);
    run('ip', ['-6', '-n', c.node, 'route', 'del', `${b.v6}/128`, 'dev', b.hostIf]);
    await c.startDaemon();
    await done;
    const summary = Buffer.concat(out).toString();
    expect(summary).toMatch(/400 packets transmitted, 400 received/);
    expect(ipJson(c.node, ['-6', 'route', 'show', `${b.v6}/128`])[0]).toMatchObject({ dev: b.hostIf });
    expect(run('ip', ['-n', c.node, 'link', 'show', 'plx00000000000'], { allowFail: true }).code).not.toBe(0);
    const ready = c.log().split('\n').filter((l) => l.includes('routed datapath ready')).pop()!;
    expect(JSON.parse(ready)).toMatchObject({ orphanLinks: 1, gone: 0 });
    expect(JSON.parse(ready).restored).toBeGreaterThanOrEqual(2);
    expect(await check(a)).toMatchObject({ code: 0 });
    await del(a);
    await del(b);
  });

  test('a network with ebpf: false gets the same topology on kernel routing alone (standalone conflist run by a runtime)', async () => {
    const conf = { cniVersion: '1.1.0', name: 'plain', type: 'plexus-routed', ebpf: false, socketPath: c.socket, ipam: { type: 'plexus-ipam', pool: 'pods' } };
    const pods = [c.makePod(), c.makePod()].map((p) => ({ ...p, cid: containerId() }));
    const run = (cmd: string, p: (typeof pods)[number]) =>
      runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-routed')], {
        PATH: process.env['PATH']!, CNI_COMMAND: cmd, CNI_CONTAINERID: p.cid, CNI_NETNS: p.path, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
      }, JSON.stringify(conf));
    const results = [];
    for (const p of pods) {
      const out = await run('ADD', p);
      expect(out.code).toBe(0);
      results.push(JSON.parse(out.stdout));
    }
    const [ipA, ipB] = results.map((r) => r.ips[0].address.split('/')[0]);
    for (const r of results) expect(tcAttached(r.interfaces[0].name)).toBe(false);
    expect(mapAddresses()).not.toContain(ipA);
    expect(ping(pods[0]!.name, ipB)).toBe(true);
    expect(ping(pods[1]!.name, ipA)).toBe(true);
    for (const p of pods) expect((await run('DEL', p)).code).toBe(0);
  });

  test('standalone: a runtime runs bin/plexus-routed from a conflist; a non-plexus-ipam ipam is refused with code 7 and nothing created', async () => {
    const pod = c.makePod();
    const cid = containerId();
    const conf = { cniVersion: '1.0.0', name: 'standalone', type: 'plexus-routed', socketPath: c.socket, ipam: { type: 'plexus-ipam', pool: 'pods' } };
    const run = (cmd: string, config: unknown) =>
      runProcess('ip', ['netns', 'exec', c.node, join(ROOT, 'bin/plexus-routed')], {
        PATH: process.env['PATH']!, CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni',
      }, JSON.stringify(config));
    const bad = await run('ADD', { ...conf, ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] } });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 7 });
    expect(ipJson(pod.name, ['link', 'show']).map((l: any) => l.ifname)).toEqual(['lo']);
    const ok = await run('ADD', conf);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: expect.stringMatching(/\/32$/) }, { address: expect.stringMatching(/\/128$/) }] });
    expect((await run('CHECK', { ...conf, prevResult: JSON.parse(ok.stdout) })).code).toBe(0);
    expect((await run('DEL', conf)).code).toBe(0);
    expect(ipJson(pod.name, ['link', 'show']).map((l: any) => l.ifname)).toEqual(['lo']);
  });

  test('when the programs cannot load, the node falls back to kernel routing', async () => {
    await c.restartDaemon(daemonConfig({ bpfObject: '/nonexistent/from_pod.o' }));
    const [a, b] = [await addPod(), await addPod()];
    expect(ping(a.ns, b.v4)).toBe(true);
    expect(tcAttached(a.hostIf)).toBe(false);
    expect(c.log()).toContain('eBPF datapath could not load');
    await del(a);
    await del(b);
    await c.restartDaemon(daemonConfig());
  });
});

// S19 with plexus-routed as the cluster network (issue 13's defect): a secondary network that asks for
// default-route takes the pod's default routes; the runner rewrites the routed result to say so, and CHECK
// must expect what that result says, not what the endpoint was given at ADD (it used to fail with 108).
describe('default-route on a secondary network, plexus-routed as the cluster network', () => {
  const bridge = `plxbr${Math.random().toString(16).slice(2, 7)}`;
  const secondary = {
    cniVersion: '1.0.0', name: 'sec', type: 'bridge', bridge, isGateway: true,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: '10.98.0.0/24', gateway: '10.98.0.1' }], [{ subnet: 'fd00:98::/64', gateway: 'fd00:98::1' }]],
    },
  };

  beforeAll(async () => {
    await c.writeManifests('s19-nad.yaml', [c.nad('sec', { ...secondary, ipam: { ...secondary.ipam, dataDir: join(c.dir, 'host-local-s19') } })]);
  });

  afterAll(() => {
    run('ip', ['-n', c.node, 'link', 'del', bridge], { allowFail: true });
  });

  const defaults = (ns: string, family: '-4' | '-6') =>
    ipJson(ns, [family, 'route', 'show', 'default']).map((r: any) => `${r.gateway} ${r.dev}${r.metric ? ` ${r.metric}` : ''}`);

  test.each([
    ['an IPv4 gateway', ['10.98.0.1'], ['10.98.0.1 net1'], []],
    ['an IPv6 gateway', ['fd00:98::1'], [], ['fd00:98::1 net1 1024']],
    ['several gateways: both families, two IPv4 by increasing metric', ['10.98.0.1', '10.98.0.254', 'fd00:98::1'], ['10.98.0.1 net1', '10.98.0.254 net1 1'], ['fd00:98::1 net1 1024']],
  ])('%s: ADD moves the defaults to net1 (ip), CHECK passes, DEL cleans up', async (_t, gateways, want4, want6) => {
    const name = `s19-${Math.random().toString(16).slice(2, 8)}`;
    await c.writeManifests(`${name}.yaml`, [c.podManifest(name, [{ name: 'sec', 'default-route': gateways }])]);
    const pod = c.makePod();
    const cid = containerId();
    const call = { containerId: cid, netns: pod.path, pod: { name } };
    const add = await c.cni('ADD', call);
    expect(add).toMatchObject({ code: 0 });
    // Independent witness: the pod's only default routes are through the secondary network.
    expect(defaults(pod.name, '-4')).toEqual(want4);
    expect(defaults(pod.name, '-6')).toEqual(want6);
    // The result the runtime got (the cluster network's) no longer claims a default route.
    expect((add.json.routes ?? []).filter((r: any) => r.dst === '0.0.0.0/0' || r.dst === '::/0')).toEqual([]);
    const check = await c.cni('CHECK', call);
    expect(check.json?.msg ?? '').toBe('');
    expect(check.code).toBe(0);
    // CHECK still sees a real problem on the routed endpoint.
    const hostIf = add.json.interfaces[0].name;
    const v4 = add.json.ips.find((i: any) => i.address.includes('.')).address.split('/')[0];
    run('ip', ['-n', c.node, 'route', 'del', `${v4}/32`, 'dev', hostIf]);
    expect((await c.cni('CHECK', call)).json.msg).toContain(`host route ${v4}/32 dev ${hostIf} is missing`);
    expect((await c.cni('DEL', call)).code).toBe(0);
  });
});

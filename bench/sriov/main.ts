/**
 * bench/sriov: ADD then DEL of a pod with two SR-IOV VFs through plexus-sriov (a runtime exec'ing
 * bin/plexus-sriov once per network, plexusd configuring each VF: record, PF side, IPAM, netdev into the pod),
 * against the kernel operations alone in the same run: the same moves (renaming on the way), MACs, addresses
 * and link state done directly through netlink (kernel/, in this process, nothing recorded,
 * no IPAM, no PF). Iterations alternate so drift hits both alike. The VFs are veths behind a fake sysfs and
 * the PF is emulated (no SR-IOV hardware here), so what is measured is Plexus's own cost around the kernel
 * work, not a driver's.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Netlink, withNetns } from '../../kernel';
import { execInNetns, type ExecResult } from '../lib/netns';
import { cdfSvg, mdTable, round, summarize, writeResults } from '../lib/stats';
import { FakeSriov, run } from '../../hack/cluster';

const ROOT = resolve(__dirname, '../..');
const ITERATIONS = Number(process.env['PLEXUS_BENCH_ITERATIONS'] ?? 60);
const WARMUP = 5;
const id = randomBytes(3).toString('hex');
const NODE = `plxs-${id}-node`;
const nodePath = `/var/run/netns/${NODE}`;
const dir = mkdtempSync(join(tmpdir(), `plexus-bench-sriov-${id}-`));
const socket = join(dir, 'plexus.sock');
const VFS = [
  { pci: '0000:af:06.0', netdev: 'ens6f0v0', ifName: 'net1', mac: '02:00:00:00:0b:01', ip: '10.66.0.10/24' },
  { pci: '0000:af:06.1', netdev: 'ens6f0v1', ifName: 'net2', mac: '02:00:00:00:0b:02', ip: '10.67.0.10/24' },
];
const REF_VFS = [
  { pci: '0000:b1:02.0', netdev: 'ens7f0v0', ifName: 'net1', mac: '02:00:00:00:0c:01', ip: '10.66.0.20/24' },
  { pci: '0000:b1:02.1', netdev: 'ens7f0v1', ifName: 'net2', mac: '02:00:00:00:0c:02', ip: '10.67.0.20/24' },
];

type Run = ExecResult;

const exec = (bin: string, env: Record<string, string>, input: string): Promise<Run> => execInNetns(nodePath, bin, env, input);

const conf = (i: number) => JSON.stringify({
  cniVersion: '1.1.0', name: `sriov-${i}`, type: 'plexus-sriov', socketPath: socket, deviceID: VFS[i]!.pci,
  vlan: 100 + i, spoofchk: 'off', mac: VFS[i]!.mac, ipam: { pool: `bench-${i}` },
});

async function plexusCycle(pod: string): Promise<[number, number]> {
  const cid = randomBytes(32).toString('hex');
  const env = (cmd: string, ifName: string) => ({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: pod, CNI_IFNAME: ifName, CNI_PATH: '/usr/lib/cni', CNI_ARGS: '' });
  const t0 = performance.now();
  for (const [i, vf] of VFS.entries()) {
    const r = await exec(join(ROOT, 'bin/plexus-sriov'), env('ADD', vf.ifName), conf(i));
    if (r.code !== 0) throw new Error(`plexus-sriov ADD failed: ${r.stdout}`);
  }
  const t1 = performance.now();
  for (const [i, vf] of [...VFS.entries()].reverse()) {
    const r = await exec(join(ROOT, 'bin/plexus-sriov'), env('DEL', vf.ifName), conf(i));
    if (r.code !== 0) throw new Error(`plexus-sriov DEL failed: ${r.stdout}`);
  }
  return [t1 - t0, performance.now() - t1];
}

/** The kernel work alone, as plexus-sriov does it for a kernel-mode VF, with nothing around it. */
async function referenceCycle(node: Netlink, pod: string): Promise<[number, number]> {
  const t0 = performance.now();
  const originals: { mac: string; mtu: number }[] = [];
  for (const vf of REF_VFS) {
    const link = (await node.getLink(vf.netdev))!;
    originals.push({ mac: link.mac!, mtu: link.mtu });
    await node.setLinkUp(vf.netdev, false);
    await node.moveLinkToNetns(vf.netdev, pod, { newName: vf.ifName });
    const p = await Netlink.open(pod);
    try {
      await p.setMac(vf.ifName, vf.mac);
      await p.addAddress(vf.ifName, vf.ip);
      await p.setLinkUp(vf.ifName, true);
    } finally {
      p.close();
    }
  }
  const t1 = performance.now();
  for (const [i, vf] of [...REF_VFS.entries()].reverse()) {
    const p = await Netlink.open(pod);
    try {
      await p.setLinkUp(vf.ifName, false);
      await p.setMac(vf.ifName, originals[i]!.mac);
      await p.setMtu(vf.ifName, originals[i]!.mtu);
      await p.moveLinkToNetns(vf.ifName, nodePath, { newName: vf.netdev });
    } finally {
      p.close();
    }
  }
  return [t1 - t0, performance.now() - t1];
}

async function startDaemon(sysfsRoot: string) {
  const config = {
    socketPath: socket, stateDir: join(dir, 'state'), binDirs: ['/usr/lib/cni'], confDir: join(dir, 'cni'), clusterNetwork: 'cluster',
    source: { type: 'file', dir: join(dir, 'manifests') }, logLevel: 'info',
    ipam: { pools: [{ name: 'bench-0', cidrs: ['10.66.0.0/24'], blockSize: 28 }, { name: 'bench-1', cidrs: ['10.67.0.0/24'], blockSize: 28 }] },
    sriov: { sysfsRoot, emulatePf: true },
  };
  writeFileSync(join(dir, 'plexusd.json'), JSON.stringify(config));
  const log = openSync(join(dir, 'plexusd.log'), 'a');
  const daemon = withNetns(nodePath, () => spawn(process.execPath, [join(ROOT, 'bin/plexusd'), '--config', join(dir, 'plexusd.json')], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', log, log] }));
  for (let i = 0; i < 200; i++) {
    if (run(join(ROOT, 'bin/plexusctl'), ['--socket', socket, 'health'], { allowFail: true }).code === 0) return daemon;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('plexusd did not become ready');
}

async function main(): Promise<void> {
  for (const d of ['cni', 'manifests', 'state']) mkdirSync(join(dir, d), { recursive: true });
  run('ip', ['netns', 'add', NODE]);
  const pods = [`plxs-${id}-a`, `plxs-${id}-b`];
  const fake = new FakeSriov(join(dir, 'sysfs'), NODE, `plxs-${id}-wire`);
  let daemon: ReturnType<typeof spawn> | undefined;
  let node: Netlink | undefined;
  try {
    for (const p of pods) run('ip', ['netns', 'add', p]);
    fake.addPf({ pci: '0000:af:00.0', name: 'ens6f0', vfs: VFS.map(({ pci, netdev }) => ({ pci, netdev })) });
    fake.addPf({ pci: '0000:b1:00.0', name: 'ens7f0', vfs: REF_VFS.map(({ pci, netdev }) => ({ pci, netdev })) });
    daemon = await startDaemon(join(dir, 'sysfs'));
    node = await Netlink.open(nodePath);
    const plexus = { add: [] as number[], del: [] as number[] };
    const ref = { add: [] as number[], del: [] as number[] };
    process.stderr.write(`sriov: ${WARMUP} warm-up + ${ITERATIONS} iterations each, alternating\n`);
    for (let i = 0; i < WARMUP + ITERATIONS; i++) {
      for (const which of i % 2 === 0 ? ['plexus', 'ref'] : ['ref', 'plexus']) {
        const [a, d] = which === 'plexus' ? await plexusCycle(`/var/run/netns/${pods[0]}`) : await referenceCycle(node, `/var/run/netns/${pods[1]}`);
        if (i < WARMUP) continue;
        const into = which === 'plexus' ? plexus : ref;
        into.add.push(a);
        into.del.push(d);
      }
      if ((i + 1 - WARMUP) % 20 === 0 && i >= WARMUP) process.stderr.write(`  ${i + 1 - WARMUP}/${ITERATIONS}\n`);
    }
    // Floors: what a runtime pays to exec any plugin from here, and plexusd's own time per request.
    const spawnMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await exec('/bin/true', {}, '');
      spawnMs.push(performance.now() - t0);
    }
    report(plexus, ref, spawnMs, daemonTimes(readFileSync(join(dir, 'plexusd.log'), 'utf8')));
  } finally {
    node?.close();
    daemon?.kill('SIGTERM');
    for (const p of pods) run('ip', ['netns', 'del', p], { allowFail: true });
    fake.destroy();
    run('ip', ['netns', 'del', NODE], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** plexusd's own duration of each plexus-sriov request, from its log lines ("ADD done", "DEL done"). */
function daemonTimes(log: string): Record<'add' | 'del', number[]> {
  const out = { add: [] as number[], del: [] as number[] };
  for (const line of log.split('\n')) {
    const m = /"msg":"(ADD|DEL) done"/.exec(line);
    if (!m || !line.includes('"plugin":"plexus-sriov"')) continue;
    const ms = (JSON.parse(line) as { ms?: number }).ms;
    if (ms !== undefined) out[m[1] === 'ADD' ? 'add' : 'del'].push(ms);
  }
  return out;
}

function report(plexus: Record<string, number[]>, ref: Record<string, number[]>, spawnMs: number[], daemon: Record<'add' | 'del', number[]>): void {
  const rows: (string | number)[][] = [];
  const json: Record<string, unknown> = { iterations: ITERATIONS, vfsPerPod: 2, unit: 'ms' };
  for (const k of ['add', 'del']) {
    const p = summarize(plexus[k]!);
    const r = summarize(ref[k]!);
    json[k] = { plexus: p, kernelOnly: r, ratioP50: p.p50 / r.p50, ratioP99: p.p99 / r.p99 };
    rows.push([k.toUpperCase(), round(r.p50, 2), round(p.p50, 2), round(p.p50 / r.p50), round(r.p99, 2), round(p.p99, 2), round(p.p99 / r.p99)]);
  }
  const perVf = {
    execP50: summarize(spawnMs).p50,
    daemonAddP50: summarize(daemon.add).p50,
    daemonDelP50: summarize(daemon.del).p50,
  };
  json['perVfP50'] = perVf;
  const md =
    `# bench/sriov\n\nADD then DEL of one pod with two kernel-mode VFs, ${ITERATIONS} iterations each, alternating; ` +
    `milliseconds. "plexus": a runtime exec'ing bin/plexus-sriov once per VF (forwarder, socket, plexusd: VF record ` +
    `written before any change, PF side (VLAN, spoofchk, MAC, emulated PF), plexus-ipam allocation, netdev moved ` +
    `and renamed in one message, then configured). "kernel only": the same netns moves, MACs, addresses and ` +
    `link state through netlink in one process, with nothing recorded, no IPAM and no PF. The VFs are veths behind a ` +
    `fake sysfs (no SR-IOV hardware here).\n\n` +
    mdTable(['op', 'kernel only p50', 'plexus p50', 'ratio p50', 'kernel only p99', 'plexus p99', 'ratio p99'], rows) +
    `\nPer VF (p50, ms): plexusd's whole request ${round(perVf.daemonAddP50, 1)} for ADD and ${round(perVf.daemonDelP50, 1)} for ` +
    `DEL (the kernel work included); a runtime's exec of any program from here (/bin/true) costs ${round(perVf.execP50, 1)}, ` +
    `paid once per VF by "plexus" and never by "kernel only".\n` +
    `\n![ADD latency CDF](sriov.svg)\n`;
  const paths = writeResults('sriov', json, md);
  writeFileSync(join(resolve(paths.md, '..'), 'sriov.svg'), cdfSvg('ADD of a pod with two VFs (CDF)', [
    { name: 'kernel operations only', samples: ref['add']!, color: '#1f77b4' },
    { name: 'plexus-sriov', samples: plexus['add']!, color: '#d62728' },
  ]));
  process.stdout.write(md);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).message}\n`);
  process.exit(1);
});

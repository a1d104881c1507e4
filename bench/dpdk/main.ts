/**
 * bench/dpdk: pod-to-pod packets through plexus-dataplane, against a testpmd cross-connect (two vhost-user
 * ports io-forwarded to each other: the floor of any software switch) with the same pods and the same core
 * budget, in one run, rounds alternating. 64-byte packets. The pods are one testpmd with two virtio-user ports
 * (clients of the switch's sockets: the one layout a testpmd switch also serves), mac-forwarding into each other
 * after a first burst, its forwarding lcore on CPU 0; the switch's poll loop has CPU 1. Figures: Mpps per direction (the pods' Rx-pps,
 * median of the last periods of each round), as ratios to the cross-connect; and the idle engine's CPU.
 *
 * Not yet here (issue 10): OVS-DPDK with explicit flows and with NORMAL. It needs hugepages (it runs EAL
 * --in-memory) and its own ovsdb and vswitchd; see docs/dpdk.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Background, daemonGet } from '../../hack/cluster';
import { EngineClient } from '../../dpdk-native/engine-client';
import { barSvg, mdTable, median, round, writeResults } from '../lib/stats';

const ROOT = resolve(__dirname, '../..');
const ROUNDS = Number(process.env['DPDK_ROUNDS'] ?? 3);
const SECONDS = Number(process.env['DPDK_SECONDS'] ?? 6);
const id = randomBytes(3).toString('hex');
const dir = mkdtempSync(join(tmpdir(), `pxb-dpdk-${id}-`));
const sockA = join(dir, 'a.sock');
const sockB = join(dir, 'b.sock');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The two pods' application: virtio-user clients of the switch's sockets, mac forwarding after one burst. */
function pods(): Background {
  return new Background('dpdk-testpmd', [
    '--no-huge', '-m', '512', '--no-pci', '--lcores', '0@(0-1),1@0', '--file-prefix', `pxbp${id}`, '--log-level', 'lib.eal:error',
    '--vdev', `net_virtio_user0,path=${sockA},mac=02:00:00:00:ee:0a`,
    '--vdev', `net_virtio_user1,path=${sockB},mac=02:00:00:00:ee:0b`,
    '--', '--total-num-mbufs', '16384', '--forward-mode=mac', '--eth-peer=0,02:00:00:00:ee:0b', '--eth-peer=1,02:00:00:00:ee:0a',
    '--auto-start', '--tx-first', '--stats-period', '1',
  ]);
}

/** The floor: testpmd serving both sockets and io-forwarding port 0 <-> port 1 on CPU 1. */
function crossConnect(): Background {
  return new Background('dpdk-testpmd', [
    '--no-huge', '-m', '512', '--no-pci', '--lcores', '0@(0-1),1@1', '--file-prefix', `pxbx${id}`, '--log-level', 'lib.eal:error',
    '--vdev', `net_vhost0,iface=${sockA},queues=1`, '--vdev', `net_vhost1,iface=${sockB},queues=1`,
    '--', '--total-num-mbufs', '16384', '--forward-mode=io', '--auto-start', '--stats-period', '1', // periodic stats keep a stdin-less testpmd running
  ]);
}

async function engine(): Promise<{ proc: Background; socket: string }> {
  const socket = join(dir, 'engine.sock');
  writeFileSync(join(dir, 'engine.json'), JSON.stringify({ dpdk: { socketPath: socket, socketDir: join(dir, 's'), filePrefix: `pxbe${id}`, logLevel: 'warn' } }));
  const proc = new Background(join(ROOT, 'bin/plexus-dataplane'), ['--config', join(dir, 'engine.json')]);
  for (let i = 0; i < 100 && !(await daemonGet(socket, '/healthz').then((r) => r.status === 200, () => false)); i++) await sleep(100);
  const client = new EngineClient(socket);
  for (const [name, sock] of [['pod-a', sockA], ['pod-b', sockB]] as const) {
    await client.put({ name, network: 'bench', kind: 'vhost-user', socket: sock, role: 'server' });
  }
  return { proc, socket };
}

/** Mpps per direction from the pods' testpmd: the median Rx-pps of each port over the round's last periods. */
function rxMpps(output: string): [number, number] {
  const per: [number[], number[]] = [[], []];
  const re = /NIC statistics for port (\d)[\s\S]*?Rx-pps:\s+(\d+)/g;
  for (let m = re.exec(output); m; m = re.exec(output)) per[Number(m[1])]?.push(Number(m[2]));
  const last = (xs: number[]) => median(xs.slice(-Math.max(1, SECONDS - 2))) / 1e6;
  return [last(per[0]), last(per[1])];
}

/** CPU share of one core used by `pid` over `ms` (utime + stime from /proc). */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const ticks = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0);
  const t0 = ticks();
  await sleep(ms);
  return (ticks() - t0) / 100 / (ms / 1000);
}

async function round1(variant: 'plexus-dataplane' | 'cross-connect'): Promise<[number, number]> {
  const sw = variant === 'cross-connect' ? { proc: crossConnect() } : await engine();
  await sleep(1500); // the switch's sockets exist
  const app = pods();
  try {
    await sleep(SECONDS * 1000);
    const mpps = rxMpps(app.output);
    if (mpps.some((x) => !Number.isFinite(x))) throw new Error(`${variant}: no statistics from the pods' testpmd:\n${app.output.slice(-1500)}\n--- switch ---\n${sw.proc.output.slice(-1500)}`);
    return mpps;
  } finally {
    await app.stop();
    await sw.proc.stop();
    rmSync(sockA, { force: true });
    rmSync(sockB, { force: true });
  }
}

async function main(): Promise<void> {
  const results: Record<string, [number, number][]> = { 'plexus-dataplane': [], 'cross-connect': [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of (r % 2 ? ['cross-connect', 'plexus-dataplane'] : ['plexus-dataplane', 'cross-connect']) as Array<'plexus-dataplane' | 'cross-connect'>) {
        results[v]!.push(await round1(v));
        process.stderr.write(`dpdk: round ${r + 1} ${v}: ${results[v]!.at(-1)!.map((x) => x.toFixed(2)).join(' / ')} Mpps\n`);
      }
    }
    // The idle engine: two ports, no peer, no traffic.
    const idle = await engine();
    await sleep(1000);
    const idleCpu = await cpuShare(idle.proc.pid!, 5000);
    await idle.proc.stop();
    report(results, idleCpu);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Record<string, [number, number][]>, idleCpu: number): void {
  const med = (v: string, i: 0 | 1) => median(results[v]!.map((x) => x[i]));
  const floor = [med('cross-connect', 0), med('cross-connect', 1)];
  const rows = ['cross-connect', 'plexus-dataplane'].map((v) => [v, round(med(v, 0), 2), round(med(v, 1), 2), round(med(v, 0) / floor[0]!, 2), round(med(v, 1) / floor[1]!, 2)]);
  const ratio = Math.min(med('plexus-dataplane', 0) / floor[0]!, med('plexus-dataplane', 1) / floor[1]!);
  const json = { rounds: ROUNDS, seconds: SECONDS, packetBytes: 64, mpps: results, idleEngineCpu: idleCpu, goals: { vsCrossConnect: 0.8, met: ratio >= 0.8 } };
  const md = `# bench/dpdk\n\nPod-to-pod through the switch, 64-byte packets, ${ROUNDS} rounds of ${SECONDS} s, alternating. The pods: one ` +
    `testpmd with two virtio-user ports (CPU 0); the switch's poll loop: CPU 1. Mpps per direction (median of rounds), and ` +
    `as a ratio to a testpmd cross-connect (the floor of a software switch).\n\n` +
    mdTable(['switch', 'a->b Mpps', 'b->a Mpps', 'a->b ratio', 'b->a ratio'], rows) +
    `\nGoal: >= 0.8x the cross-connect: ${ratio >= 0.8 ? 'met' : 'NOT met'} (${round(ratio, 2)}).\n` +
    `Idle plexus-dataplane (two ports, no traffic): ${round(idleCpu * 100, 1)}% of one core; its poll loop sleeps up to ` +
    `dpdk.maxSleepUs (200 µs) between polls when idle, the most the first packet after a pause can wait.\n` +
    `OVS-DPDK is not in this run yet (it needs hugepages; issue 10).\n\n![Mpps](dpdk.svg)\n`;
  const paths = writeResults('dpdk', json, md);
  writeFileSync(join(resolve(paths.md, '..'), 'dpdk.svg'), barSvg('Pod to pod, 64 B, Mpps per direction', [{ name: 'a->b', color: '#1f77b4' }, { name: 'b->a', color: '#d62728' }],
    ['cross-connect', 'plexus-dataplane'].map((v) => ({ label: v, values: [med(v, 0), med(v, 1)] })), { yLabel: 'Mpps' }));
  process.stdout.write(md);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).message}\n`);
  process.exit(1);
});

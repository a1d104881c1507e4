/**
 * (d) The CNI path: `bin/plexus-ipam` executed as a delegate executes its IPAM plugin (env + the delegate's
 * full config on stdin) against a plexusd started here, and Debian's host-local executed the same way with
 * the same range (its dataDir in a temp dir). ADD then DEL (with the ADD result as prevResult, as libcni
 * sends it), alternating between the two so drift hits both alike.
 *
 * IPAM needs no network namespace, but both sides want CNI_NETNS on ADD (skel requires it, Plexus checks it
 * is a netns): both get /proc/self/ns/net.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Summary, summarize } from '../lib/stats';
import { say } from './drive';

export const HOST_LOCAL = '/usr/lib/cni/host-local';
const RANGE = [[{ subnet: '10.99.0.0/16' }]];

export interface CniSide {
  add: Summary;
  del: Summary;
  cycle: Summary;
}

export type CniPhaseResult =
  | { skipped: string }
  | { iterations: number; plexusIpam: CniSide; hostLocal: CniSide; ratioP50: number; ratioP99: number; samples: { plexusIpam: number[]; hostLocal: number[] } };

interface Run {
  code: number;
  stdout: string;
  ms: number;
}

function exec(bin: string, env: Record<string, string>, input: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), ms: performance.now() - t0 }));
    child.stdin.end(input);
  });
}

const cniEnv = (command: string, containerId: string): Record<string, string> => ({
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  CNI_COMMAND: command,
  CNI_CONTAINERID: containerId,
  CNI_NETNS: command === 'DEL' ? '' : '/proc/self/ns/net',
  CNI_IFNAME: 'net1',
  CNI_PATH: '/usr/lib/cni',
  CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${containerId}`,
});

async function startDaemon(binDir: string, dir: string, socket: string): Promise<{ daemon: ChildProcess } | { skipped: string }> {
  for (const d of ['cni', 'manifests', 'state']) mkdirSync(join(dir, d), { recursive: true });
  // The cluster network is required config; IPAM requests never use it.
  writeFileSync(join(dir, 'cni/10-cluster.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cluster', plugins: [{ type: 'ptp', ipam: { type: 'host-local', ranges: [[{ subnet: '10.98.0.0/16' }]] } }] }));
  const config = {
    socketPath: socket, stateDir: join(dir, 'state'), binDirs: ['/usr/lib/cni'], confDir: join(dir, 'cni'), clusterNetwork: 'cluster',
    source: { type: 'file', dir: join(dir, 'manifests') }, logLevel: 'warn', nodeName: 'bench-node', ipam: { store: { type: 'local' }, pools: [] },
  };
  writeFileSync(join(dir, 'plexusd.json'), JSON.stringify(config));
  const logPath = join(dir, 'plexusd.log');
  const log = openSync(logPath, 'a');
  const daemon = spawn(process.execPath, [join(binDir, 'plexusd'), '--config', join(dir, 'plexusd.json')], { env: { PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', log, log] });
  for (let i = 0; i < 200; i++) {
    if (daemon.exitCode !== null) {
      const tail = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
      return { skipped: `plexusd exited (${daemon.exitCode}) with this config (ipam: {store: {type: local}, pools: []}): ${tail.slice(0, 400)}` };
    }
    if (spawnSync(join(binDir, 'plexusctl'), ['--socket', socket, 'health']).status === 0) return { daemon };
    await new Promise((r) => setTimeout(r, 50));
  }
  daemon.kill('SIGTERM');
  return { skipped: 'plexusd did not become healthy within 10 s' };
}

export async function runCniPhase(opts: { binDir: string; dir: string; iterations: number; warmup: number }): Promise<CniPhaseResult> {
  const plexusIpam = join(opts.binDir, 'plexus-ipam');
  if (!existsSync(plexusIpam)) return { skipped: `${plexusIpam} does not exist (make build creates it as a link to bin/plexus)` };
  if (!existsSync(HOST_LOCAL)) return { skipped: `${HOST_LOCAL} is not installed (Debian package containernetworking-plugins)` };
  const socket = join(opts.dir, 'plexus.sock');
  const started = await startDaemon(opts.binDir, opts.dir, socket);
  if ('skipped' in started) return started;
  const { daemon } = started;
  try {
    const conf = (ipam: object): string => JSON.stringify({ cniVersion: '1.0.0', name: 'bench-net', type: 'macvlan', master: 'eth0', ipam });
    const sides = {
      plexusIpam: { bin: plexusIpam, conf: conf({ type: 'plexus-ipam', socketPath: socket, ranges: RANGE }) },
      hostLocal: { bin: HOST_LOCAL, conf: conf({ type: 'host-local', dataDir: join(opts.dir, 'host-local'), ranges: RANGE }) },
    };
    const cycle = async (side: keyof typeof sides, i: number): Promise<[number, number]> => {
      const { bin, conf: c } = sides[side];
      const cid = `${side === 'plexusIpam' ? 'p' : 'h'}${i}-bench`;
      const add = await exec(bin, cniEnv('ADD', cid), c);
      if (add.code !== 0) throw new Error(`${side} ADD failed: ${add.stdout.slice(0, 300)}`);
      const del = await exec(bin, cniEnv('DEL', cid), JSON.stringify({ ...JSON.parse(c), prevResult: JSON.parse(add.stdout) }));
      if (del.code !== 0) throw new Error(`${side} DEL failed: ${del.stdout.slice(0, 300)}`);
      return [add.ms, del.ms];
    };
    // The daemon may be up while plexus-ipam is not served yet (a daemon built before the plugin landed).
    const probe = await exec(plexusIpam, cniEnv('ADD', 'probe-bench'), sides.plexusIpam.conf);
    if (probe.code !== 0) return { skipped: `plexus-ipam ADD against plexusd failed: ${probe.stdout.trim().slice(0, 300)}` };
    await exec(plexusIpam, cniEnv('DEL', 'probe-bench'), sides.plexusIpam.conf);
    const t = { plexusIpam: { add: [] as number[], del: [] as number[], cycle: [] as number[] }, hostLocal: { add: [] as number[], del: [] as number[], cycle: [] as number[] } };
    say(`cni: ${opts.warmup} warm-up + ${opts.iterations} ADD+DEL cycles each, alternating plexus-ipam and host-local`);
    for (let i = 0; i < opts.warmup + opts.iterations; i++) {
      for (const side of i % 2 === 0 ? (['plexusIpam', 'hostLocal'] as const) : (['hostLocal', 'plexusIpam'] as const)) {
        const [a, d] = await cycle(side, i);
        if (i < opts.warmup) continue;
        t[side].add.push(a);
        t[side].del.push(d);
        t[side].cycle.push(a + d);
      }
      if ((i + 1) % 50 === 0) say(`cni: ${i + 1}/${opts.warmup + opts.iterations}`);
    }
    const side = (x: { add: number[]; del: number[]; cycle: number[] }): CniSide => ({ add: summarize(x.add), del: summarize(x.del), cycle: summarize(x.cycle) });
    const p = side(t.plexusIpam);
    const h = side(t.hostLocal);
    return {
      iterations: opts.iterations, plexusIpam: p, hostLocal: h, ratioP50: p.cycle.p50 / h.cycle.p50, ratioP99: p.cycle.p99 / h.cycle.p99,
      samples: { plexusIpam: t.plexusIpam.cycle, hostLocal: t.hostLocal.cycle },
    };
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
  }
}

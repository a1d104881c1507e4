/**
 * The measurements, each between the two endpoints of a topology: TCP throughput with iperf3 (1 or N streams)
 * and UDP ping-pong latency with sockperf. Each starts its own server in the server netns and stops it by PID
 * in `finally`, so a failed measurement leaves no process behind.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { inNetns, ip } from '../lib/netns';
import { Background, must, runAsync } from '../../hack/cluster';
import type { Endpoints } from './topology';

const IPERF_PORT = '5201';
const SOCKPERF_PORT = '11111';
/** iperf3 -O: seconds of each TCP test left out of the result (slow start, first ARP, cold caches). */
export const TCP_OMIT_SECONDS = 1;
/** sockperf pp message size in bytes. */
export const SOCKPERF_MSG_SIZE = 64;

export interface TcpResult {
  gbps: number;
  retransmits: number;
}

export interface LatencyResult {
  /** sockperf's latency: half the round trip, in µs. */
  p50Us: number;
  p99Us: number;
  avgUs: number;
  observations: number;
}

/** Waits until a server listens on `port` inside `netns` (its own output may be block-buffered, so ask ss). */
async function waitListening(netns: string, proto: 'tcp' | 'udp', port: string, server: Background): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (!server.alive) throw new Error(`${server.args[3]} server exited: ${server.output.trim().slice(0, 300)}`);
    const out = await must('ip', inNetns(netns, 'ss', '-Hln', proto === 'tcp' ? '-t' : '-u', `sport = :${port}`));
    if (out.trim()) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${proto} port ${port} in ${netns} after 5 s`);
}

interface Iperf3Json {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
}

/** iperf3 -c with `streams` parallel TCP streams for `seconds` (after TCP_OMIT_SECONDS); receiver-side rate. */
export async function measureTcp(ep: Endpoints, streams: number, seconds: number): Promise<TcpResult> {
  const server = new Background('ip', inNetns(ep.server, 'iperf3', '-s', '-1', '-B', ep.serverIp, '-p', IPERF_PORT));
  try {
    await waitListening(ep.server, 'tcp', IPERF_PORT, server);
    const args = ['-c', ep.serverIp, '-p', IPERF_PORT, '-t', String(seconds), '-O', String(TCP_OMIT_SECONDS), '-P', String(streams), '-J', '--connect-timeout', '5000'];
    const r = await runAsync('ip', inNetns(ep.client, 'iperf3', ...args), { timeoutMs: (seconds + TCP_OMIT_SECONDS + 20) * 1000 });
    let json: Iperf3Json;
    try {
      json = JSON.parse(r.stdout) as Iperf3Json;
    } catch {
      throw new Error(`iperf3 client exited ${r.code} without JSON: ${r.stderr.trim().slice(0, 300)}`);
    }
    if (json.error) throw new Error(`iperf3: ${json.error}`);
    const bps = json.end?.sum_received?.bits_per_second;
    if (r.code !== 0 || typeof bps !== 'number') throw new Error(`iperf3 client exited ${r.code} with no receiver rate`);
    return { gbps: bps / 1e9, retransmits: json.end?.sum_sent?.retransmits ?? 0 };
  } finally {
    await server.stop();
  }
}

/** One `---> percentile 99.000 =   12.345` line of sockperf's summary. */
function percentileLine(out: string, p: string): number {
  const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(out);
  if (!m) throw new Error(`sockperf output has no ${p} percentile: ${out.trim().slice(-300)}`);
  return Number(m[1]);
}

/** sockperf ping-pong over UDP for `seconds` (sockperf itself spends the first ~0.4 s warming up). */
export async function measureLatency(ep: Endpoints, seconds: number): Promise<LatencyResult> {
  const server = new Background('ip', inNetns(ep.server, 'sockperf', 'sr', '-i', ep.serverIp, '-p', SOCKPERF_PORT));
  try {
    await waitListening(ep.server, 'udp', SOCKPERF_PORT, server);
    const args = ['pp', '-i', ep.serverIp, '-p', SOCKPERF_PORT, '-t', String(seconds), '-m', String(SOCKPERF_MSG_SIZE)];
    const r = await runAsync('ip', inNetns(ep.client, 'sockperf', ...args), { timeoutMs: (seconds + 20) * 1000 });
    const out = r.stdout + r.stderr;
    if (r.code !== 0) throw new Error(`sockperf pp exited ${r.code}: ${out.trim().slice(-300)}`);
    return {
      p50Us: percentileLine(out, '50.000'),
      p99Us: percentileLine(out, '99.000'),
      avgUs: Number(/avg-latency=([\d.]+)/.exec(out)?.[1] ?? NaN),
      observations: Number(/Total (\d+) observations/.exec(out)?.[1] ?? NaN),
    };
  } finally {
    await server.stop();
  }
}

/** A topology that cannot ping its server is broken: fail at set-up, not in the middle of the rounds. */
export async function checkReachable(ep: Endpoints): Promise<void> {
  let last = '';
  for (let i = 0; i < 3; i++) {
    const r = await runAsync('ip', inNetns(ep.client, 'ping', '-c', '1', '-W', '2', ep.serverIp));
    if (r.code === 0) return;
    last = (r.stdout + r.stderr).trim();
  }
  throw new Error(`${ep.serverIp} not reachable from ${ep.client}: ${last.slice(-300)}`);
}

/** The MTU of the client's interface towards the server (the report shows it: throughput depends on it). */
export async function clientMtu(ep: Endpoints): Promise<number> {
  const route = JSON.parse(await ip('-n', ep.client, '-j', 'route', 'get', ep.serverIp)) as { dev: string }[];
  const dev = route[0]?.dev;
  if (!dev) return NaN;
  const link = JSON.parse(await ip('-n', ep.client, '-j', 'link', 'show', 'dev', dev)) as { mtu: number }[];
  return link[0]?.mtu ?? NaN;
}

/**
 * bench/policy's variants and its report: medians of the rounds, each variant as a ratio to its baseline (the
 * eBPF variants to the datapath without the policy program, the iptables ones to the same kernel path without
 * rules), the goals of issue 11 judged (never asserted), the update times, and a bar chart of the ratios.
 */
import { barSvg, mdTable, median, percentile, round } from '../lib/stats';

export const KINDS = ['same-node', 'cross-node'] as const;
export type Kind = (typeof KINDS)[number];

export interface Variant {
  readonly name: string;
  /** The cluster it runs on: eBPF without the policy program, eBPF enforcing, kernel forwarding. */
  readonly cluster: 'ebpf-off' | 'ebpf' | 'kernel';
  /** Rules on each server (null: no policy at all). */
  readonly rules: number | null;
  /** What its ratios are to. */
  readonly baseline: string;
  readonly description: string;
}

export const VARIANTS: readonly Variant[] = [
  { name: 'ebpf-off', cluster: 'ebpf-off', rules: null, baseline: 'ebpf-off', description: 'plexus-routed eBPF, policy.enforce false: no policy program' },
  { name: 'ebpf-0', cluster: 'ebpf', rules: null, baseline: 'ebpf-off', description: 'policy program hooked, no policy (connections tracked, nothing isolated)' },
  { name: 'ebpf-10', cluster: 'ebpf', rules: 10, baseline: 'ebpf-off', description: 'a NetworkPolicy of 10 ingress rules on the server' },
  { name: 'ebpf-1000', cluster: 'ebpf', rules: 1000, baseline: 'ebpf-off', description: 'a NetworkPolicy of 1,000 ingress rules on the server' },
  { name: 'kernel-off', cluster: 'kernel', rules: null, baseline: 'kernel-off', description: 'plexus-routed without eBPF (kernel forwarding, netfilter on the path), no rules' },
  { name: 'iptables-10', cluster: 'kernel', rules: 10, baseline: 'kernel-off', description: 'the same 10 rules as iptables in FORWARD (ESTABLISHED first)' },
  { name: 'iptables-1000', cluster: 'kernel', rules: 1000, baseline: 'kernel-off', description: 'the same 1,000 rules as iptables in FORWARD (ESTABLISHED first)' },
];

export interface Samples {
  tcpGbps: number[];
  p50Us: number[];
  p99Us: number[];
  crrPerSec: number[];
}

export interface UpdateSamples {
  /** plexusd's compile and map writes per change (its update histogram). */
  daemonMs: number[];
  /** The same, for a policy selecting one of the pods added and removed while the 10-rule one isolates all. */
  onePodMs: number[];
  /** Manifest written -> the change seen by a ping (file source's notice included); apply and remove alternate. */
  seenMs: number[];
  iptablesApplyMs: number[];
  iptablesRemoveMs: number[];
}

export interface RunConfig {
  seconds: number;
  rounds: number;
  pods: number;
  updateRounds: number;
  host: { kernel: string; cpus: number; iptables: string };
}

interface Row {
  variant: string;
  kind: Kind;
  baseline: string;
  tcpGbps: number;
  p50Us: number;
  p99Us: number;
  crrPerSec: number;
  tcpRatio: number;
  p50Ratio: number;
  crrRatio: number;
}

export function buildReport(samples: ReadonlyMap<string, Samples>, update: UpdateSamples, config: RunConfig): { json: unknown; markdown: string; svg: string } {
  const med = (v: string, k: Kind) => {
    const s = samples.get(`${v}|${k}`)!;
    return { tcpGbps: median(s.tcpGbps), p50Us: median(s.p50Us), p99Us: median(s.p99Us), crrPerSec: median(s.crrPerSec) };
  };
  const rows: Row[] = KINDS.flatMap((kind) => VARIANTS.map((v) => {
    const m = med(v.name, kind);
    const b = med(v.baseline, kind);
    return { variant: v.name, kind, baseline: v.baseline, ...m, tcpRatio: m.tcpGbps / b.tcpGbps, p50Ratio: m.p50Us / b.p50Us, crrRatio: m.crrPerSec / b.crrPerSec };
  }));
  const at = (v: string, k: Kind) => rows.find((r) => r.variant === v && r.kind === k)!;
  const goals = KINDS.map((kind) => {
    const ebpf = at('ebpf-1000', kind);
    const ipt = at('iptables-1000', kind);
    return {
      kind,
      throughputAt1000: { ratio: round(ebpf.tcpRatio, 3), goal: '>= 0.95', met: ebpf.tcpRatio >= 0.95 },
      connectionsAt1000: { ebpf: round(ebpf.crrRatio, 3), iptables: round(ipt.crrRatio, 3), goal: 'eBPF >= 0.95 and iptables below it', met: ebpf.crrRatio >= 0.95 && ipt.crrRatio < ebpf.crrRatio },
    };
  });
  const up = {
    daemonMs: { p50: round(percentile(update.daemonMs, 50), 1), p99: round(percentile(update.daemonMs, 99), 1) },
    onePodMs: { p50: round(percentile(update.onePodMs, 50), 1), p99: round(percentile(update.onePodMs, 99), 1) },
    seenMs: { p50: round(percentile(update.seenMs.filter(Number.isFinite), 50), 0), p99: round(percentile(update.seenMs.filter(Number.isFinite), 99), 0) },
    iptablesApplyMs: { p50: round(percentile(update.iptablesApplyMs, 50), 0) },
    iptablesRemoveMs: { p50: round(percentile(update.iptablesRemoveMs, 50), 0) },
  };

  let md = '# bench/policy\n\n';
  md += `What NetworkPolicy costs on plexus-routed, against iptables doing the same filtering: TCP throughput (iperf3, 1 stream), UDP request/response latency (sockperf ping-pong, half round trip), new TCP connections per second (crr.c); median of ${config.rounds} rounds of ${config.seconds} s. A rule set of N rules is N-1 rules that never match the traffic and, last, the rule allowing the client. eBPF variants are compared with the datapath without the policy program; iptables variants with the same kernel-forwarding path without rules (${config.host.iptables}). Kernel ${config.host.kernel}, ${config.host.cpus} CPUs.\n\n`;
  for (const kind of KINDS) {
    md += `## ${kind}\n\n`;
    md += mdTable(['variant', 'TCP Gbit/s', 'x baseline', 'p50 µs', 'p99 µs', 'p50 x baseline', 'conn/s', 'x baseline'],
      rows.filter((r) => r.kind === kind).map((r) => [r.variant, round(r.tcpGbps), round(r.tcpRatio, 3), round(r.p50Us, 1), round(r.p99Us, 1), round(r.p50Ratio, 3), round(r.crrPerSec, 0), round(r.crrRatio, 3)]));
    md += '\n';
  }
  md += '## Goals (issue 11)\n\n';
  for (const g of goals) {
    md += `- ${g.kind}: throughput with 1,000 rules ${g.throughputAt1000.ratio} of the datapath without policy (goal ${g.throughputAt1000.goal}): ${g.throughputAt1000.met ? 'met' : 'NOT met'}.\n`;
    md += `- ${g.kind}: new connections with 1,000 rules: eBPF ${g.connectionsAt1000.ebpf}, iptables ${g.connectionsAt1000.iptables} of their baselines (goal: ${g.connectionsAt1000.goal}): ${g.connectionsAt1000.met ? 'met' : 'NOT met'}.\n`;
  }
  md += `\n## Policy updates with ${config.pods} pods on the node\n\n`;
  md += `A NetworkPolicy of 10 rules selecting all ${config.pods} pods, applied and removed ${config.updateRounds} times; then, while it isolates them all, a policy selecting one of them added and removed as often; milliseconds.\n\n`;
  md += mdTable(['what', 'p50', 'p99'], [
    ['plexusd: compile and write the maps (plexus_policy_update_seconds)', up.daemonMs.p50, up.daemonMs.p99],
    ['plexusd, a policy for one pod of them (only its entries are written)', up.onePodMs.p50, up.onePodMs.p99],
    ['manifest written -> change seen by a ping every 10 ms (file source notice included)', up.seenMs.p50, up.seenMs.p99],
    [`iptables-restore of the same rules (${config.pods} chains)`, up.iptablesApplyMs.p50, ''],
    ['iptables-restore removing them', up.iptablesRemoveMs.p50, ''],
  ]);
  md += '\n![ratios to the baselines](policy.svg)\n';

  const svg = barSvg('bench/policy: ratio to the path without policy (1.0 = no cost)', [
    { name: 'TCP throughput', color: '#4e79a7' }, { name: 'new connections/s', color: '#f28e2b' }, { name: 'p50 latency (lower is better)', color: '#76b7b2' },
  ], rows.filter((r) => r.variant !== r.baseline).map((r) => ({ label: r.variant, sublabel: r.kind, values: [r.tcpRatio, r.crrRatio, r.p50Ratio] })), { yLabel: 'x baseline', refLines: [{ value: 1, label: 'baseline' }, { value: 0.95, label: 'goal 0.95', color: '#c00' }] });

  const json = { config, variants: VARIANTS, rows: rows.map((r) => ({ ...r, tcpGbps: round(r.tcpGbps, 3), tcpRatio: round(r.tcpRatio, 3), p50Ratio: round(r.p50Ratio, 3), crrRatio: round(r.crrRatio, 3) })), samples: Object.fromEntries(samples), goals, updates: { ...up, samples: update } };
  return { json, markdown: md, svg };
}

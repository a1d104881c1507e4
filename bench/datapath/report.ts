/**
 * From per-round samples to the report: medians, ratios to each kind's limit (and to the bridge plugin), the
 * issue's goals for every topology that is not a baseline, as JSON, a markdown table and an SVG bar chart.
 * Pure: no clock, no files (main.ts writes them).
 */
import { barSvg, median, mdTable, round } from '../lib/stats';
import { BRIDGE, LIMIT } from './topologies';
import type { Endpoints, TopologyKind } from './topology';

/** Goals of the issue, reported and never asserted (STYLE 20). Throughput goals hold for 1 and 4 streams. */
export const GOALS = {
  sameNodeThroughputVsLimit: 0.95,
  sameNodeThroughputVsBridge: 1.2,
  sameNodeP50VsLimit: 1.05,
  crossNodeThroughputVsLimit: 0.9,
} as const;

/** One value per successful round. */
export interface Samples {
  tcp1Gbps: number[];
  tcp4Gbps: number[];
  retransmits1: number[];
  retransmits4: number[];
  p50Us: number[];
  p99Us: number[];
}

export const emptySamples = (): Samples => ({ tcp1Gbps: [], tcp4Gbps: [], retransmits1: [], retransmits4: [], p50Us: [], p99Us: [] });

export interface TopologyRun {
  name: string;
  kind: TopologyKind;
  baseline: boolean;
  /** The like-for-like baseline's name (Topology.likeForLike). */
  likeForLike?: string;
  description: string;
  endpoints?: Endpoints;
  mtu?: number;
  /** Set-up failed: no samples. */
  error?: string;
  samples: Samples;
  /** Measurements that failed in some round ("round 2 tcp x4: ..."). */
  failures: string[];
}

export interface RunConfig {
  seconds: number;
  rounds: number;
  tcpOmitSeconds: number;
  sockperfMsgSize: number;
  host: { kernel: string; cpus: number; brNetfilter: boolean };
}

type Num = number | null;

interface Figures {
  tcp1Gbps: Num;
  tcp4Gbps: Num;
  p50Us: Num;
  p99Us: Num;
}

/** Topology ÷ reference for each figure (latency too: above 1 is slower). */
interface Ratios {
  tcp1: Num;
  tcp4: Num;
  p50: Num;
  p99: Num;
}

interface GoalCheck {
  goal: string;
  value: Num;
  met: boolean | null;
}

interface Row {
  run: TopologyRun;
  median: Figures;
  limit: string;
  vsLimit: Ratios;
  /** Throughput ÷ bridge-plugin, same-node only. */
  vsBridge: { tcp1: Num; tcp4: Num } | null;
  /** Throughput ÷ the topology's like-for-like baseline (same encapsulation), when it names one. */
  vsLikeForLike: { name: string; tcp1: Num; tcp4: Num } | null;
  goals: GoalCheck[] | null;
}

const med = (xs: number[]): Num => (xs.length ? median(xs) : null);
const ratio = (a: Num, b: Num): Num => (a !== null && b !== null && b > 0 ? a / b : null);
const fmt = (x: Num, digits = 2): string => (x === null ? 'n/a' : String(round(x, digits)));
const spread = (xs: number[], digits = 2): string => (xs.length ? `${round(Math.min(...xs), digits)}–${round(Math.max(...xs), digits)}` : 'n/a');

function figures(s: Samples): Figures {
  return { tcp1Gbps: med(s.tcp1Gbps), tcp4Gbps: med(s.tcp4Gbps), p50Us: med(s.p50Us), p99Us: med(s.p99Us) };
}

function goalChecks(kind: TopologyKind, limit: string, vsLimit: Ratios, vsBridge: Row['vsBridge']): GoalCheck[] {
  const atLeast = (goal: string, value: Num, min: number): GoalCheck => ({ goal, value, met: value === null ? null : value >= min });
  const atMost = (goal: string, value: Num, max: number): GoalCheck => ({ goal, value, met: value === null ? null : value <= max });
  if (kind === 'cross-node') {
    const g = GOALS.crossNodeThroughputVsLimit;
    return [atLeast(`TCP x1 >= ${g}x ${limit}`, vsLimit.tcp1, g), atLeast(`TCP x4 >= ${g}x ${limit}`, vsLimit.tcp4, g)];
  }
  const g = GOALS.sameNodeThroughputVsLimit;
  const b = GOALS.sameNodeThroughputVsBridge;
  return [
    atLeast(`TCP x1 >= ${g}x ${limit}`, vsLimit.tcp1, g),
    atLeast(`TCP x4 >= ${g}x ${limit}`, vsLimit.tcp4, g),
    atLeast(`TCP x1 >= ${b}x ${BRIDGE}`, vsBridge?.tcp1 ?? null, b),
    atLeast(`TCP x4 >= ${b}x ${BRIDGE}`, vsBridge?.tcp4 ?? null, b),
    atMost(`p50 <= ${GOALS.sameNodeP50VsLimit}x ${limit}`, vsLimit.p50, GOALS.sameNodeP50VsLimit),
  ];
}

function analyse(runs: TopologyRun[]): Row[] {
  const byName = new Map(runs.map((r) => [r.name, figures(r.samples)]));
  return runs.map((run) => {
    const m = figures(run.samples);
    const limit = LIMIT[run.kind];
    const ref = byName.get(limit);
    const vsLimit: Ratios = {
      tcp1: ratio(m.tcp1Gbps, ref?.tcp1Gbps ?? null),
      tcp4: ratio(m.tcp4Gbps, ref?.tcp4Gbps ?? null),
      p50: ratio(m.p50Us, ref?.p50Us ?? null),
      p99: ratio(m.p99Us, ref?.p99Us ?? null),
    };
    const bridge = byName.get(BRIDGE);
    const vsBridge = run.kind === 'same-node' ? { tcp1: ratio(m.tcp1Gbps, bridge?.tcp1Gbps ?? null), tcp4: ratio(m.tcp4Gbps, bridge?.tcp4Gbps ?? null) } : null;
    const like = run.likeForLike ? byName.get(run.likeForLike) : undefined;
    const vsLikeForLike = run.likeForLike
      ? { name: run.likeForLike, tcp1: ratio(m.tcp1Gbps, like?.tcp1Gbps ?? null), tcp4: ratio(m.tcp4Gbps, like?.tcp4Gbps ?? null) }
      : null;
    return { run, median: m, limit, vsLimit, vsBridge, vsLikeForLike, goals: run.baseline ? null : goalChecks(run.kind, limit, vsLimit, vsBridge) };
  });
}

function verdict(row: Row): string {
  if (!row.goals) return 'baseline';
  if (row.run.error) return 'n/a (set-up failed)';
  const missing = row.goals.filter((g) => g.met === null);
  const failed = row.goals.filter((g) => g.met === false);
  if (failed.length) return `NOT met: ${failed.map((g) => `${g.goal} (${fmt(g.value)})`).join('; ')}`;
  if (missing.length) return `n/a: no value for ${missing.map((g) => g.goal).join('; ')}`;
  return 'met';
}

/**
 * How far apart the rounds were: the widest (max - min) ÷ median of a throughput or p50 figure. A ratio nearer to
 * its goal than this is not conclusive from one run.
 */
function noiseNote(rows: Row[]): string {
  let worst: { spread: number; what: string } | null = null;
  for (const r of rows) {
    const s = r.run.samples;
    for (const [what, xs] of [['TCP x1', s.tcp1Gbps], ['TCP x4', s.tcp4Gbps], ['p50', s.p50Us]] as const) {
      if (xs.length < 2) continue;
      const spread = (Math.max(...xs) - Math.min(...xs)) / median(xs);
      if (!worst || spread > worst.spread) worst = { spread, what: `${what} of ${r.run.name}` };
    }
  }
  if (!worst) return '';
  return `\nNoise: the widest spread over the rounds was ${Math.round(worst.spread * 100)}% of the median (${worst.what}); ` +
    'a ratio closer to its goal than the spread of its two figures is not conclusive from this run.\n';
}

export interface Report {
  json: unknown;
  markdown: string;
  svg: string;
}

export function buildReport(runs: TopologyRun[], config: RunConfig): Report {
  const rows = analyse(runs);
  const ok = (r: Row) => `${Math.min(r.run.samples.tcp1Gbps.length, r.run.samples.tcp4Gbps.length, r.run.samples.p50Us.length)}/${config.rounds}`;
  let md = '# bench/datapath\n\n' +
    `Throughput and latency between two endpoints ("pods", network namespaces) through each topology, in one run: ` +
    `iperf3 TCP with 1 and 4 streams (${config.seconds} s each after ${config.tcpOmitSeconds} s left out; the receiver's rate), ` +
    `sockperf UDP ping-pong (${config.sockperfMsgSize}-byte messages, ${config.seconds} s; latency is half the round trip, as sockperf reports it). ` +
    `${config.rounds} rounds; in each round every measurement runs on every topology in turn (round-robin, starting one topology later ` +
    `each round) so machine noise hits all alike; every figure is the median of the rounds. ` +
    `Host: kernel ${config.host.kernel}, ${config.host.cpus} CPUs${config.host.brNetfilter ? ', br_netfilter loaded (bridged frames pass the empty netfilter hooks of their netns)' : ''}. ` +
    'Goals are reported, not asserted.\n\n' +
    '## Median of the rounds\n\n' +
    mdTable(['topology', 'kind', 'MTU', 'TCP x1 Gbit/s', 'TCP x4 Gbit/s', 'p50 µs', 'p99 µs', 'rounds ok'],
      rows.map((r) => [r.run.name, r.run.kind, r.run.mtu ?? 'n/a', fmt(r.median.tcp1Gbps), fmt(r.median.tcp4Gbps), fmt(r.median.p50Us, 1), fmt(r.median.p99Us, 1), r.run.error ? 'set-up failed' : ok(r)]));
  md += '\n## Ratios and goals\n\n' +
    'Topology ÷ the limit of its kind (raw-veth for same-node, raw-node-veth for cross-node); throughput: higher is better, ' +
    `latency: lower is better. Goals for Plexus topologies: same node, throughput >= ${GOALS.sameNodeThroughputVsLimit}x raw-veth and ` +
    `>= ${GOALS.sameNodeThroughputVsBridge}x bridge-plugin (1 and 4 streams), p50 latency <= ${GOALS.sameNodeP50VsLimit}x raw-veth; ` +
    `across nodes, throughput >= ${GOALS.crossNodeThroughputVsLimit}x raw-node-veth. Baselines show ratios only. ` +
    'A topology with an encapsulation is also divided by a baseline with the same encapsulation (like for like): ' +
    'what is left is what Plexus costs.\n\n' +
    mdTable(['topology', 'relative to', 'TCP x1', 'TCP x4', 'p50', 'p99', 'TCP x1 ÷ bridge', 'TCP x4 ÷ bridge', 'TCP x1 / x4 ÷ like for like', 'goals'],
      rows.map((r) => [r.run.name, r.limit, fmt(r.vsLimit.tcp1), fmt(r.vsLimit.tcp4), fmt(r.vsLimit.p50), fmt(r.vsLimit.p99),
        r.vsBridge ? fmt(r.vsBridge.tcp1) : '—', r.vsBridge ? fmt(r.vsBridge.tcp4) : '—',
        r.vsLikeForLike ? `${fmt(r.vsLikeForLike.tcp1)} / ${fmt(r.vsLikeForLike.tcp4)} (${r.vsLikeForLike.name})` : '—', verdict(r)]));
  if (!rows.some((r) => r.goals)) md += '\nNo Plexus topology in this run: the goals apply to none of these rows.\n';
  md += '\n## Spread over the rounds (min–max)\n\n' +
    mdTable(['topology', 'TCP x1 Gbit/s', 'TCP x4 Gbit/s', 'p50 µs', 'p99 µs', 'TCP retransmits x1 / x4 (median)'],
      rows.map((r) => {
        const s = r.run.samples;
        return [r.run.name, spread(s.tcp1Gbps), spread(s.tcp4Gbps), spread(s.p50Us, 1), spread(s.p99Us, 1), `${fmt(med(s.retransmits1), 0)} / ${fmt(med(s.retransmits4), 0)}`];
      }));
  md += noiseNote(rows);
  md += '\n## Topologies\n\n' + rows.map((r) => `- \`${r.run.name}\` (${r.run.kind}): ${r.run.description}.`).join('\n') + '\n';
  const problems = rows.flatMap((r) => [...(r.run.error ? [`${r.run.name}: set-up failed: ${r.run.error}`] : []), ...r.run.failures.map((f) => `${r.run.name}: ${f}`)]);
  if (problems.length) md += '\n## Failures\n\n' + problems.map((p) => `- ${p}`).join('\n') + '\n';
  md += '\n![ratios to the limit](datapath.svg)\n';

  const json = {
    config,
    goals: GOALS,
    limits: LIMIT,
    topologies: rows.map((r) => ({
      name: r.run.name,
      kind: r.run.kind,
      baseline: r.run.baseline,
      description: r.run.description,
      endpoints: r.run.endpoints ?? null,
      mtu: r.run.mtu ?? null,
      error: r.run.error ?? null,
      failures: r.run.failures,
      median: r.median,
      relativeTo: r.limit,
      vsLimit: r.vsLimit,
      vsBridge: r.vsBridge,
      vsLikeForLike: r.vsLikeForLike,
      goals: r.goals,
      verdict: verdict(r),
      samples: r.run.samples,
    })),
  };
  return { json, markdown: md, svg: ratioSvg(rows) };
}

function ratioSvg(rows: Row[]): string {
  const plotted = rows.filter((r) => !r.run.error);
  const values = plotted.flatMap((r) => [r.vsLimit.tcp1, r.vsLimit.tcp4, r.vsLimit.p50, r.vsLimit.p99]).filter((v): v is number => v !== null);
  // A p99 ten times the limit's would flatten everything else: cut the axis at 2.5 (the bar keeps its label).
  const yMax = Math.min(2.5, Math.max(1.2, ...values) * 1.12);
  return barSvg('bench/datapath: each topology ÷ the limit of its kind (median of rounds)', [
    { name: 'TCP 1 stream (higher better)', color: '#1f77b4' },
    { name: 'TCP 4 streams (higher better)', color: '#6baed6' },
    { name: 'p50 latency (lower better)', color: '#d62728' },
    { name: 'p99 latency (lower better)', color: '#fc9272' },
  ], plotted.map((r) => ({
    label: r.run.name,
    sublabel: `÷ ${r.limit}`,
    values: [r.vsLimit.tcp1, r.vsLimit.tcp4, r.vsLimit.p50, r.vsLimit.p99],
  })), { yLabel: 'ratio to the limit', yMax, refLines: [{ value: 1, label: '1 = the limit' }] });
}

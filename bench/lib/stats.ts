/** Small statistics and report helpers shared by the benchmarks. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

// Benchmarks run as bundles from dist/bench/, so the repository's bench/results is two levels up.
export const RESULTS_DIR = resolve(__dirname, '../../bench/results');

export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  const sum = samples.reduce((a, b) => a + b, 0);
  return {
    n: samples.length,
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    p99: percentile(samples, 99),
    mean: sum / samples.length,
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

export function writeResults(name: string, json: unknown, markdown: string): { json: string; md: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const jsonPath = join(RESULTS_DIR, `${name}.json`);
  const mdPath = join(RESULTS_DIR, `${name}.md`);
  writeFileSync(jsonPath, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(mdPath, markdown);
  return { json: jsonPath, md: mdPath };
}

export function mdTable(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string;
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A horizontal CDF plot of several latency series as an SVG (no plotting dependency needed). */
export function cdfSvg(title: string, series: { name: string; samples: number[]; color: string }[], unit = 'ms'): string {
  const W = 640, H = 360, L = 60, R = 20, T = 40, B = 50;
  const max = Math.max(...series.flatMap((s) => s.samples)) * 1.05;
  const x = (v: number) => L + (v / max) * (W - L - R);
  const y = (q: number) => H - B - q * (H - T - B);
  const paths = series.map((s) => {
    const sorted = [...s.samples].sort((a, b) => a - b);
    const pts = sorted.map((v, i) => `${x(v).toFixed(1)},${y((i + 1) / sorted.length).toFixed(1)}`);
    return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.join(' ')}"/>`;
  });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const v = f * max;
    return `<line x1="${x(v)}" y1="${H - B}" x2="${x(v)}" y2="${H - B + 5}" stroke="#333"/><text x="${x(v)}" y="${H - B + 20}" font-size="12" text-anchor="middle">${v.toFixed(0)}</text>`;
  });
  const yticks = [0, 0.5, 0.9, 0.99].map((q) => `<text x="${L - 8}" y="${y(q) + 4}" font-size="12" text-anchor="end">p${Math.round(q * 100)}</text><line x1="${L}" y1="${y(q)}" x2="${W - R}" y2="${y(q)}" stroke="#ddd"/>`);
  const legend = series.map((s, i) => `<rect x="${L + 10}" y="${T + 8 + i * 18}" width="12" height="12" fill="${s.color}"/><text x="${L + 28}" y="${T + 18 + i * 18}" font-size="12">${s.name}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" font-size="15" text-anchor="middle">${title}</text>
${yticks.join('\n')}
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>
${ticks.join('\n')}
<text x="${(W + L) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">${unit}</text>
${paths.join('\n')}
${legend.join('\n')}
</svg>
`;
}

/** The middle of the samples (the mean of the two middle ones for an even count); NaN if there are none. */
export function median(samples: number[]): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface BarGroup {
  label: string;
  /** A second, smaller line under the label (for example what the values are relative to). */
  sublabel?: string;
  /** One value per series, in series order; null draws "n/a". */
  values: (number | null)[];
}

export interface BarOptions {
  yLabel: string;
  /** Horizontal lines across the plot, for example 1.0 for "equal to the reference" or a goal. */
  refLines?: { value: number; label: string; color?: string }[];
  /** Top of the axis; taller bars are cut there and keep their value as a label. Default: fits everything. */
  yMax?: number;
}

function niceStep(raw: number): number {
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * pow;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A grouped vertical bar chart as an SVG: one group per row of a table, one bar per series. */
export function barSvg(title: string, series: { name: string; color: string }[], groups: BarGroup[], opts: BarOptions): string {
  const barW = 18, L = 60, R = 150, T = 60, B = 62, H = 400;
  const W = Math.max(L + 20 + series.reduce((w, s) => w + s.name.length * 6 + 30, 0), L + R + groups.length * (series.length * barW + 26));
  // Groups share the plot's width; the bars of a group sit in its middle.
  const groupW = (W - L - R) / Math.max(1, groups.length);
  const gap = groupW - series.length * barW;
  const finite = groups.flatMap((g) => g.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const top = opts.yMax ?? Math.max(...finite, ...(opts.refLines ?? []).map((r) => r.value), 0.01) * 1.12;
  const step = niceStep(top / 5);
  const y = (v: number) => H - B - (Math.min(v, top) / top) * (H - T - B);
  const out: string[] = [];
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#e5e5e5"/><text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${Number(v.toFixed(3))}</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = L + gap / 2 + gi * groupW;
    g.values.forEach((v, si) => {
      const x = x0 + si * barW;
      const color = series[si]?.color ?? '#888';
      if (v === null || !Number.isFinite(v)) {
        out.push(`<text x="${x + barW / 2}" y="${H - B - 4}" font-size="9" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      const cut = v > top;
      out.push(`<rect x="${x + 1}" y="${y(v)}" width="${barW - 2}" height="${H - B - y(v)}" fill="${color}"${cut ? ' fill-opacity="0.6"' : ''}/>`);
      out.push(`<text x="${x + barW / 2}" y="${y(v) - 3}" font-size="9" text-anchor="middle"${cut ? ' font-weight="bold"' : ''}>${Number(v.toFixed(2))}</text>`);
    });
    const cx = x0 + (series.length * barW) / 2;
    out.push(`<text x="${cx}" y="${H - B + 16}" font-size="11" text-anchor="middle">${esc(g.label)}</text>`);
    if (g.sublabel) out.push(`<text x="${cx}" y="${H - B + 30}" font-size="10" text-anchor="middle" fill="#666">${esc(g.sublabel)}</text>`);
  });
  for (const r of opts.refLines ?? []) {
    const c = r.color ?? '#333';
    out.push(`<line x1="${L}" y1="${y(r.value)}" x2="${W - R}" y2="${y(r.value)}" stroke="${c}" stroke-dasharray="5,3"/><text x="${W - R + 4}" y="${y(r.value) + 4}" font-size="10" fill="${c}">${esc(r.label)}</text>`);
  }
  // Legend entries one after another, each as wide as its name (about 6 px a character at font-size 11).
  const legendX = series.map((_, i) => L + series.slice(0, i).reduce((w, s) => w + s.name.length * 6 + 30, 0));
  const legend = series.map((s, i) => `<rect x="${legendX[i]}" y="32" width="12" height="12" fill="${s.color}"/><text x="${legendX[i]! + 16}" y="42" font-size="11">${esc(s.name)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" font-size="15" text-anchor="middle">${esc(title)}</text>
${legend.join('\n')}
${out.join('\n')}
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>
<text x="16" y="${(T + H - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>
</svg>
`;
}

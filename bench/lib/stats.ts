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

/**
 * bench/ipam (issue 3 "Benchmark"), in one run:
 * (a) the in-daemon path on the local store, concurrency 1, 16, 64 (local-phase.ts);
 * (b) the in-daemon path on a 3-member etcd cluster with three nodes, concurrency 16, 64 (etcd-phase.ts);
 * (b2) the same on the Kubernetes store against the test API server (kube-phase.ts);
 * (c) zero duplicates over 100,000 allocations with faults injected (faults-phase.ts);
 * (d) plexus-ipam executed as a CNI IPAM plugin against plexusd, versus host-local (cni-phase.ts).
 * Goals are reported, never asserted (STYLE 20): local >= 10,000 allocations/s; etcd >= 1,000/s across three
 * nodes with <= 0.1 etcd writes per allocation (the Kubernetes store: the same write budget); plexus-ipam at least as fast as host-local; zero duplicates.
 *
 * Knobs: PLEXUS_BENCH_IPAM_LOCAL (allocations per local row), PLEXUS_BENCH_IPAM_ETCD, PLEXUS_BENCH_IPAM_KUBE, PLEXUS_BENCH_IPAM_FAULTS,
 * PLEXUS_BENCH_IPAM_CNI (CNI cycles per side), PLEXUS_BIN_DIR (default bin/).
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RESULTS_DIR, cdfSvg, mdTable, round, writeResults } from '../lib/stats';
import { type CniPhaseResult, runCniPhase } from './cni-phase';
import { type ThroughputRow, say } from './drive';
import { FAULTS_NODE_FLAG, type FaultsResult, runFaultsNodeChild, runFaultsPhase } from './faults-phase';
import { runLocalPhase } from './local-phase';
import { runKubePhase } from './kube-phase';

const ROOT = resolve(__dirname, '../..');
const num = (name: string, dflt: number): number => Number(process.env[name] ?? dflt);
const GOALS = { localPerSecond: 10000, etcdPerSecond: 1000, etcdWritesPerAllocation: 0.1, cniRatioP50: 1, duplicates: 0 };

/** etcd3 must stay outside a bundle (it reads its .proto files from its package), so (b) gets its own. */
function loadEtcdPhase(): typeof import('./etcd-phase') {
  const req = createRequire(join(ROOT, 'package.json'));
  const outfile = join(ROOT, 'dist/bench/ipam-etcd-phase.js');
  (req('esbuild') as typeof import('esbuild')).buildSync({
    entryPoints: [join(ROOT, 'bench/ipam/etcd-phase.ts')], outfile, bundle: true, platform: 'node', target: 'node20',
    external: ['etcd3', 'koffi'], logLevel: 'warning',
  });
  return req(outfile) as typeof import('./etcd-phase');
}

async function phase<T>(name: string, fn: () => Promise<T>): Promise<T | { error: string }> {
  const t0 = performance.now();
  say(`${name}: start`);
  try {
    const out = await fn();
    say(`${name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return out;
  } catch (e) {
    say(`${name}: FAILED: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'plexus-bench-ipam-'));
  try {
    const local = await phase('(a) in-daemon, local store', () =>
      runLocalPhase(join(dir, 'local'), { total: num('PLEXUS_BENCH_IPAM_LOCAL', 20000), deadlineMs: 10000, concurrencies: [1, 16, 64] }));
    const etcd = await phase('(b) in-daemon, etcd, 3 nodes', () =>
      loadEtcdPhase().runEtcdPhase(join(dir, 'etcd'), { total: num('PLEXUS_BENCH_IPAM_ETCD', 10000), deadlineMs: 20000, concurrencies: [16, 64] }));
    const kube = await phase('(b2) in-daemon, Kubernetes store, 3 nodes', () =>
      runKubePhase(join(dir, 'kube'), { total: num('PLEXUS_BENCH_IPAM_KUBE', 10000), deadlineMs: 30000, concurrencies: [16, 64] }));
    const faults = await phase('(c) duplicates under faults', () =>
      runFaultsPhase(join(dir, 'faults'), { total: num('PLEXUS_BENCH_IPAM_FAULTS', 100000), deadlineMs: 240000, crashEvery: 5000, gcEvery: 2000, workers: 24, script: __filename }));
    const cni = await phase('(d) CNI path, plexus-ipam vs host-local', () =>
      runCniPhase({ binDir: process.env['PLEXUS_BIN_DIR'] ?? join(ROOT, 'bin'), dir: join(dir, 'cni'), iterations: num('PLEXUS_BENCH_IPAM_CNI', 200), warmup: 10 }));
    report(local, etcd, kube, faults, cni);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Maybe<T> = T | { error: string };
const failed = (x: unknown): x is { error: string } => typeof x === 'object' && x !== null && 'error' in x;

function report(local: Maybe<ThroughputRow[]>, etcd: Maybe<ThroughputRow[]>, kube: Maybe<ThroughputRow[]>, faults: Maybe<FaultsResult>, cni: Maybe<CniPhaseResult>): void {
  const rows = [...(failed(local) ? [] : local), ...(failed(etcd) ? [] : etcd), ...(failed(kube) ? [] : kube)];
  const goalOf = (r: ThroughputRow): string => r.store === 'local'
    ? `>= ${GOALS.localPerSecond}/s: ${r.perSecond >= GOALS.localPerSecond ? 'met' : 'not met'}`
    : r.store === 'kubernetes'
      ? `<= ${GOALS.etcdWritesPerAllocation} writes: ${r.writesPerAllocation <= GOALS.etcdWritesPerAllocation ? 'met' : 'not met'}`
      : `>= ${GOALS.etcdPerSecond}/s and <= ${GOALS.etcdWritesPerAllocation} writes: ${r.perSecond >= GOALS.etcdPerSecond && r.writesPerAllocation <= GOALS.etcdWritesPerAllocation ? 'met' : 'not met'}`;
  let md = '# bench/ipam\n\nOne run; numbers from this machine. Goals are reported, not asserted.\n\n' +
    '## In-daemon path (the `Ipam` API as the daemon calls it; one address per allocation)\n\n' +
    mdTable(['store', 'nodes', 'concurrency', 'allocations', 'allocations/s', 'p50 ms', 'p99 ms', 'store writes/allocation', 'disk syncs/allocation', 'goal'],
      rows.map((r) => [r.store, r.nodes, r.concurrency, r.allocations, round(r.perSecond, 0), round(r.p50Ms, 3), round(r.p99Ms, 3), round(r.writesPerAllocation, 3),
        r.syncsPerAllocation === undefined ? '-' : round(r.syncsPerAllocation, 3), goalOf(r)]));
  md += '\nEach local row starts from a fresh store under stateDir; the etcd rows share three nodes (each its own etcd client ' +
    'and local node store) on a 3-member cluster on loopback, requests spread round-robin. Store writes: for etcd, ' +
    'transactions; for the Kubernetes store, requests that changed an IPAMRecord, counted by the test API server (hack/kube-api), which runs ' +
    'in the bench\'s own process, so its allocations/s is a floor (no goal); for the local store, journal commits. Disk syncs: the local store\'s fdatasync calls; the book\'s lines are written ' +
    'before an allocation returns and synced within 10 ms, the reserve growth and block claims before use (docs/decisions.md D-6).\n';
  if (failed(local)) md += `\n(a) local store failed: ${local.error}\n`;
  if (failed(etcd)) md += `\n(b) etcd failed: ${etcd.error}\n`;
  if (failed(kube)) md += `\n(b2) Kubernetes store failed: ${kube.error}\n`;
  for (const r of rows) if (r.failed) md += `\n${r.store} c=${r.concurrency}: ${r.failed} allocations failed (first: ${r.firstError})\n`;

  md += '\n## Duplicates under faults\n\n';
  if (failed(faults)) md += `failed: ${faults.error}\n`;
  else {
    md += mdTable(['allocations', 'duplicates', 'failed ADDs', 'DELs', 'node crashes', 'nodes lost', 'GC runs', 'GC releases', 'retried ADDs (changed)', 'unaccounted', 'left after cleanup', 'seconds'],
      [[faults.allocations, faults.duplicates, faults.failedAllocations, faults.releases, faults.crashes, faults.nodeLosses, faults.gcRuns, faults.gcReleased,
        `${faults.retriedAdds} (${faults.retriedAddsChanged})`, faults.unaccounted, faults.leakedAfterCleanup, round(faults.seconds, 1)]]);
    md += '\nThree nodes share one LocalStore directory; node a runs in a child process with its book on disk and is SIGKILLed ' +
      'with requests in flight every 5,000 allocations (failed ADDs are DELeted after its restart, 20 live ADDs retried each time); ' +
      'node c leaves half-way and d joins; once a node holds 100 pods every ADD is followed by a DEL; GC every 2,000 allocations ' +
      'and once more after the grace period; cooldown 0 on a /22, so addresses are reused constantly.';
    md += ` Goal: zero duplicates: ${faults.duplicates === 0 ? 'met' : 'NOT MET'}${faults.complete ? '' : ' (the phase hit its time limit before 100,000)'}.\n`;
    if (faults.duplicateExamples.length) md += `\nDuplicates: ${faults.duplicateExamples.join('; ')}\n`;
  }

  md += '\n## CNI path: `bin/plexus-ipam` against plexusd vs Debian host-local (ms, ADD then DEL)\n\n';
  if (failed(cni)) md += `failed: ${cni.error}\n`;
  else if ('skipped' in cni) md += `skipped: ${cni.skipped}\n`;
  else {
    const line = (op: 'add' | 'del' | 'cycle') => [op === 'cycle' ? 'ADD+DEL' : op.toUpperCase(), round(cni.hostLocal[op].p50, 2), round(cni.plexusIpam[op].p50, 2), round(cni.plexusIpam[op].p50 / cni.hostLocal[op].p50), round(cni.hostLocal[op].p99, 2), round(cni.plexusIpam[op].p99, 2), round(cni.plexusIpam[op].p99 / cni.hostLocal[op].p99)];
    md += mdTable(['op', 'host-local p50', 'plexus-ipam p50', 'ratio p50', 'host-local p99', 'plexus-ipam p99', 'ratio p99'], [line('add'), line('del'), line('cycle')]);
    md += `\n${cni.iterations} cycles each, alternating. Goal: plexus-ipam at least as fast as host-local (ADD+DEL p50 ratio <= 1): ${cni.ratioP50 <= GOALS.cniRatioP50 ? 'met' : 'not met'}.\n`;
  }

  const json = {
    goals: GOALS,
    inDaemon: rows,
    ...(failed(local) ? { localError: local.error } : {}),
    ...(failed(etcd) ? { etcdError: etcd.error } : {}),
    ...(failed(kube) ? { kubeError: kube.error } : {}),
    faults,
    cni: failed(cni) || 'skipped' in cni ? cni : { ...cni, samples: undefined },
  };
  const paths = writeResults('ipam', json, md);
  if (!failed(cni) && !('skipped' in cni)) {
    writeFileSync(join(RESULTS_DIR, 'ipam.svg'), cdfSvg('IPAM ADD+DEL through the CNI path', [
      { name: 'host-local', samples: cni.samples.hostLocal, color: '#1f77b4' },
      { name: 'plexus-ipam', samples: cni.samples.plexusIpam, color: '#d62728' },
    ]));
  }
  process.stdout.write(md);
  say(`results: ${paths.json}, ${paths.md}`);
}

// The same bundle also serves node a of the faults phase in a child process the bench SIGKILLs.
if (process.argv[2] === FAULTS_NODE_FLAG) {
  runFaultsNodeChild(process.argv.slice(3)).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

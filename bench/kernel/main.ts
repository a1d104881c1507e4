/**
 * bench/kernel: operations per second through the kernel layer (`Netlink`, one rtnetlink socket opened inside
 * the target netns) against running `ip -n <netns>` for the same change, in one run. Each scenario alternates
 * rounds of both sides so drift on the 2 shared cores hits both alike, and every change is undone in the same
 * iteration so each iteration starts from the same state.
 *
 * Scenarios, all inside a fresh netns with a veth pair:
 *   - address: add then delete 10.251.x.y/24 on the veth
 *   - route:   replace 10.252.0.0/16, its next hop alternating between 10.250.0.2 and .3
 *   - neighbour: replace a permanent neighbour entry with an alternating MAC
 *
 * Goal (issue 4): Netlink >= 20x the operations per second of `ip`.
 */
import { randomBytes } from 'node:crypto';
import { Netlink } from '../../kernel';
import { mdTable, round, summarize, writeResults } from '../lib/stats';
import { run } from '../../hack/cluster';

const ROUNDS = Number(process.env['PLEXUS_BENCH_ROUNDS'] ?? 10);
const NETLINK_PER_ROUND = Number(process.env['PLEXUS_BENCH_NETLINK_OPS'] ?? 500);
const IP_PER_ROUND = Number(process.env['PLEXUS_BENCH_IP_OPS'] ?? 25);
const GOAL = 20;

const NS = `plxb-${randomBytes(3).toString('hex')}-k`;
const NS_PATH = `/run/netns/${NS}`;
const DEV = 'bench0';
const PEER = 'bench1';

function sh(args: string[]): void {
  run('ip', args);
}

/** `ip -n NS ...`: the reference, one process per change, as a script or another tool would run it. */
const ipIn = (...args: string[]): void => sh(['-n', NS, ...args]);

interface Scenario {
  name: string;
  /** What one operation is, for the report. */
  op: string;
  netlink(nl: Netlink, i: number): Promise<void>;
  ip(i: number): void;
}

const addr = (i: number): string => `10.251.${(i >> 8) & 255}.${(i & 255) || 1}/24`;
const mac = (i: number): string => (i % 2 === 0 ? '02:00:00:00:be:01' : '02:00:00:00:be:02');

const SCENARIOS: Scenario[] = [
  {
    name: 'address',
    op: 'add + delete an IPv4 address on a veth',
    async netlink(nl, i) {
      await nl.addAddress(DEV, addr(i));
      await nl.deleteAddress(DEV, addr(i));
    },
    ip(i) {
      ipIn('addr', 'add', addr(i), 'dev', DEV);
      ipIn('addr', 'del', addr(i), 'dev', DEV);
    },
  },
  {
    name: 'route',
    op: 'replace a gateway route (alternating next hop)',
    async netlink(nl, i) {
      await nl.replaceRoute({ dst: '10.252.0.0/16', gateway: i % 2 === 0 ? '10.250.0.2' : '10.250.0.3', ifName: DEV });
    },
    ip(i) {
      ipIn('route', 'replace', '10.252.0.0/16', 'via', i % 2 === 0 ? '10.250.0.2' : '10.250.0.3', 'dev', DEV);
    },
  },
  {
    name: 'neighbour',
    op: 'replace a permanent neighbour (alternating MAC)',
    async netlink(nl, i) {
      await nl.replaceNeighbour({ ifName: DEV, address: '169.254.1.1', mac: mac(i), permanent: true });
    },
    ip(i) {
      ipIn('neigh', 'replace', '169.254.1.1', 'lladdr', mac(i), 'dev', DEV, 'nud', 'permanent');
    },
  },
];

interface Side {
  opsPerSec: number[];
  latencyUs: number[];
}

async function runScenario(s: Scenario, nl: Netlink): Promise<{ netlink: Side; ip: Side }> {
  const netlink: Side = { opsPerSec: [], latencyUs: [] };
  const ip: Side = { opsPerSec: [], latencyUs: [] };
  // Warm up both paths (JIT, page cache for the ip binary).
  for (let i = 0; i < 50; i++) await s.netlink(nl, i);
  for (let i = 0; i < 3; i++) s.ip(i);
  let n = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = performance.now();
    for (let i = 0; i < NETLINK_PER_ROUND; i++) {
      const t = performance.now();
      await s.netlink(nl, n++);
      netlink.latencyUs.push((performance.now() - t) * 1000);
    }
    netlink.opsPerSec.push(NETLINK_PER_ROUND / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    for (let i = 0; i < IP_PER_ROUND; i++) {
      const t = performance.now();
      s.ip(n++);
      ip.latencyUs.push((performance.now() - t) * 1000);
    }
    ip.opsPerSec.push(IP_PER_ROUND / ((performance.now() - t0) / 1000));
  }
  return { netlink, ip };
}

async function main(): Promise<void> {
  sh(['netns', 'add', NS]);
  try {
    ipIn('link', 'add', DEV, 'type', 'veth', 'peer', 'name', PEER);
    ipIn('link', 'set', DEV, 'up');
    ipIn('link', 'set', PEER, 'up');
    ipIn('addr', 'add', '10.250.0.1/24', 'dev', DEV);
    const nl = await Netlink.open(NS_PATH);
    const rows: (string | number)[][] = [];
    const json: Record<string, unknown> = {};
    try {
      for (const s of SCENARIOS) {
        const r = await runScenario(s, nl);
        const nlOps = summarize(r.netlink.opsPerSec);
        const ipOps = summarize(r.ip.opsPerSec);
        const nlLat = summarize(r.netlink.latencyUs);
        const ipLat = summarize(r.ip.latencyUs);
        const ratio = nlOps.p50 / ipOps.p50;
        json[s.name] = {
          op: s.op,
          netlink: { opsPerSec: nlOps, latencyUs: nlLat },
          ip: { opsPerSec: ipOps, latencyUs: ipLat },
          ratio: round(ratio, 1),
          goal: GOAL,
          met: ratio >= GOAL,
        };
        rows.push([
          s.name,
          s.op,
          Math.round(nlOps.p50),
          Math.round(ipOps.p50),
          `${round(ratio, 1)}x`,
          round(nlLat.p50, 1),
          round(nlLat.p99, 1),
          round(ipLat.p50 / 1000, 2),
          round(ipLat.p99 / 1000, 2),
          ratio >= GOAL ? 'yes' : 'no',
        ]);
        console.log(`${s.name}: Netlink ${Math.round(nlOps.p50)} ops/s, ip ${Math.round(ipOps.p50)} ops/s, ${round(ratio, 1)}x`);
      }
    } finally {
      nl.close();
    }
    const md = [
      '# bench/kernel: Netlink against `ip` for the same change',
      '',
      `One run, ${ROUNDS} alternating rounds of ${NETLINK_PER_ROUND} Netlink and ${IP_PER_ROUND} \`ip -n <netns>\` operations per scenario, `,
      'inside a fresh netns. Ops/s are the median over rounds; the ratio is Netlink / ip (goal >= 20x). ',
      'Absolute numbers are noisy on these 2 shared cores: compare the ratio.',
      '',
      mdTable(
        ['scenario', 'one operation', 'Netlink ops/s', 'ip ops/s', 'ratio', 'Netlink p50 µs', 'Netlink p99 µs', 'ip p50 ms', 'ip p99 ms', `>= ${GOAL}x`],
        rows,
      ),
    ].join('\n');
    const out = writeResults('kernel', { rounds: ROUNDS, netlinkPerRound: NETLINK_PER_ROUND, ipPerRound: IP_PER_ROUND, scenarios: json }, md);
    console.log(md);
    console.log(`wrote ${out.json} and ${out.md}`);
  } finally {
    sh(['netns', 'del', NS]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

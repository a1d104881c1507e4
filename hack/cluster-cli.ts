/**
 * Play with a local multi-node cluster (hack/cluster/) by hand. Needs root and `make build`.
 *
 *   npx esbuild hack/cluster-cli.ts --bundle --platform=node --target=node20 --outfile=dist/cluster-cli.js
 *   node dist/cluster-cli.js up [--prefix plxc] [--nodes 2] [--datapath ptp|routed] [--mode native|vxlan]
 *                               [--no-ebpf] [--pods K]
 *   ip netns exec plxc-n1-p1 ping 10.244.0.3     # look around (pods p1.. on n1, then n2, ...)
 *   node dist/cluster-cli.js down [--prefix plxc]
 *
 * `up` leaves the daemons running (their own session) and exits; `down` removes everything of the prefix by
 * name and PID file. Pods made by `up --pods` get no CNI DEL: `down` kills the daemons and deletes the nodes.
 */
import { Cluster, type Datapath, type RoutedMode, removeLeftovers } from './cluster';

const USAGE = `usage: cluster-cli up [--prefix P] [--nodes N] [--datapath ptp|routed] [--mode native|vxlan] [--no-ebpf] [--pods K]
       cluster-cli down [--prefix P]
`;

function parse(argv: string[]): { cmd: string; flags: Map<string, string> } {
  const [cmd = '', ...rest] = argv;
  const flags = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    if (a === '--no-ebpf') flags.set('ebpf', 'false');
    else flags.set(a.slice(2), rest[++i] ?? '');
  }
  return { cmd, flags };
}

const int = (v: string | undefined, def: number): number => (v === undefined ? def : Number.parseInt(v, 10));
const say = (line: string) => console.log(`==> ${line}`);

async function up(flags: Map<string, string>): Promise<void> {
  const cluster = await Cluster.create({
    prefix: flags.get('prefix') ?? 'plxc',
    nodes: int(flags.get('nodes'), 2),
    datapath: (flags.get('datapath') ?? 'routed') as Datapath,
    mode: (flags.get('mode') ?? 'native') as RoutedMode,
    ebpf: flags.get('ebpf') !== 'false',
    detached: true,
    log: say,
  });
  // Pod names are cluster-wide, as in Kubernetes (the IPAM store keys pod records by namespace/name).
  const perNode = int(flags.get('pods'), 0);
  let count = 0;
  for (const node of cluster.nodes) {
    for (let i = 0; i < perNode; i++) await cluster.addPod(node.name, { name: `p${++count}` });
  }
  console.log('\nnode        netns           underlay                         plexusd');
  for (const n of cluster.nodes) {
    console.log(`${n.name.padEnd(11)} ${n.netns.padEnd(15)} ${`${n.ipv4} ${n.ipv6}`.padEnd(32)} pid ${cluster.daemonPid(n)} ${n.socket}`);
  }
  for (const p of cluster.listPods()) console.log(`pod ${p.netns}: ${p.ipv4} ${p.ipv6}`);
  console.log(`\nlogs: ${cluster.rootDir}/<node>/plexusd.log; remove with: down --prefix ${cluster.prefix}`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const { cmd, flags } = parse(process.argv.slice(2));
  if (cmd === 'up') {
    await up(flags);
    return 0;
  }
  if (cmd === 'down') {
    const { removed, problems } = removeLeftovers(flags.get('prefix') ?? 'plxc');
    for (const r of removed) say(`removed ${r}`);
    for (const p of problems) console.error(`cluster-cli: ${p}`);
    return problems.length ? 1 : 0;
  }
  process.stderr.write(USAGE);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`cluster-cli: ${e.message}`);
    process.exit(1);
  },
);

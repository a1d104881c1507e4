/**
 * A local multi-node cluster in network namespaces, for `make demo`, integration tests and benchmarks.
 *
 *   <prefix>-ul            the underlay: bridge br0, one port per node (veth-n1, veth-n2, ...)
 *   <prefix>-n1 .. -nN     the nodes: eth0 on the underlay (192.168.X.i/24, fd00:X::i/64), one bin/plexusd each
 *   <prefix>-<node>-<pod>  the pods, attached by running bin/plexus inside their node exactly as a runtime does
 *
 * Files live under `/run/plexus-cluster/<prefix>/`: per node its socket, state, config, log and PID file; shared
 * by all nodes the manifests directory (the file source) and the local IPAM store. Each node has its own
 * confDir only because plexus-ipam finds its daemon through `ipam.socketPath` in the cluster network's config,
 * and each node's daemon has its own socket.
 *
 * Everything is found again by name (netns, dirs, bpffs pins) or by PID file, so `destroy()` is idempotent,
 * may run while `up()` is still running, and a new cluster first removes what a crashed run with the same
 * prefix left behind. Only addresses inside these namespaces are ever used.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import yaml from 'js-yaml';
import type { PoolSpec } from '../ipam/model/pool';

/** The repository: found upwards from here, so the file also works bundled (bench/ bundles it into dist/). */
export const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = resolve(from); ; dir = resolve(dir, '..')) {
    if (existsSync(join(dir, 'Makefile')) && existsSync(join(dir, 'meta-plugin'))) return dir;
    if (dir === resolve(dir, '..')) return resolve(__dirname, '..');
  }
}
const RUN_ROOT = '/run/plexus-cluster';
const BPF_ROOT = '/sys/fs/bpf/plexus';
const CNI_BIN_DIR = '/usr/lib/cni';
const CLUSTER_NETWORK = 'k8s-pod-network';
const POOL_NAME = 'pods';
/** Letters and digits only: `<prefix>-...` then never matches the names of another prefix. */
const PREFIX_RE = /^[a-z][a-z0-9]{0,15}$/;
/** sun_path is 108 bytes. */
const MAX_SOCKET_PATH = 107;

export type Datapath = 'routed' | 'ptp';
export type RoutedMode = 'native' | 'vxlan';

export interface ClusterOptions {
  /** Names every netns, the root dir and the bpffs pins; `[a-z][a-z0-9]{0,15}`. */
  prefix: string;
  /** Default 2. */
  nodes?: number;
  /** Default 'routed' (plexus-routed, the cluster network of Plexus); 'ptp' is Debian's ptp with plexus-ipam. */
  datapath?: Datapath;
  /** routed only; default 'native'. */
  mode?: RoutedMode;
  /** routed only; default true. */
  ebpf?: boolean;
  /** X in 192.168.X.0/24 and fd00:X::/64 (1-254); default derived from the prefix. */
  underlayIndex?: number;
  /** Default /run/plexus-cluster/<prefix>. */
  rootDir?: string;
  /** Replaces the default pool (`pods`, 10.244.0.0/16 + fd00:244::/56, /26 and /122 blocks). */
  pool?: PoolSpec;
  /** Merged over each node's generated daemon config (top-level keys). */
  daemon?: Record<string, unknown>;
  /** Default 'info'. At 'warn' and above addPod cannot see manifest reloads and waits a rescan period instead. */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Daemons in their own session, outliving this process (the CLI). */
  detached?: boolean;
  /** Per daemon start; default 30 s (2 shared cores may be busy). */
  readyTimeoutMs?: number;
  /** Progress lines: which step is running. */
  log?: (line: string) => void;
}

export interface ClusterNode {
  /** n1, n2, ...: what addPod and the daemon methods take. */
  readonly name: string;
  /** <prefix>-n1: the netns, and the daemon's nodeName. */
  readonly netns: string;
  readonly index: number;
  readonly ipv4: string;
  readonly ipv6: string;
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly confDir: string;
  readonly configPath: string;
  readonly logFile: string;
  readonly pidFile: string;
  /** The routed datapath's bpffs pin directory. */
  readonly pinDir: string;
}

export interface PodSpec {
  /** Default 'default'. */
  namespace?: string;
  /**
   * A DNS label; also names the netns `<prefix>-<node>-<name>`. Unique in its namespace across the cluster, as
   * in Kubernetes (not enforced, so a test can play a pod moved while its old node is down).
   */
  name: string;
  /** Written with the pod's manifest (e.g. k8s.v1.cni.cncf.io/networks). */
  annotations?: Record<string, string>;
  /** The StatefulSet owning the pod (a manifest ownerReference). */
  ownerStatefulSet?: string;
}

/** The CNI result fields read here (CNI spec 2.2, "Success"); the rest is kept as it came. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  [key: string]: unknown;
}

export interface Pod {
  readonly node: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly netns: string;
  readonly netnsPath: string;
  readonly containerId: string;
  readonly result: CniResult;
  /** eth0's global addresses as the kernel shows them, without prefix length. */
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** Wall time of the CNI ADD (bin/plexus start to exit). */
  readonly addMs: number;
}

export interface CniOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Daemon {
  pid: number;
  /** Absent for a daemon this process did not start. */
  child?: ChildProcess;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; throws with its output unless allowFail. */
export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): ExecResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input ?? '', timeout: 60_000 });
  const res = { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (res.code !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')}: exit ${res.code}: ${(res.stderr || res.stdout).trim()}`);
  return res;
}

const ip = (...args: string[]) => run('ip', args);

export class Cluster {
  readonly prefix: string;
  readonly rootDir: string;
  readonly underlay: string;
  readonly manifestDir: string;
  readonly ipamDir: string;
  readonly nodes: readonly ClusterNode[];
  readonly datapath: Datapath;
  private readonly opts: ClusterOptions;
  private readonly daemons = new Map<string, Daemon>();
  private readonly pods = new Map<string, Pod>();
  private starting: Promise<void> | undefined;
  private closed = false;

  /** Computes names and paths only; `up()` builds. */
  constructor(opts: ClusterOptions) {
    if (!PREFIX_RE.test(opts.prefix)) throw new Error(`cluster prefix "${opts.prefix}" must match ${PREFIX_RE}`);
    const count = opts.nodes ?? 2;
    if (!Number.isInteger(count) || count < 1 || count > 250) throw new Error(`nodes must be 1-250, not ${count}`);
    const x = opts.underlayIndex ?? 1 + (createHash('sha256').update(opts.prefix).digest().readUInt16BE(0) % 250);
    if (!Number.isInteger(x) || x < 1 || x > 254) throw new Error(`underlayIndex must be 1-254, not ${x}`);
    this.opts = opts;
    this.prefix = opts.prefix;
    this.datapath = opts.datapath ?? 'routed';
    this.rootDir = opts.rootDir ?? join(RUN_ROOT, opts.prefix);
    this.underlay = `${opts.prefix}-ul`;
    this.manifestDir = join(this.rootDir, 'manifests');
    this.ipamDir = join(this.rootDir, 'ipam');
    this.nodes = Array.from({ length: count }, (_, k) => this.describeNode(k + 1, x));
    const longest = this.nodes[this.nodes.length - 1]!.socket;
    if (longest.length > MAX_SOCKET_PATH) throw new Error(`socket path ${longest} is too long for a unix socket; use a shorter rootDir`);
  }

  /** Builds a cluster; on failure removes what was made and rethrows. */
  static async create(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await c.up();
    } catch (e) {
      await c.destroy().catch(() => undefined);
      throw e;
    }
    return c;
  }

  private describeNode(index: number, x: number): ClusterNode {
    const name = `n${index}`;
    const dir = join(this.rootDir, name);
    return {
      name,
      netns: `${this.prefix}-${name}`,
      index,
      ipv4: `192.168.${x}.${index}`,
      ipv6: `fd00:${x}::${index}`,
      dir,
      socket: join(dir, 'plexus.sock'),
      stateDir: join(dir, 'state'),
      confDir: join(dir, 'cni'),
      configPath: join(dir, 'plexusd.yaml'),
      logFile: join(dir, 'plexusd.log'),
      pidFile: join(dir, 'plexusd.pid'),
      pinDir: join(BPF_ROOT, `${this.prefix}-${name}`),
    };
  }

  private say(line: string): void {
    this.opts.log?.(line);
  }

  /** Throws once destroy() has begun, so a set-up in flight stops at its next step. */
  private checkOpen(): void {
    if (this.closed) throw new Error(`cluster ${this.prefix} was destroyed while starting`);
  }

  async up(): Promise<void> {
    if (this.starting) throw new Error(`cluster ${this.prefix} is already up`);
    this.starting = this.build();
    return this.starting;
  }

  private async build(): Promise<void> {
    // 1. What a crashed run with this prefix left behind.
    const leftovers = removeLeftovers(this.prefix, { rootDir: this.rootDir });
    if (leftovers.removed.length) this.say(`removed leftovers of an earlier run: ${leftovers.removed.join(', ')}`);
    if (leftovers.problems.length) throw new Error(`cannot remove leftovers of ${this.prefix}: ${leftovers.problems.join('; ')}`);
    this.checkOpen();
    // 2. The underlay.
    this.say(`underlay ${this.underlay}: bridge br0`);
    for (const d of [this.manifestDir, this.ipamDir]) mkdirSync(d, { recursive: true });
    ip('netns', 'add', this.underlay);
    ip('-n', this.underlay, 'link', 'set', 'lo', 'up');
    ip('-n', this.underlay, 'link', 'add', 'br0', 'mtu', '1500', 'type', 'bridge');
    ip('-n', this.underlay, 'link', 'set', 'br0', 'up');
    // 3. The nodes.
    for (const node of this.nodes) {
      this.checkOpen();
      this.say(`node ${node.netns}: eth0 ${node.ipv4}/24 ${node.ipv6}/64`);
      this.createNode(node);
    }
    // 4. One daemon per node.
    for (const node of this.nodes) {
      this.checkOpen();
      this.writeNodeConfig(node);
    }
    await Promise.all(this.nodes.map((n) => this.startDaemon(n.name)));
    this.checkOpen();
    this.say(`cluster ${this.prefix} ready: ${this.nodes.length} nodes, datapath ${this.datapath}`);
  }

  private createNode(node: ClusterNode): void {
    const port = `veth-${node.name}`;
    ip('netns', 'add', node.netns);
    ip('-n', node.netns, 'link', 'set', 'lo', 'up');
    // Both ends are created directly in their namespaces: nothing ever appears in the root netns.
    ip('-n', this.underlay, 'link', 'add', port, 'mtu', '1500', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1500', 'netns', node.netns);
    ip('-n', this.underlay, 'link', 'set', port, 'master', 'br0', 'up');
    ip('-n', node.netns, 'addr', 'add', `${node.ipv4}/24`, 'dev', 'eth0');
    // nodad: usable at once, no 1-2 s of "tentative".
    ip('-n', node.netns, 'addr', 'add', `${node.ipv6}/64`, 'dev', 'eth0', 'nodad');
    ip('-n', node.netns, 'link', 'set', 'eth0', 'up');
    // A node routes for its pods. No DAD on the links pods bring either (ptp's host veths carry the gateway
    // address): a tentative gateway answers no neighbour solicitation for a second or two.
    const sysctls = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0'];
    run('ip', ['netns', 'exec', node.netns, 'sysctl', '-qw', ...sysctls]);
    for (const d of [node.stateDir, node.confDir]) mkdirSync(d, { recursive: true });
  }

  /** The pool every node allocates pod addresses from (one shared local IPAM store). */
  private pool(): PoolSpec {
    if (this.opts.pool) return this.opts.pool;
    // /122 is the v6 block with as many addresses as a v4 /26 (and the v6 default of ipam/pool.ts).
    const pool: PoolSpec = { name: POOL_NAME, cidrs: ['10.244.0.0/16', 'fd00:244::/56'], blockSize: { v4: 26, v6: 122 } };
    // ptp puts the gateway on every host-side veth (/32, /128) and routes the pod's defaults through it.
    if (this.datapath === 'ptp') return { ...pool, gateway: ['10.244.0.1', 'fd00:244::1'], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] };
    return pool;
  }

  private clusterConflist(node: ClusterNode): Record<string, unknown> {
    const ipam = { type: 'plexus-ipam', pool: this.pool().name, socketPath: node.socket };
    if (this.datapath === 'routed') {
      return { cniVersion: '1.1.0', name: CLUSTER_NETWORK, plugins: [{ type: 'plexus-routed', ipam }] };
    }
    // Debian's ptp (plugins 1.1.1) speaks CNI up to 1.0.0.
    return { cniVersion: '1.0.0', name: CLUSTER_NETWORK, plugins: [{ type: 'ptp', mtu: 1500, ipam }] };
  }

  private daemonConfig(node: ClusterNode): Record<string, unknown> {
    const config: Record<string, unknown> = {
      socketPath: node.socket,
      stateDir: node.stateDir,
      // bin/ holds plexus-ipam and plexus-routed, the names the forwarder acts under.
      binDirs: [join(REPO_ROOT, 'bin'), CNI_BIN_DIR],
      confDir: node.confDir,
      clusterNetwork: CLUSTER_NETWORK,
      nodeName: node.netns,
      deviceInfoDir: join(node.dir, 'devinfo'),
      logLevel: this.opts.logLevel ?? 'info',
      source: { type: 'file', dir: this.manifestDir, rescanSeconds: 1 },
      ipam: { store: { type: 'local', dir: this.ipamDir }, pools: [this.pool()] },
    };
    if (this.datapath === 'routed') {
      config['routed'] = { mode: this.opts.mode ?? 'native', underlay: 'eth0', ebpf: this.opts.ebpf ?? true, pinDir: node.pinDir };
    }
    return { ...config, ...this.opts.daemon };
  }

  private writeNodeConfig(node: ClusterNode): void {
    writeFileSync(join(node.confDir, `10-${CLUSTER_NETWORK}.conflist`), JSON.stringify(this.clusterConflist(node), null, 2));
    writeFileSync(node.configPath, yaml.dump(this.daemonConfig(node)));
  }

  node(ref: string | ClusterNode): ClusterNode {
    const name = typeof ref === 'string' ? ref : ref.name;
    const node = this.nodes.find((n) => n.name === name || n.netns === name);
    if (!node) throw new Error(`cluster ${this.prefix} has no node ${name}`);
    return node;
  }

  // ---- daemons ----

  daemonPid(ref: string | ClusterNode): number | undefined {
    const d = this.daemons.get(this.node(ref).name);
    return d && isAlive(d) ? d.pid : undefined;
  }

  /** Starts the node's plexusd in its netns and waits until /readyz answers. */
  async startDaemon(ref: string | ClusterNode): Promise<void> {
    const node = this.node(ref);
    if (this.daemonPid(node) !== undefined) throw new Error(`plexusd of ${node.netns} is already running`);
    const out = openSync(node.logFile, 'a');
    let child: ChildProcess;
    try {
      // nsenter --net, not `ip netns exec`: the latter gives the daemon a private mount namespace with its own
      // /sys, so its bpffs pins would die with it. nsenter execs the command: the child's PID is plexusd's.
      child = spawn('nsenter', [`--net=${netnsPath(node.netns)}`, process.execPath, join(REPO_ROOT, 'bin/plexusd'), '--config', node.configPath], {
        stdio: ['ignore', out, out],
        detached: this.opts.detached === true,
      });
    } finally {
      closeSync(out);
    }
    if (child.pid === undefined) throw new Error(`cannot start plexusd in ${node.netns}`);
    if (this.opts.detached) child.unref();
    child.on('error', () => undefined);
    this.daemons.set(node.name, { pid: child.pid, child });
    writeFileSync(node.pidFile, `${child.pid}\n`);
    await this.waitReady(node);
    this.say(`plexusd ${node.netns} pid ${child.pid} ready`);
  }

  async waitReady(ref: string | ClusterNode, timeoutMs = this.opts.readyTimeoutMs ?? 30_000): Promise<void> {
    const node = this.node(ref);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const d = this.daemons.get(node.name);
      if (!d || !isAlive(d)) throw new Error(`plexusd of ${node.netns} exited:\n${this.daemonLog(node, 2000)}`);
      if (this.closed) throw new Error(`cluster ${this.prefix} was destroyed while starting`);
      if ((await httpGet(node.socket, '/readyz').catch(() => 0)) === 200) return;
      await sleep(50);
    }
    throw new Error(`plexusd of ${node.netns} not ready after ${timeoutMs} ms:\n${this.daemonLog(node, 2000)}`);
  }

  /** Sends `signal` to the node's plexusd by PID and waits until it has exited. */
  async killDaemon(ref: string | ClusterNode, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<void> {
    const node = this.node(ref);
    const d = this.daemons.get(node.name);
    if (!d || !isAlive(d)) return;
    try {
      process.kill(d.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
    if (!(await waitGone(d, timeoutMs))) throw new Error(`plexusd ${d.pid} of ${node.netns} still running ${timeoutMs} ms after ${signal}`);
    this.daemons.delete(node.name);
    rmSync(node.pidFile, { force: true });
  }

  /** SIGTERM (the daemon finishes requests in flight), then the same config again. */
  async restartDaemon(ref: string | ClusterNode): Promise<void> {
    const node = this.node(ref);
    this.say(`restarting plexusd of ${node.netns}`);
    await this.killDaemon(node, 'SIGTERM', 40_000);
    await this.startDaemon(node);
  }

  /** The tail of the node's daemon log. */
  daemonLog(ref: string | ClusterNode, maxChars = 20_000): string {
    try {
      return readFileSync(this.node(ref).logFile, 'utf8').slice(-maxChars);
    } catch {
      return '';
    }
  }

  /**
   * What a person debugging a failed test wants to see: per node its links, addresses, routes, neighbours, FDB
   * and daemon log tail; per pod its addresses, routes and neighbours. Witnesses are `ip` and `bridge`.
   */
  diagnose(logChars = 4000): string {
    const out: string[] = [];
    const show = (netns: string, cmd: string, args: string[]): void => {
      const r = run('ip', ['netns', 'exec', netns, cmd, ...args], { allowFail: true });
      out.push(`$ ${cmd} ${args.join(' ')}`, (r.stdout + r.stderr).trimEnd());
    };
    for (const node of this.nodes) {
      out.push(`==== ${node.netns} (daemon ${this.daemonPid(node) ?? 'not running'})`);
      show(node.netns, 'ip', ['-br', 'addr']);
      for (const f of ['-4', '-6']) show(node.netns, 'ip', [f, 'route']);
      show(node.netns, 'ip', ['neigh', 'show', 'nud', 'permanent']);
      show(node.netns, 'bridge', ['fdb', 'show', 'dev', 'plexus.vxlan']);
      out.push('---- daemon log (tail)', this.daemonLog(node, logChars).trimEnd());
    }
    for (const pod of this.pods.values()) {
      out.push(`==== pod ${pod.namespace}/${pod.name} on ${pod.node} (${pod.netns})`);
      show(pod.netns, 'ip', ['-br', 'addr']);
      for (const f of ['-4', '-6']) show(pod.netns, 'ip', [f, 'route']);
      show(pod.netns, 'ip', ['neigh']);
    }
    return out.join('\n');
  }

  // ---- pods ----

  /** Creates the pod's netns, publishes its manifest if it has any metadata, and runs CNI ADD. */
  async addPod(ref: string | ClusterNode, spec: PodSpec): Promise<Pod> {
    const node = this.node(ref);
    const namespace = spec.namespace ?? 'default';
    const netns = `${this.prefix}-${node.name}-${spec.name}`;
    if (this.pods.has(netns)) throw new Error(`pod ${spec.name} already exists on ${node.name}`);
    const uid = randomUUID();
    const containerId = randomBytes(32).toString('hex');
    ip('netns', 'add', netns);
    const draft = { node: node.name, namespace, name: spec.name, uid, netns, netnsPath: netnsPath(netns), containerId };
    // Tracked from here on, so destroy() removes the netns whatever happens next.
    this.pods.set(netns, { ...draft, result: { cniVersion: '' }, ipv4: undefined, ipv6: undefined, addMs: 0 });
    ip('-n', netns, 'link', 'set', 'lo', 'up');
    // Links created in the pod start without IPv6 DAD: ptp waits for it (about 1.5 s per pod otherwise).
    run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
    if (spec.annotations || spec.ownerStatefulSet) await this.publishPod(node, { ...spec, namespace }, uid);
    const t0 = process.hrtime.bigint();
    const out = await this.cniCall('ADD', draft);
    const addMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (out.code !== 0) throw new Error(`CNI ADD of ${namespace}/${spec.name} on ${node.netns} failed (${out.code}): ${out.stdout.trim()} ${out.stderr.trim()}`);
    const addrs = eth0Addresses(netns);
    const pod: Pod = { ...draft, result: JSON.parse(out.stdout) as CniResult, ipv4: addrs.ipv4, ipv6: addrs.ipv6, addMs };
    this.pods.set(netns, pod);
    this.say(`pod ${namespace}/${spec.name} on ${node.name}: ${[pod.ipv4, pod.ipv6].filter(Boolean).join(' ')} (ADD ${addMs.toFixed(0)} ms)`);
    return pod;
  }

  /** CNI DEL (must succeed), the manifest removed, then the netns unless kept (to look at what DEL left). */
  async delPod(pod: Pod, opts: { keepNetns?: boolean } = {}): Promise<void> {
    const out = await this.cniCall('DEL', pod);
    if (out.code !== 0) throw new Error(`CNI DEL of ${pod.namespace}/${pod.name} failed (${out.code}): ${out.stdout.trim()} ${out.stderr.trim()}`);
    rmSync(this.manifestPath(pod), { force: true });
    if (opts.keepNetns) return;
    ip('netns', 'del', pod.netns);
    this.pods.delete(pod.netns);
  }

  /** CNI CHECK; the caller judges the outcome. */
  checkPod(pod: Pod): Promise<CniOutput> {
    return this.cniCall('CHECK', pod);
  }

  /** Any CNI command for a pod, through bin/plexus in the pod's node. */
  cniCall(command: string, pod: Pick<Pod, 'node' | 'namespace' | 'name' | 'uid' | 'netnsPath' | 'containerId'>): Promise<CniOutput> {
    const node = this.node(pod.node);
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: pod.netnsPath,
      CNI_IFNAME: 'eth0',
      CNI_PATH: [join(REPO_ROOT, 'bin'), CNI_BIN_DIR].join(':'),
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId};K8S_POD_UID=${pod.uid}`,
    };
    const config = { cniVersion: '1.1.0', name: 'plexus', type: 'plexus', socketPath: node.socket, stateDir: node.stateDir };
    // In the node's netns and the host's mount namespace, as a runtime on that node would run it.
    return runAsync('nsenter', [`--net=${netnsPath(node.netns)}`, join(REPO_ROOT, 'bin/plexus')], env, JSON.stringify(config));
  }

  listPods(): Pod[] {
    return [...this.pods.values()];
  }

  private manifestPath(pod: { namespace: string; name: string }): string {
    return join(this.manifestDir, `pod-${pod.namespace}-${pod.name}.yaml`);
  }

  private async publishPod(node: ClusterNode, spec: PodSpec & { namespace: string }, uid: string): Promise<void> {
    const metadata: Record<string, unknown> = { name: spec.name, namespace: spec.namespace, uid, annotations: spec.annotations ?? {} };
    if (spec.ownerStatefulSet) metadata['ownerReferences'] = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: spec.ownerStatefulSet, controller: true }];
    await this.writeManifest(`pod-${spec.namespace}-${spec.name}.yaml`, [{ apiVersion: 'v1', kind: 'Pod', metadata }], [node]);
  }

  /**
   * Writes manifests into the shared directory (atomically: the source never reads half a file) and waits
   * until the daemons of `nodes` (default: all running) have reloaded. The daemon does not wait for a pod to
   * appear in its source (a pod it does not know gets the cluster network only), so an ADD right after the
   * write could miss the annotations. A reload logs "manifests loaded"; a reload that had listed the directory
   * just before the rename could log after it, but the file watch reloads again 50 ms later.
   */
  async writeManifest(file: string, objects: Record<string, unknown>[], nodes: readonly ClusterNode[] = this.nodes): Promise<void> {
    const running = nodes.filter((n) => this.daemonPid(n) !== undefined);
    const tmp = join(this.manifestDir, `.${file}.tmp`);
    writeFileSync(tmp, objects.map((o) => yaml.dump(o)).join('---\n'));
    const marks = running.map((n) => fileSize(n.logFile));
    renameSync(tmp, join(this.manifestDir, file));
    const level = this.opts.daemon?.['logLevel'] ?? this.opts.logLevel ?? 'info';
    if (!['trace', 'debug', 'info'].includes(String(level))) {
      await sleep(1250); // no reload lines at this level: one rescan period and some
      return;
    }
    await Promise.all(running.map((n, i) => this.waitReload(n, marks[i]!)));
  }

  private async waitReload(node: ClusterNode, mark: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (readFrom(node.logFile, mark).includes('"msg":"manifests loaded"')) return;
      await sleep(20);
    }
    throw new Error(`plexusd of ${node.netns} did not reload the manifests within ${timeoutMs} ms`);
  }

  // ---- helpers ----

  /** Runs `cmd args` inside a netns of this cluster. */
  exec(netns: string, cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): ExecResult {
    if (netns !== this.underlay && !netns.startsWith(`${this.prefix}-n`)) throw new Error(`${netns} is not a netns of cluster ${this.prefix}`);
    return run('ip', ['netns', 'exec', netns, cmd, ...args], opts);
  }

  /** Whether `address` (v4 or v6) answers pings from `netns`. */
  ping(netns: string, address: string, count = 2): boolean {
    return this.exec(netns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', address], { allowFail: true }).code === 0;
  }

  /**
   * Removes everything: each pod (CNI DEL while its daemon still runs, then its netns), the daemons by PID,
   * the node and underlay namespaces, the root dir and the bpffs pins. Idempotent; during `up()` it stops the
   * set-up at its next step first. Throws if anything could not be removed.
   */
  async destroy(): Promise<void> {
    this.closed = true;
    await this.starting?.catch(() => undefined);
    this.say(`destroying cluster ${this.prefix}`);
    const problems: string[] = [];
    for (const pod of this.pods.values()) {
      // Also after a failed ADD, as a runtime would (CNI 2.2); DEL is idempotent.
      if (this.daemonPid(pod.node) !== undefined) {
        const out = await this.cniCall('DEL', pod).catch((e: Error) => ({ code: -1, stdout: e.message, stderr: '' }));
        if (out.code !== 0) this.say(`DEL of ${pod.namespace}/${pod.name} failed (${out.code}): ${out.stdout.trim()}; removing its netns anyway`);
      }
      const r = run('ip', ['netns', 'del', pod.netns], { allowFail: true });
      if (r.code !== 0 && !/No such file/.test(r.stderr)) problems.push(`netns ${pod.netns}: ${r.stderr.trim()}`);
    }
    this.pods.clear();
    for (const node of this.nodes) {
      await this.killDaemon(node, 'SIGTERM', 10_000).catch(async (e: Error) => {
        this.say(`${e.message}; sending SIGKILL`);
        await this.killDaemon(node, 'SIGKILL').catch((e2: Error) => problems.push(e2.message));
      });
    }
    const rest = removeLeftovers(this.prefix, { rootDir: this.rootDir });
    problems.push(...rest.problems);
    if (problems.length) throw new Error(`cluster ${this.prefix} not fully removed: ${problems.join('; ')}`);
    this.say(`cluster ${this.prefix} removed`);
  }
}

// ---- removal by name and PID, shared by destroy() and a new cluster with the same prefix ----

/** Netns of a prefix: `<prefix>-ul`, `<prefix>-n<i>`, `<prefix>-n<i>-<pod>`. */
export function clusterNetns(prefix: string): string[] {
  const re = new RegExp(`^${prefix}-(ul|n\\d+(-.+)?)$`);
  const out = run('ip', ['-j', 'netns', 'list']).stdout.trim();
  const list = out ? (JSON.parse(out) as { name: string }[]) : [];
  return list.map((n) => n.name).filter((n) => re.test(n));
}

/**
 * Kills the daemons named by the PID files under rootDir (only if their command line still names that node's
 * config: a PID may have been reused), then deletes the prefix's netns (pods first), bpffs pins and root dir.
 */
export function removeLeftovers(prefix: string, opts: { rootDir?: string } = {}): { removed: string[]; problems: string[] } {
  if (!PREFIX_RE.test(prefix)) throw new Error(`cluster prefix "${prefix}" must match ${PREFIX_RE}`);
  const rootDir = opts.rootDir ?? join(RUN_ROOT, prefix);
  const removed: string[] = [];
  const problems: string[] = [];
  for (const node of listDir(rootDir)) {
    const pidFile = join(rootDir, node, 'plexusd.pid');
    const pid = Number.parseInt(readText(pidFile), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    if (readText(`/proc/${pid}/cmdline`).split('\0').includes(join(rootDir, node, 'plexusd.yaml'))) {
      process.kill(pid, 'SIGKILL');
      if (!waitGoneSync(pid, 5000)) problems.push(`plexusd ${pid} survived SIGKILL`);
      else removed.push(`plexusd ${pid}`);
    }
  }
  const names = clusterNetns(prefix).sort((a, b) => b.length - a.length);
  for (const name of names) {
    const r = run('ip', ['netns', 'del', name], { allowFail: true });
    if (r.code === 0) removed.push(`netns ${name}`);
    else problems.push(`netns ${name}: ${r.stderr.trim()}`);
  }
  const pinRe = new RegExp(`^${prefix}-n\\d+$`);
  for (const pin of listDir(BPF_ROOT).filter((p) => pinRe.test(p))) {
    try {
      rmSync(join(BPF_ROOT, pin), { recursive: true, force: true });
      removed.push(`pins ${join(BPF_ROOT, pin)}`);
    } catch (e) {
      problems.push(`pins ${join(BPF_ROOT, pin)}: ${(e as Error).message}`);
    }
  }
  if (existsSync(rootDir)) {
    rmSync(rootDir, { recursive: true, force: true });
    removed.push(`dir ${rootDir}`);
  }
  return { removed, problems };
}

// ---- small helpers ----

const netnsPath = (name: string): string => `/var/run/netns/${name}`;

function eth0Addresses(netns: string): { ipv4: string | undefined; ipv6: string | undefined } {
  const out = run('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', 'eth0']).stdout.trim();
  const links = out ? (JSON.parse(out) as { addr_info?: { family: string; local: string; scope: string }[] }[]) : [];
  const infos = links.flatMap((l) => l.addr_info ?? []).filter((a) => a.scope === 'global');
  return { ipv4: infos.find((a) => a.family === 'inet')?.local, ipv6: infos.find((a) => a.family === 'inet6')?.local };
}

function isAlive(d: Daemon): boolean {
  if (d.child) return d.child.exitCode === null && d.child.signalCode === null;
  return pidAlive(d.pid);
}

/** Alive and not a zombie. */
function pidAlive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

async function waitGone(d: Daemon, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(d)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

function waitGoneSync(pid: number, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return true;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** What was appended to a file after `offset` (at most 1 MiB of it). */
function readFrom(path: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(Math.min(Math.max(fstatSync(fd).size - offset, 0), 1 << 20));
    const n = readSync(fd, buf, 0, buf.length, offset);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function httpGet(socketPath: string, path: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolvePromise(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Runs `cmd` with `env` and `input` on stdin, collecting both outputs (as a runtime runs a CNI plugin). */
export function runAsync(cmd: string, args: string[], env: Record<string, string>, input: string): Promise<CniOutput> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

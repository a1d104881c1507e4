/**
 * A local multi-node cluster in network namespaces, for `make demo`, integration tests and benchmarks.
 *
 *   <prefix>-ul            the underlay: bridge br0, one port per node (veth-n1, veth-n2, ...)
 *   <prefix>-n1 .. -nN     the nodes: eth0 on the underlay (192.168.X.i/24, fd10:X::i/64: never inside a pod pool, which the defaults keep in fd00::/16), one bin/plexusd each
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
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { DaemonProcess } from './daemon';
import { diagnoseNetns } from './diagnose';
import { BPF_ROOT, PREFIX_RE, RUN_ROOT, removeLeftovers } from './leftovers';
import { waitLoaded, writeManifest } from './manifests';
import { CLUSTER_NETWORK, CNI_BIN_DIR, clusterConflist, daemonConfig } from './node-config';
import { type ExecResult, REPO_ROOT, ipJson, netnsPath, readText, run, runAsync } from './process';
import type { ClusterNode, ClusterOptions, CniResult, Datapath, Pod, PodSpec } from './types';

/** sun_path is 108 bytes. */
const MAX_SOCKET_PATH = 107;

export type CniOutput = ExecResult;


export class Cluster {
  readonly prefix: string;
  readonly rootDir: string;
  readonly underlay: string;
  readonly manifestDir: string;
  readonly ipamDir: string;
  readonly nodes: readonly ClusterNode[];
  readonly datapath: Datapath;
  private readonly opts: ClusterOptions;
  private readonly daemons = new Map<string, DaemonProcess>();
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
      // Not fd00:X:: as it once was: X = 244 put the underlay inside the default pool fd00:244::/56, and IPv6
      // routes to other nodes' blocks then failed (EINVAL, the gateway on-link on eth0), a flake by prefix hash.
      ipv6: `fd10:${x}::${index}`,
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
    run('ip', ['netns', 'add', this.underlay]);
    run('ip', ['-n', this.underlay, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', this.underlay, 'link', 'add', 'br0', 'mtu', '1500', 'type', 'bridge']);
    run('ip', ['-n', this.underlay, 'link', 'set', 'br0', 'up']);
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
    run('ip', ['netns', 'add', node.netns]);
    run('ip', ['-n', node.netns, 'link', 'set', 'lo', 'up']);
    // Both ends are created directly in their namespaces: nothing ever appears in the root netns.
    run('ip', ['-n', this.underlay, 'link', 'add', port, 'mtu', '1500', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1500', 'netns', node.netns]);
    run('ip', ['-n', this.underlay, 'link', 'set', port, 'master', 'br0', 'up']);
    run('ip', ['-n', node.netns, 'addr', 'add', `${node.ipv4}/24`, 'dev', 'eth0']);
    // nodad: usable at once, no 1-2 s of "tentative".
    run('ip', ['-n', node.netns, 'addr', 'add', `${node.ipv6}/64`, 'dev', 'eth0', 'nodad']);
    run('ip', ['-n', node.netns, 'link', 'set', 'eth0', 'up']);
    // A node routes for its pods. No DAD on the links pods bring either (ptp's host veths carry the gateway
    // address): a tentative gateway answers no neighbour solicitation for a second or two.
    const sysctls = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0'];
    run('ip', ['netns', 'exec', node.netns, 'sysctl', '-qw', ...sysctls]);
    for (const d of [node.stateDir, node.confDir]) mkdirSync(d, { recursive: true });
  }

  private writeNodeConfig(node: ClusterNode): void {
    writeFileSync(join(node.confDir, `10-${CLUSTER_NETWORK}.conflist`), JSON.stringify(clusterConflist(this.opts, node), null, 2));
    writeFileSync(node.configPath, yaml.dump(daemonConfig(this.opts, node, this.manifestDir, this.ipamDir)));
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
    return d?.alive() ? d.pid : undefined;
  }

  /** Starts the node's plexusd in its netns and waits until /readyz answers. */
  async startDaemon(ref: string | ClusterNode): Promise<void> {
    const node = this.node(ref);
    if (this.daemonPid(node) !== undefined) throw new Error(`plexusd of ${node.netns} is already running`);
    const d = DaemonProcess.spawn({ netns: node.netns, configPath: node.configPath, socket: node.socket, logFile: node.logFile, detached: this.opts.detached === true });
    this.daemons.set(node.name, d);
    writeFileSync(node.pidFile, `${d.pid}\n`);
    await this.waitReady(node);
    this.say(`plexusd ${node.netns} pid ${d.pid} ready`);
  }

  async waitReady(ref: string | ClusterNode, timeoutMs = this.opts.readyTimeoutMs ?? 30_000): Promise<void> {
    const node = this.node(ref);
    const d = this.daemons.get(node.name);
    if (!d) throw new Error(`plexusd of ${node.netns} was never started`);
    await d.waitReady(timeoutMs, () => (this.closed ? `cluster ${this.prefix} was destroyed while starting` : undefined));
  }

  /** Sends `signal` to the node's plexusd by PID and waits until it has exited. */
  async killDaemon(ref: string | ClusterNode, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<void> {
    const node = this.node(ref);
    const d = this.daemons.get(node.name);
    if (!d) return;
    await d.kill(signal, timeoutMs);
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
    return readText(this.node(ref).logFile).slice(-maxChars);
  }

  /**
   * What a person debugging a failed test wants to see: per node its links, addresses, routes, neighbours, FDB
   * and daemon log tail; per pod its addresses, routes and neighbours. Witnesses are `ip` and `bridge`.
   */
  diagnose(logChars = 4000): string {
    const out: string[] = [];
    for (const node of this.nodes) {
      out.push(`==== ${node.netns} (daemon ${this.daemonPid(node) ?? 'not running'})`, diagnoseNetns(node.netns, { fdb: 'plexus.vxlan' }));
      out.push('---- daemon log (tail)', this.daemonLog(node, logChars).trimEnd());
    }
    for (const pod of this.pods.values()) out.push(`==== pod ${pod.namespace}/${pod.name} on ${pod.node} (${pod.netns})`, diagnoseNetns(pod.netns));
    return out.join('\n');
  }

  // ---- pods ----

  /** Creates the pod's netns, publishes its manifest if it has any metadata, and runs CNI ADD. */
  async addPod(ref: string | ClusterNode, spec: PodSpec): Promise<Pod> {
    const node = this.node(ref);
    const namespace = spec.namespace ?? 'default';
    const netns = `${this.prefix}-${node.name}-${spec.name}`;
    if (this.pods.has(netns)) throw new Error(`pod ${spec.name} already exists on ${node.name}`);
    const uid = spec.uid ?? randomUUID();
    const containerId = randomBytes(32).toString('hex');
    run('ip', ['netns', 'add', netns]);
    const draft = { node: node.name, namespace, name: spec.name, uid, netns, netnsPath: netnsPath(netns), containerId };
    // Tracked from here on, so destroy() removes the netns whatever happens next.
    this.pods.set(netns, { ...draft, result: { cniVersion: '' }, ipv4: undefined, ipv6: undefined, addMs: 0 });
    run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    // Links created in the pod start without IPv6 DAD: ptp waits for it (about 1.5 s per pod otherwise).
    run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
    if (spec.annotations || spec.labels || spec.ownerStatefulSet) await this.publishPod(node, { ...spec, namespace }, uid);
    const t0 = process.hrtime.bigint();
    const out = await this.cniCall('ADD', draft);
    const addMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (out.code !== 0) throw new Error(`CNI ADD of ${namespace}/${spec.name} on ${node.netns} failed (${out.code}): ${out.stdout.trim()} ${out.stderr.trim()}`);
    const addrs = globalAddresses(netns);
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
    run('ip', ['netns', 'del', pod.netns]);
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
    return runAsync('nsenter', [`--net=${netnsPath(node.netns)}`, join(REPO_ROOT, 'bin/plexus')], { env, input: JSON.stringify(config) });
  }

  listPods(): Pod[] {
    return [...this.pods.values()];
  }

  private manifestPath(pod: { namespace: string; name: string }): string {
    return join(this.manifestDir, `pod-${pod.namespace}-${pod.name}.yaml`);
  }

  private async publishPod(node: ClusterNode, spec: PodSpec & { namespace: string }, uid: string): Promise<void> {
    const metadata: Record<string, unknown> = { name: spec.name, namespace: spec.namespace, uid, annotations: spec.annotations ?? {}, ...(spec.labels ? { labels: spec.labels } : {}) };
    if (spec.ownerStatefulSet) metadata['ownerReferences'] = [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: spec.ownerStatefulSet, controller: true }];
    await this.writeManifest(`pod-${spec.namespace}-${spec.name}.yaml`, [{ apiVersion: 'v1', kind: 'Pod', metadata }], [node]);
  }

  /**
   * Writes manifests into the shared directory and waits until the daemons of `nodes` (default: all running)
   * have loaded exactly that file (manifests.ts).
   */
  async writeManifest(file: string, objects: Record<string, unknown>[], nodes: readonly ClusterNode[] = this.nodes): Promise<void> {
    const written = writeManifest(this.manifestDir, file, objects);
    const running = nodes.filter((n) => this.daemonPid(n) !== undefined);
    await Promise.all(running.map((n) => waitLoaded(n.socket, written)));
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


/** eth0's global addresses as the kernel shows them. */
/** An interface's global addresses in a netns, as `ip` shows them (eth0: the cluster network's). */
export function globalAddresses(netns: string, dev = 'eth0'): { ipv4: string | undefined; ipv6: string | undefined } {
  const links = ipJson(netns, ['addr', 'show', 'dev', dev]) as { addr_info?: { family: string; local: string; scope: string }[] }[];
  const infos = links.flatMap((l) => l.addr_info ?? []).filter((a) => a.scope === 'global');
  return { ipv4: infos.find((a) => a.family === 'inet')?.local, ipv6: infos.find((a) => a.family === 'inet6')?.local };
}

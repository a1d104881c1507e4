/**
 * Building blocks for topologies: a veth between two namespaces, an underlay joining "nodes", and a CNI plugin
 * executed in a node namespace exactly as a runtime executes it. Every step that leaves something outside the
 * namespaces of its Scratch (nothing here does, yet) would push its own undo.
 */
import { join } from 'node:path';
import { NETNS_DIR, type Scratch, inNetns, ip } from '../lib/netns';
import { runAsync } from '../../hack/cluster';

export interface VethEnd {
  netns: string;
  ifName: string;
  /** Address with prefix length, e.g. 10.210.0.1/24; none for a bridge port. */
  cidr?: string;
}

/** Creates a veth pair directly in its two namespaces (never in ours), addresses it, and sets both ends up. */
export async function joinByVeth(a: VethEnd, b: VethEnd): Promise<void> {
  await ip('-n', a.netns, 'link', 'add', a.ifName, 'type', 'veth', 'peer', 'name', b.ifName, 'netns', b.netns);
  for (const end of [a, b]) {
    if (end.cidr) await ip('-n', end.netns, 'addr', 'add', end.cidr, 'dev', end.ifName);
    await ip('-n', end.netns, 'link', 'set', end.ifName, 'up');
  }
}

/**
 * The physical network between nodes, as ENVIRONMENT.md builds it: a Linux bridge `br0` in its own netns (the
 * switch) and, per node, a veth whose node end is `ifName` with the given address. Returns the underlay netns.
 */
export async function createUnderlay(scratch: Scratch, nodes: { netns: string; cidr: string }[], ifName = 'eth0'): Promise<string> {
  const underlay = await scratch.netns('underlay');
  await ip('-n', underlay, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', underlay, 'link', 'set', 'br0', 'up');
  for (const [i, node] of nodes.entries()) {
    const port = `port${i}`;
    await joinByVeth({ netns: node.netns, ifName, cidr: node.cidr }, { netns: underlay, ifName: port });
    await ip('-n', underlay, 'link', 'set', port, 'master', 'br0');
  }
  return underlay;
}

/** raw-node-veth's two nodes: node1 (10.220.0.1) and node2 (10.220.0.2) on an underlay, as `eth0`. */
export async function twoNodesOnUnderlay(scratch: Scratch): Promise<[{ netns: string; ip: string }, { netns: string; ip: string }]> {
  const nodes = [
    { netns: await scratch.netns('node1'), ip: '10.220.0.1' },
    { netns: await scratch.netns('node2'), ip: '10.220.0.2' },
  ] as [{ netns: string; ip: string }, { netns: string; ip: string }];
  await createUnderlay(scratch, nodes.map((n) => ({ netns: n.netns, cidr: `${n.ip}/24` })));
  return nodes;
}

export interface CniCall {
  /** The node netns the plugin runs in (`ip netns exec NODE plugin`). */
  node: string;
  /** CNI_PATH, and where the plugin binary `conf.type` is found. */
  binDir: string;
  /** The network config sent on stdin (cniVersion, name, type, ...). */
  conf: Record<string, unknown>;
  /** The pod netns (a name under /var/run/netns). */
  pod: string;
  ifName: string;
}

interface CniResult {
  ips?: { address: string }[];
}

function cniEnv(command: 'ADD' | 'DEL', call: CniCall): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: `bench-${call.pod}`,
    CNI_NETNS: `${NETNS_DIR}/${call.pod}`,
    CNI_IFNAME: call.ifName,
    CNI_PATH: call.binDir,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${call.pod}`,
  };
}

async function execPlugin(command: 'ADD' | 'DEL', call: CniCall, conf: Record<string, unknown>): Promise<string> {
  const bin = join(call.binDir, String(call.conf['type']));
  const r = await runAsync('ip', inNetns(call.node, bin), { env: cniEnv(command, call), input: JSON.stringify(conf), timeoutMs: 30000 });
  // A plugin reports its error as a CNI error object on stdout.
  if (r.code !== 0) throw new Error(`${bin} ${command} in ${call.node} exited ${r.code}: ${(r.stdout + r.stderr).trim().slice(0, 500)}`);
  return r.stdout;
}

/**
 * CNI ADD of one pod interface; pushes the matching DEL (with the ADD result as prevResult, as libcni sends it).
 * Returns the interface's first IP address without its prefix length.
 */
export async function attachWithPlugin(scratch: Scratch, call: CniCall): Promise<string> {
  const out = await execPlugin('ADD', call, call.conf);
  const result = JSON.parse(out) as CniResult;
  await scratch.undo.push(`CNI DEL ${call.pod}/${call.ifName}`, () => execPlugin('DEL', call, { ...call.conf, prevResult: result }));
  const address = result.ips?.[0]?.address;
  if (!address) throw new Error(`${String(call.conf['type'])} ADD for ${call.pod} returned no IP address: ${out.slice(0, 300)}`);
  return address.split('/')[0]!;
}

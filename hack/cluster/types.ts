/** The shapes of a local cluster: its options, nodes, pods and what CNI answered (cluster.ts builds them). */
import type { PoolSpec } from '../../ipam';

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
  /** X in 192.168.X.0/24 and fd10:X::/64 (1-254); default derived from the prefix. */
  underlayIndex?: number;
  /** Default /run/plexus-cluster/<prefix>. */
  rootDir?: string;
  /** Replaces the default pool (`pods`, 10.244.0.0/16 + fd00:244::/56, /26 and /122 blocks). */
  pool?: PoolSpec;
  /** Merged over each node's generated daemon config (top-level keys). */
  daemon?: Record<string, unknown>;
  /** Merged over one node's daemon config after `daemon` (e.g. an `sriov` section for one node). */
  nodeDaemon?: (node: ClusterNode) => Record<string, unknown>;
  /** Default 'info'. */
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
  /** Written with the pod's manifest: what NetworkPolicy selectors match. */
  labels?: Record<string, string>;
  /** The StatefulSet owning the pod (a manifest ownerReference). */
  ownerStatefulSet?: string;
  /** Default: a random UUID (a kubelet checkpoint written beforehand needs to know it). */
  uid?: string;
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

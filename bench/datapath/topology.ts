/**
 * The contract between bench/datapath and the things it measures. A topology builds two endpoints ("pods" on
 * one node, or on two nodes) in network namespaces it creates itself, and removes all of it again. The
 * measurements only ever see `Endpoints`, so a new datapath is one new file (topo-*.ts) plus one line in
 * topologies.ts.
 */

export type TopologyKind = 'same-node' | 'cross-node';

/** Where to measure: the client netns, the server netns, and the server's IPv4 address as the client reaches it. */
export interface Endpoints {
  client: string;
  server: string;
  serverIp: string;
}

export interface Topology {
  /** Stable, kebab-case; what DATAPATH_TOPOLOGIES selects and the report shows, e.g. 'raw-veth'. */
  readonly name: string;
  /** Same-node topologies are compared with raw-veth, cross-node ones with raw-node-veth. */
  readonly kind: TopologyKind;
  /** A reference point (ratios only); a topology that is not a baseline is judged against the goals. */
  readonly baseline: boolean;
  /**
   * A baseline with the same encapsulation (raw-node-vxlan for VXLAN), also divided by in the report: it tells
   * what Plexus costs apart from what the encapsulation itself costs.
   */
  readonly likeForLike?: string;
  /** One line for the report: what sits between the two endpoints. */
  readonly description: string;
  /** Creates everything; called once. A failure leaves what was made so far for `teardown`. */
  setup(): Promise<Endpoints>;
  /** Removes everything `setup` made; idempotent, and safe to call while `setup` is still running. */
  teardown(): Promise<void>;
}

export interface TopologyContext {
  /**
   * Unique to this topology in this run (`plxd-<random>-t<n>`): prefix every netns with it (`<prefix>-<role>`)
   * so that concurrent runs and other topologies never collide.
   */
  prefix: string;
  /** A private directory (not yet created) for files such as a host-local dataDir; removed after the run. */
  tmpDir: string;
}

/**
 * Builds a topology object. Must not touch the kernel or the file system: every factory in the registry is
 * called, and only the selected topologies are then set up.
 */
export type TopologyFactory = (ctx: TopologyContext) => Topology;

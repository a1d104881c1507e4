/**
 * The delegate contract: what attaches one plugin of a network's config list. One small interface, many
 * implementations (STYLE 19): an external CNI binary (`exec-binary.ts`) for any `type`, and built-in types
 * (plexus-routed, plexus-sriov, plexus-dpdk) registered explicitly in `registry.ts`.
 *
 * A delegate receives exactly what a CNI plugin would: the command, the CNI env values and the final plugin
 * config (name, cniVersion, prevResult and filtered runtimeConfig already injected by `conflist.ts`).
 * It returns the parsed JSON it printed (ADD, VERSION) or nothing.
 */
import type { Logger } from 'pino';
import { versionInfo } from '../cni/version';
import { IPAM_PLUGIN_TYPE } from '../ipam';

export type DelegateCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

export interface DelegateEnv {
  containerId: string;
  /** Empty for DEL without netns, GC and STATUS. */
  netns: string;
  ifName: string;
  /** CNI_ARGS to pass on. */
  args: string;
  /** CNI_PATH for the delegate (binDirs first, then the runtime's CNI_PATH). */
  path: string[];
}

export interface PluginCall {
  command: DelegateCommand;
  env: DelegateEnv;
  /** The complete plugin config written to the delegate's stdin. */
  config: Record<string, unknown>;
  timeoutMs: number;
  log: Logger;
}

/** A call without its config: what is known before the config is (a prestart). */
export type PluginCallEnv = Omit<PluginCall, 'config'>;

/** A plugin process started ahead of its turn, waiting for its config (Delegate.prestart). */
export interface Prestarted {
  /** Hands it the config of `call` and settles as `exec(call)` would. A call it was not started for runs anew. */
  run(call: PluginCall): Promise<unknown>;
  /** It will not be used: it is killed before it has read its config. */
  abandon(): void;
}

/** A pod interface a datapath delegate attached, as what enforces policy on it needs to know it. */
export interface EndpointInfo {
  /** The CNI network name of the attachment's config. */
  readonly network: string;
  readonly pod?: { readonly namespace: string; readonly name: string };
  readonly ips: readonly string[];
  /** The interface traffic of the endpoint crosses, and the netns it lives in (null: the node's). */
  readonly ifindex: number;
  readonly netns: string | null;
  /** `host`: the node's end of a veth (its ingress is out of the pod); `pod`: the pod's own interface. */
  readonly end: 'host' | 'pod';
}

/**
 * Told of every endpoint a datapath delegate attaches, before traffic can reach it (so a pod a policy selects
 * is isolated before its ADD returns, NP8), and of every one it detaches. A failure of `attaching` fails the ADD.
 */
export interface EndpointWatcher {
  attaching(ep: EndpointInfo): Promise<void>;
  detached(ep: EndpointInfo): Promise<void>;
}

export interface Delegate {
  /** Run one CNI command for one plugin config. Throws PlexusError on failure (delegate's code kept). */
  exec(call: PluginCall): Promise<unknown>;
  /**
   * Capability args a built-in always takes, as if every config of its type declared them (plexus-sriov
   * takes `CNIDeviceInfoFile` and `deviceID` whether or not a migrated sriov-cni config lists them).
   */
  readonly capabilities?: readonly string[];
  /**
   * Its CHECK verifies the pod's interface itself, which may be no kernel link at all (a vhost-user socket, a
   * DPDK-bound VF): the runner then skips its generic "is the link there" test.
   */
  readonly verifiesInterface?: boolean;
  /**
   * Starts what `exec` will run before its config is known, where that can be done without acting on anything
   * (an external binary loads and waits on its stdin). The runner starts the next plugin this way while the
   * current one works, so the next one's process start-up is off the pod's critical path (D-13).
   */
  prestart?(call: PluginCallEnv): Prestarted | undefined;
}

/**
 * JSON Schema properties every built-in's plugin entry may carry besides its own keys: the standard CNI keys
 * (name, cniVersion, args, dns, capabilities, prevResult, runtimeConfig, ipam), and the keys the shim reads
 * when a runtime execs the built-in directly (meta-plugin/shim/main.ts: socketPath, stateDir,
 * readinessTimeoutSeconds). A built-in that refuses unknown keys spreads these into its schema.
 */
export const BUILTIN_PLUGIN_KEYS = {
  name: { type: 'string' },
  cniVersion: { type: 'string' },
  args: { type: 'object' },
  dns: { type: 'object' },
  capabilities: { type: 'object' },
  prevResult: { type: 'object' },
  runtimeConfig: { type: 'object' },
  ipam: { type: 'object' },
  socketPath: { type: 'string' },
  stateDir: { type: 'string' },
  readinessTimeoutSeconds: { type: 'number' },
} as const;

/**
 * A network's `ipam` section with `type` defaulted to plexus-ipam (the built-in IPAM service); undefined when
 * the network has none (an empty section included). Lenient by design: DEL and GC must release addresses
 * even for a config that no longer validates.
 */
export function ipamSectionOf(config: Record<string, unknown>): Record<string, unknown> | undefined {
  const ipam = config['ipam'];
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam) || Object.keys(ipam).length === 0) return undefined;
  const type = (ipam as Record<string, unknown>)['type'];
  return { ...ipam, type: typeof type === 'string' ? type : IPAM_PLUGIN_TYPE };
}

/** Runs the network's IPAM plugin as libcni's ipam.Exec* does: the whole network config, this `ipam` section. */
export function runIpam(delegates: DelegateRegistry, command: 'ADD' | 'DEL' | 'CHECK' | 'GC', call: PluginCall, ipam: Record<string, unknown>): Promise<unknown> {
  return delegates.forType(String(ipam['type'])).exec({ ...call, command, config: { ...call.config, ipam } });
}

/** A built-in's handlers for the commands that act; STATUS answers "ready" and VERSION ours unless given. */
export type CommandHandlers = Record<'ADD' | 'DEL' | 'CHECK' | 'GC', (call: PluginCall) => Promise<unknown>> &
  Partial<Record<'STATUS', (call: PluginCall) => Promise<unknown>>>;

/** Runs `call` on the handler of its command (one definition of what a built-in answers to STATUS, VERSION). */
export function dispatchCommand(call: PluginCall, handlers: CommandHandlers): Promise<unknown> {
  if (call.command === 'VERSION') return Promise.resolve(versionInfo());
  if (call.command === 'STATUS') return handlers.STATUS ? handlers.STATUS(call) : Promise.resolve(undefined);
  return handlers[call.command](call);
}

/**
 * The CNI env of one call, exactly as a runtime sets it for a plugin (CNI spec 2.1 "Parameters"): the one
 * definition for binaries (exec-binary.ts) and built-ins that read a request (plexus-ipam).
 */
export function cniEnvOf(call: Pick<PluginCall, 'command' | 'env'>): Record<string, string> {
  return {
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.env.containerId,
    CNI_NETNS: call.env.netns,
    CNI_IFNAME: call.env.ifName,
    CNI_ARGS: call.env.args,
    CNI_PATH: call.env.path.join(':'),
  };
}

/** Resolves a plugin `type` to the delegate that runs it. */
export interface DelegateRegistry {
  forType(type: string): Delegate;
  /** The capabilities a built-in of `type` takes without declaring them (none for binaries). */
  implicitCapabilities?(type: string): readonly string[];
  /** Whether the built-in of `type` verifies its interface in CHECK (Delegate.verifiesInterface). */
  verifiesInterface?(type: string): boolean;
  /** True when `type` can run here: a built-in, or a binary found in the search path. */
  available(type: string, path: string[]): boolean;
}

/**
 * The protocol between the CNI binary (the C forwarder and the Node shim) and plexusd, defined once (STYLE
 * 24): default paths, the names the binary acts under, the daemon's HTTP routes and headers.
 * `meta-plugin/shim/forwarder.c` repeats the socket path, the CNI route and the not-ready header; the
 * protocol test compares its constants with these.
 *
 *   POST /v1/cni               {env, config, invokedAs} -> CNI output (200) or a CNI error result
 *   GET  /healthz              the process is up
 *   GET  /readyz               source loaded, DEL queue drained
 *   GET  /v1/status/NS/POD     the pod's network-status annotation value (plexusctl status)
 *   GET  /v1/policy/NS/POD     the policies that select the pod and what they allow (plexusctl policy)
 *   GET  /v1/flows[?follow=1]  recent flows as JSON lines, oldest first; with follow, then each new one (plexusctl observe)
 *   GET  /v1/source, /v1/ipam/pools|blocks|pods, /v1/routed/endpoints, /metrics   operator views
 */

export const DEFAULT_SOCKET_PATH = '/run/plexus/plexus.sock';
export const DEFAULT_STATE_DIR = '/var/lib/plexus';

/** The names the CNI binary acts under (DESIGN "External contract"); bin/ has a link per alias. */
export const PLUGIN_NAMES = ['plexus', 'plexus-ipam', 'plexus-routed', 'plexus-sriov', 'plexus-dpdk'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];
export const isPluginName = (v: unknown): v is PluginName => (PLUGIN_NAMES as readonly unknown[]).includes(v);

export const ROUTES = {
  cni: '/v1/cni',
  healthz: '/healthz',
  readyz: '/readyz',
  status: '/v1/status/',
  policy: '/v1/policy/',
  flows: '/v1/flows',
} as const;

/** Following flows, the line after the backlog: what comes next is new. */
export const END_OF_BACKLOG = { endOfBacklog: true } as const;

/** The operator views, by the path after the leading `/`. */
export const VIEWS = ['metrics', 'v1/source', 'v1/ipam/pools', 'v1/ipam/blocks', 'v1/ipam/pods', 'v1/routed/endpoints'] as const;
export type ViewName = (typeof VIEWS)[number];

/** On a 503 from /v1/cni: the daemon is starting, so the caller waits (any other failure is an answer). */
export const NOT_READY_HEADER = 'x-plexus-not-ready';

/**
 * Beside the socket, the daemon publishes where its state lives, so a shim that cannot reach it queues a DEL
 * where the daemon will drain it, whatever `stateDir` the CNI config says (the two used to be able to differ
 * silently, and such a DEL was never replayed).
 */
export const stateDirFilePath = (socketPath: string): string => `${socketPath}.state-dir`;

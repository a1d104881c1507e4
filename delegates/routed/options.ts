/**
 * plexus-routed's two configurations, each one JSON Schema (ajv) that holds the names and defaults (STYLE 6):
 * - the node's: the daemon config's `routed` section (how this node routes: native or VXLAN, its underlay,
 *   eBPF on or off, where pins live);
 * - the network's: the plugin entry `{"type": "plexus-routed", ...}` of a conflist (MTU, eBPF per network,
 *   and the `ipam` section, which must be plexus-ipam: the IPAM service's block claims are what the node
 *   routes follow).
 */
import Ajv from 'ajv';
import { PlexusError } from '../../core/errors';
import { schemaProblems, validSection } from '../../core/schema-problems';
import { IPAM_PLUGIN_TYPE } from '../../ipam';

export const ROUTED_TYPE = 'plexus-routed';
/** rtm_protocol of every route plexus-routed writes, so it finds its own (iproute2's rt_protos leaves it free). */
export const RTPROT_PLEXUS = 180;
/** The pod's link-local gateways (Calico's and Cilium's choice): never routed, never a pod's address. */
export const GATEWAY_V4 = '169.254.1.1';
export const GATEWAY_V6 = 'fe80::1';

export const ROUTED_OPTIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    /** native: other nodes' blocks via their underlay address (one L2 segment); vxlan: through a VXLAN device. */
    mode: { enum: ['native', 'vxlan'], default: 'native' },
    /** The interface whose addresses are this node's underlay addresses; needed for more than one node. */
    underlay: { type: 'string', pattern: '^[^/\\s]{1,15}$' },
    ebpf: { type: 'boolean', default: true },
    /** Pod MTU; default the underlay's (minus 50 in vxlan mode), or 1500 without an underlay. */
    mtu: { type: 'integer', minimum: 576, maximum: 65535 },
    pinDir: { type: 'string', pattern: '^/sys/fs/bpf/[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*$', default: '/sys/fs/bpf/plexus' },
    /** The compiled datapath object; default bpf/from_pod.o next to the daemon. */
    bpfObject: { type: 'string', pattern: '^/' },
    vxlan: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        vni: { type: 'integer', minimum: 1, maximum: 16777215, default: 4096 },
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 4789 },
        device: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,15}$', default: 'plexus.vxlan' },
      },
    },
    /** How often other nodes' block claims are re-read (ms). */
    routeSyncMs: { type: 'integer', minimum: 50, maximum: 60000, default: 500 },
  },
} as const;

export interface RoutedOptions {
  readonly mode: 'native' | 'vxlan';
  readonly underlay?: string;
  readonly ebpf: boolean;
  readonly mtu?: number;
  readonly pinDir: string;
  readonly bpfObject?: string;
  readonly vxlan: { readonly vni: number; readonly port: number; readonly device: string };
  readonly routeSyncMs: number;
}

const PLUGIN_SCHEMA = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { const: ROUTED_TYPE },
    mtu: { type: 'integer', minimum: 576, maximum: 65535 },
    ebpf: { type: 'boolean' },
    ipam: {
      type: 'object',
      required: ['type'],
      properties: { type: { const: IPAM_PLUGIN_TYPE } },
    },
  },
} as const;

export interface RoutedNetConfig {
  readonly mtu?: number;
  readonly ebpf?: boolean;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateOptions = ajv.compile(ROUTED_OPTIONS_SCHEMA);
const validatePlugin = ajv.compile(PLUGIN_SCHEMA);

/** The daemon config's `routed` section, defaulted; InvalidConfig naming the field. */
export function parseRoutedOptions(raw: unknown): RoutedOptions {
  return validSection<RoutedOptions>(validateOptions, raw, 'routed');
}

/** A network's plugin entry. The `ipam` section is required and must be plexus-ipam (code 7 otherwise). */
export function parseNetConfig(config: Record<string, unknown>): RoutedNetConfig {
  const name = typeof config['name'] === 'string' ? config['name'] : '?';
  if (!validatePlugin(config)) {
    throw new PlexusError('InvalidConfig', `${ROUTED_TYPE} network "${name}": ${schemaProblems(validatePlugin.errors)}`);
  }
  if (config['ipam'] === undefined) {
    throw new PlexusError('InvalidConfig', `${ROUTED_TYPE} network "${name}": ipam is required ({"type": "plexus-ipam", "pool": ...})`);
  }
  const out: { mtu?: number; ebpf?: boolean } = {};
  if (typeof config['mtu'] === 'number') out.mtu = config['mtu'];
  if (typeof config['ebpf'] === 'boolean') out.ebpf = config['ebpf'];
  return out;
}

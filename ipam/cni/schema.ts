/**
 * The parts of a network config the `plexus-ipam` CNI IPAM plugin reads, as one JSON Schema (draft-07,
 * ajv): the single source of truth for their shape (STYLE 6). The delegate (macvlan, bridge ...) hands the
 * plugin its FULL config (CNI 2.2 "Delegation"); the IPAM part is `ipam`, plus `name`, `dns`, the runtime's
 * `runtimeConfig` and the `args` convention. Unknown keys are allowed everywhere so that existing
 * NetworkAttachmentDefinitions move over by changing only `ipam.type` (host-local's `dataDir`, Whereabouts'
 * `etcd_host`, `log_file`, `kubernetes` ... are accepted and ignored). CIDR semantics are checked by
 * cni-ranges.ts and pool.ts, which a schema cannot express.
 */
import Ajv, { type ErrorObject } from 'ajv';
import { PlexusError } from '../../core/errors';
import type { CniDns, CniRoute } from '../../cni/result';

const text = { type: 'string', minLength: 1, maxLength: 256 } as const;
const address = { type: 'string', minLength: 2, maxLength: 45 } as const;
const cidr = { type: 'string', minLength: 4, maxLength: 93 } as const;
const uint = { type: 'integer', minimum: 0, maximum: 4294967295 } as const;

/** host-local: one range of a range set. */
const HOST_LOCAL_RANGE = {
  type: 'object',
  required: ['subnet'],
  properties: { subnet: cidr, rangeStart: address, rangeEnd: address, gateway: address },
} as const;

/** Whereabouts: `range` is "CIDR" or "first-last/len"; `ipRanges` lists more of them (dual-stack). */
const WHEREABOUTS_RANGE = {
  type: 'object',
  required: ['range'],
  properties: { range: cidr, range_start: address, range_end: address, exclude: { type: 'array', maxItems: 1024, items: cidr } },
} as const;

export const CNI_ROUTE_SCHEMA = {
  type: 'object',
  required: ['dst'],
  properties: { dst: cidr, gw: address, mtu: uint, advmss: uint, priority: uint, table: uint, scope: { type: 'integer', minimum: 0, maximum: 255 } },
} as const;

export const CNI_DNS_SCHEMA = {
  type: 'object',
  properties: {
    nameservers: { type: 'array', items: address },
    domain: text,
    search: { type: 'array', items: text },
    options: { type: 'array', items: text },
  },
} as const;

/** The `ipam` section. Which of pool / ranges / range+ipRanges is used is checked in code, for clearer messages. */
export const CNI_IPAM_SECTION_SCHEMA = {
  type: 'object',
  required: ['type'],
  properties: {
    type: text,
    // Read by the plugin binary (the shim): where the daemon listens (default /run/plexus/plexus.sock), where
    // DELs are queued while it is down, and how long to wait for it to become ready.
    socketPath: { type: 'string', pattern: '^/', maxLength: 4096 },
    stateDir: { type: 'string', pattern: '^/', maxLength: 4096 },
    readinessTimeoutSeconds: { type: 'number', minimum: 0 },
    pool: { type: 'string', minLength: 1, maxLength: 253 },
    ranges: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'array', minItems: 1, maxItems: 64, items: HOST_LOCAL_RANGE } },
    range: cidr,
    range_start: address,
    range_end: address,
    exclude: WHEREABOUTS_RANGE.properties.exclude,
    ipRanges: { type: 'array', minItems: 1, maxItems: 2, items: WHEREABOUTS_RANGE },
    gateway: address,
    routes: { type: 'array', maxItems: 256, items: CNI_ROUTE_SCHEMA },
    dns: CNI_DNS_SCHEMA,
    dataDir: { type: 'string' },
  },
} as const;

/** The network config as the IPAM plugin reads it (ADD and CHECK). */
export const CNI_IPAM_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['name', 'ipam'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]*$' },
    ipam: CNI_IPAM_SECTION_SCHEMA,
    dns: CNI_DNS_SCHEMA,
    runtimeConfig: {
      type: 'object',
      properties: {
        // CONVENTIONS capability `ips`: "ip[/prefix]", at most one per family.
        ips: { type: 'array', maxItems: 2, items: { type: 'string', minLength: 2, maxLength: 49 } },
        // S21: the IPAMClaim the address belongs to.
        ipamClaimReference: { type: 'string', minLength: 1, maxLength: 253 },
      },
    },
    args: {
      type: 'object',
      properties: { cni: { type: 'object', properties: { ips: { type: 'array', maxItems: 2, items: { type: 'string', minLength: 2, maxLength: 49 } } } } },
    },
  },
} as const;

export interface HostLocalRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface WhereaboutsRange {
  range: string;
  range_start?: string;
  range_end?: string;
  exclude?: string[];
}

export interface CniIpamSection {
  type: string;
  socketPath?: string;
  pool?: string;
  ranges?: HostLocalRange[][];
  range?: string;
  range_start?: string;
  range_end?: string;
  exclude?: string[];
  ipRanges?: WhereaboutsRange[];
  gateway?: string;
  routes?: CniRoute[];
  dns?: CniDns;
}

export interface CniIpamConfig {
  name: string;
  ipam: CniIpamSection;
  dns?: CniDns;
  runtimeConfig?: { ips?: string[]; ipamClaimReference?: string };
  args?: { cni?: { ips?: string[] } };
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validateConfig = ajv.compile(CNI_IPAM_CONFIG_SCHEMA);

/** `/ipam/ranges/0/1/subnet` -> `ipam.ranges[0][1].subnet`; a missing property is named too. */
export function fieldOf(err: ErrorObject): string {
  const parts = err.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`));
  if (err.keyword === 'required') parts.push(`.${String(err.params['missingProperty'])}`);
  return parts.join('').replace(/^\./, '') || 'network config';
}

/** Validate the network config's shape for ADD and CHECK; the error names the field (code 7). */
export function parseCniIpamConfig(config: Record<string, unknown>): CniIpamConfig {
  if (validateConfig(config)) return config as unknown as CniIpamConfig;
  const e = validateConfig.errors?.[0];
  if (!e) throw new PlexusError('InvalidConfig', 'the network config is invalid for plexus-ipam');
  const msg = e.keyword === 'required' ? 'is required' : (e.message ?? 'is invalid');
  return invalidField(fieldOf(e), msg);
}

function invalidField(field: string, msg: string): never {
  throw new PlexusError('InvalidConfig', `plexus-ipam: ${field} ${msg}`);
}

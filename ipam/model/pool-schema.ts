/**
 * JSON Schemas (draft-07, ajv) for the IPAM part of the daemon config and the IPPool manifest: the single
 * source of truth for their shape (STYLE 6). crds/plexus-ippool.yaml carries the same fields (a test keeps
 * them in step). CIDR semantics (host bits, ranges inside CIDRs, overlaps) are checked by pool.ts.
 */
import Ajv, { type ErrorObject } from 'ajv';
import { PlexusError } from '../../core/errors';
import { type Pool, type PoolSpec, parsePoolList } from './pool';

const address = { type: 'string', minLength: 2, maxLength: 45 } as const;
const addressOrList = { oneOf: [address, { type: 'array', minItems: 1, maxItems: 2, items: address }] } as const;
const cidr = { type: 'string', minLength: 4, maxLength: 49, pattern: '/' } as const;

/** The IPPool manifest's `spec`, and a config pool without its `name`. */
export const POOL_SPEC_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['cidrs'],
  properties: {
    cidrs: { type: 'array', minItems: 1, maxItems: 64, items: cidr },
    blockSize: {
      oneOf: [
        { type: 'integer', minimum: 1, maximum: 128 },
        {
          type: 'object', additionalProperties: false,
          properties: { v4: { type: 'integer', minimum: 1, maximum: 32 }, v6: { type: 'integer', minimum: 1, maximum: 128 } },
        },
      ],
    },
    exclude: { type: 'array', maxItems: 1024, items: { type: 'string', minLength: 2, maxLength: 49 } },
    rangeStart: addressOrList,
    rangeEnd: addressOrList,
    gateway: addressOrList,
    routes: {
      type: 'array', maxItems: 256,
      items: { type: 'object', additionalProperties: false, required: ['dst'], properties: { dst: cidr, gw: address } },
    },
    strictAffinity: { type: 'boolean' },
    nodeSelector: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 } },
  },
} as const;

/** DNS-1123 subdomain; never contains ':' or '/', which block keys and store keys rely on. */
export const POOL_NAME_SCHEMA = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' } as const;

export const POOL_SCHEMA = {
  ...POOL_SPEC_SCHEMA,
  required: ['name', 'cidrs'],
  properties: { name: POOL_NAME_SCHEMA, ...POOL_SPEC_SCHEMA.properties },
} as const;

/** `ipam` in the daemon config. */
export const IPAM_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  properties: {
    store: {
      oneOf: [
        { type: 'object', additionalProperties: false, required: ['type'], properties: { type: { const: 'local' }, dir: { type: 'string', pattern: '^/' } } },
        {
          type: 'object', additionalProperties: false, required: ['type', 'endpoints'],
          properties: {
            type: { const: 'etcd' },
            endpoints: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://' } },
            prefix: { type: 'string', minLength: 1, maxLength: 256 },
          },
        },
        {
          // The shared records as IPAMRecord objects (crds/plexus-ipamrecord.yaml); the API client is the daemon's.
          type: 'object', additionalProperties: false, required: ['type'],
          properties: {
            type: { const: 'kubernetes' },
            kubeconfig: { type: 'string', pattern: '^/' },
            txnTimeoutMs: { type: 'integer', minimum: 1000, maximum: 120000 },
          },
        },
      ],
    },
    pools: { type: 'array', items: POOL_SCHEMA },
    growBy: { type: 'integer', minimum: 1, maximum: 4096 },
    syncIntervalMs: { type: 'integer', minimum: 0 },
    reserveIdleMs: { type: 'integer', minimum: 0 },
    cooldownMs: { type: 'integer', minimum: 0 },
    gcGraceMs: { type: 'integer', minimum: 0 },
    leaseTtlMs: { type: 'integer', minimum: 2000 },
    // The daemon's garbage collection driven by the source's pods (meta-plugin/daemon/ipam-host.ts); 0: off.
    gcIntervalSeconds: { type: 'number', minimum: 0 },
  },
} as const;

export const IPPOOL_MANIFEST_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'plexus.io/v1alpha1' },
    kind: { const: 'IPPool' },
    metadata: { type: 'object', required: ['name'], properties: { name: POOL_NAME_SCHEMA } },
    spec: POOL_SPEC_SCHEMA,
  },
} as const;

export type IpamStoreConfig =
  | { type: 'local'; dir?: string }
  | { type: 'etcd'; endpoints: string[]; prefix?: string }
  | { type: 'kubernetes'; kubeconfig?: string; txnTimeoutMs?: number };

export interface IpamConfig {
  store?: IpamStoreConfig;
  pools?: PoolSpec[];
  growBy?: number;
  syncIntervalMs?: number;
  reserveIdleMs?: number;
  cooldownMs?: number;
  gcGraceMs?: number;
  leaseTtlMs?: number;
  /** How often the daemon collects addresses of pods its source no longer lists (default 60; 0: never). */
  gcIntervalSeconds?: number;
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validateConfig = ajv.compile(IPAM_CONFIG_SCHEMA);
const validateManifest = ajv.compile(IPPOOL_MANIFEST_SCHEMA);

/** `/pools/0/cidrs/1` -> `ipam.pools[0].cidrs[1]` */
function fieldOf(root: string, err: ErrorObject): string {
  const parts = err.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`));
  const extra = err.keyword === 'additionalProperties' ? `.${String(err.params.additionalProperty)}` : '';
  return `${root}${parts.join('')}${extra}`;
}

function schemaError(root: string, errors: ErrorObject[] | null | undefined): PlexusError {
  const e = errors?.[0];
  if (!e) return new PlexusError('InvalidConfig', `${root} is invalid`);
  const msg = e.keyword === 'additionalProperties' ? 'is not a known field' : e.message ?? 'is invalid';
  return new PlexusError('InvalidConfig', `${fieldOf(root, e)} ${msg}`);
}

/** Validate and parse the daemon config's `ipam` section. */
export function parseIpamConfig(raw: unknown): { config: IpamConfig; pools: Pool[] } {
  const value = raw ?? {};
  if (!validateConfig(value)) throw schemaError('ipam', validateConfig.errors);
  const config = value as IpamConfig;
  return { config, pools: parsePoolList(config.pools ?? []) };
}

/** An IPPool manifest (the file source or, later, the Kubernetes API) as a pool spec. */
export function poolSpecFromManifest(doc: unknown): PoolSpec {
  if (!validateManifest(doc)) throw schemaError('IPPool', validateManifest.errors);
  const m = doc as { metadata: { name: string }; spec: Omit<PoolSpec, 'name'> };
  return { ...m.spec, name: m.metadata.name };
}

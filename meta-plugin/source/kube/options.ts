/**
 * The daemon config's `source` section: `file` (a directory of manifests, the embedded default) or
 * `kubernetes` (the API server, through a kubeconfig or the pod's service account). One schema per type, so
 * each keeps its defaults and names its own keys.
 */
import Ajv from 'ajv';
import { PlexusError } from '../../../core/errors';
import { validSection } from '../../../core/schema-problems';

const FILE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'dir'],
  properties: {
    type: { const: 'file' },
    dir: { type: 'string', pattern: '^/' },
    rescanSeconds: { type: 'number', minimum: 0.1, default: 2 },
    /**
     * A directory the nodes share: each writes its pods' network-status there and reads the others', so a
     * policy peer on another node is known by its labels (without it, by its address only).
     */
    statusDir: { type: 'string', pattern: '^/' },
  },
} as const;

const KUBE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { const: 'kubernetes' },
    /** A kubeconfig file; absent: the pod's service account (in-cluster). */
    kubeconfig: { type: 'string', pattern: '^/' },
    /** How long an ADD waits for its pod to reach the cache before one GET. */
    podWaitMs: { type: 'integer', minimum: 0, maximum: 60000, default: 5000 },
    /** Bound on every request to the API server (the GET of an ADD, status and event writes, lists). */
    requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 120000, default: 10000 },
    /** A watch with no event or bookmark for this long is taken as dead and relisted. */
    watchSilenceSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 150 },
    /** Longest wait between reconnects (exponential from 0.5 s, with jitter). */
    backoffMaxMs: { type: 'integer', minimum: 100, maximum: 600000, default: 30000 },
  },
} as const;

export interface FileSourceOptions {
  readonly type: 'file';
  readonly dir: string;
  readonly rescanSeconds: number;
  readonly statusDir?: string;
}

export interface KubeSourceOptions {
  readonly type: 'kubernetes';
  readonly kubeconfig?: string;
  readonly podWaitMs: number;
  readonly requestTimeoutMs: number;
  readonly watchSilenceSeconds: number;
  readonly backoffMaxMs: number;
}

export type SourceOptions = FileSourceOptions | KubeSourceOptions;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateFile = ajv.compile(FILE_SCHEMA);
const validateKube = ajv.compile(KUBE_SCHEMA);

export function parseSourceOptions(raw: unknown): SourceOptions {
  const type = (raw as { type?: unknown } | undefined)?.type;
  if (type === 'file') return validSection<FileSourceOptions>(validateFile, raw, 'source');
  if (type === 'kubernetes') return validSection<KubeSourceOptions>(validateKube, raw, 'source');
  throw new PlexusError('InvalidConfig', `source: /type must be "file" or "kubernetes", not ${JSON.stringify(type)}`);
}

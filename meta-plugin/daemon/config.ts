/**
 * plexusd's configuration: YAML or JSON, validated by one JSON Schema (ajv) that is the single source of
 * truth for names and defaults (STYLE 6), then frozen. Keys Multus users know keep Multus's names
 * (clusterNetwork, defaultNetworks, systemNamespaces, multusNamespace, namespaceIsolation, globalNamespaces,
 * confDir, binDirs).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import Ajv from 'ajv';
import yaml from 'js-yaml';
import { PlexusError, errorText } from '../../core/errors';
import { schemaProblems } from '../../core/schema-problems';
import { parseIpamConfig, type IpamConfig } from '../../ipam';
import { DEFAULT_SOCKET_PATH, DEFAULT_STATE_DIR } from '../api/protocol';
import { DEFAULT_DEVINFO_DIR } from '../runner/device-info';
import { parseRoutedOptions, type RoutedOptions } from '../../delegates/routed/options';
import { parseSriovOptions, type SriovOptions } from '../../sriov/config';
import { parseDpdkOptions, type DpdkOptions } from '../../dpdk-native/config';
import { parseSourceOptions, type SourceOptions } from '../source/kube/options';

export const DAEMON_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    socketPath: { type: 'string', pattern: '^/', default: DEFAULT_SOCKET_PATH },
    stateDir: { type: 'string', pattern: '^/', default: DEFAULT_STATE_DIR },
    binDirs: { type: 'array', items: { type: 'string', pattern: '^/' }, default: ['/opt/cni/bin', '/usr/lib/cni'] },
    confDir: { type: 'string', pattern: '^/', default: '/etc/cni/net.d' },
    clusterNetwork: { type: 'string', minLength: 1 },
    multusNamespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', default: 'kube-system' },
    defaultNetworks: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    systemNamespaces: { type: 'array', items: { type: 'string' }, default: ['kube-system'] },
    namespaceIsolation: { type: 'boolean', default: false },
    // Multus spells this as a comma-separated string; a list is accepted too.
    globalNamespaces: {
      anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'string' }],
      default: ['default', 'kube-system'],
    },
    nodeName: { type: 'string', minLength: 1 },
    deviceInfoDir: { type: 'string', pattern: '^/', default: DEFAULT_DEVINFO_DIR },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' },
    // `file` or `kubernetes`; validated per type by meta-plugin/source/kube/options.ts (one schema each, so
    // each keeps its defaults: ajv applies none inside oneOf).
    source: { type: 'object', default: { type: 'file', dir: '/etc/plexus/manifests' } },
    // The IPAM service; validated in full by ipam/'s own schema (parseIpamConfig), which names the field.
    ipam: { type: 'object', default: {} },
    // The built-in routed datapath; present = enabled. Validated in full by delegates/routed/options.ts.
    routed: { type: 'object' },
    // NetworkPolicy and MultiNetworkPolicy in eBPF on the routed datapath's endpoints (needs `routed`), and
    // the flows `plexusctl observe` shows. Policies are read from the source whatever this says.
    policy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enforce: { type: 'boolean', default: true },
        /** The compiled policy object; default bpf/policy.o next to the daemon. */
        bpfObject: { type: 'string', pattern: '^/' },
        /** Where its maps are pinned; default `<routed.pinDir>/policy`, so two daemons never share them. */
        pinDir: { type: 'string', pattern: '^/sys/fs/bpf/[A-Za-z0-9_.@-]+(/[A-Za-z0-9_.@-]+)*$' },
        /** Recent flows kept for `plexusctl observe`. */
        flowBuffer: { type: 'integer', minimum: 100, maximum: 1000000, default: 10000 },
      },
    },
    // The built-in SR-IOV delegate and the device-plugin lookup; present = enabled. Validated by sriov/config.ts.
    sriov: { type: 'object' },
    // plexus-dpdk and the plexus-dataplane engine it drives; present = enabled. Validated by dpdk-native/config.ts.
    dpdk: { type: 'object' },
    // Installing Plexus on the node (the DaemonSet's job, install.ts): present = plexusd copies its binaries into
    // cniBinDir at start and writes the Plexus conflist into cniConfDir once ready. With it, clusterNetwork may
    // be left out: the primary network is then the pinned conflist or the first valid one.
    install: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cniBinDir: { type: 'string', pattern: '^/', default: '/opt/cni/bin' },
        /** Default: confDir. */
        cniConfDir: { type: 'string', pattern: '^/' },
        conflistName: { type: 'string', pattern: '^[A-Za-z0-9_.-]+\\.conflist$', default: '00-plexus.conflist' },
        primaryConflist: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
        /** Where the binaries to install are: default, beside the running plexusd. */
        fromDir: { type: 'string', pattern: '^/' },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxConcurrentRequests: { type: 'integer', minimum: 1, maximum: 1024, default: 16 },
        delegateTimeoutSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 60 },
        shutdownGraceSeconds: { type: 'number', minimum: 0, maximum: 3600, default: 30 },
      },
    },
    prestartDelegates: { type: 'boolean', default: true },
  },
} as const;

export interface DaemonConfig {
  readonly socketPath: string;
  readonly stateDir: string;
  readonly binDirs: readonly string[];
  readonly confDir: string;
  readonly clusterNetwork: string;
  readonly multusNamespace: string;
  readonly defaultNetworks: readonly string[];
  readonly systemNamespaces: readonly string[];
  readonly namespaceIsolation: boolean;
  readonly globalNamespaces: readonly string[];
  readonly nodeName: string;
  readonly deviceInfoDir: string;
  readonly logLevel: string;
  readonly source: SourceOptions;
  readonly ipam: IpamConfig;
  readonly routed?: RoutedOptions;
  readonly policy: { readonly enforce: boolean; readonly bpfObject?: string; readonly pinDir?: string; readonly flowBuffer: number };
  readonly sriov?: SriovOptions;
  readonly dpdk?: DpdkOptions;
  readonly install?: { readonly cniBinDir: string; readonly cniConfDir?: string; readonly conflistName: string; readonly primaryConflist?: string; readonly fromDir?: string };
  readonly limits: { readonly maxConcurrentRequests: number; readonly delegateTimeoutSeconds: number; readonly shutdownGraceSeconds: number };
  /**
   * ADD and DEL start each next plugin's process while the current one works and hand it its config after (a plugin
   * acts on nothing before it has read its config). Turn it off for a plugin that acts before reading it (D-13).
   */
  readonly prestartDelegates: boolean;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(DAEMON_CONFIG_SCHEMA);

export function parseDaemonConfig(raw: unknown, where = 'config'): DaemonConfig {
  const conf = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (!validate(conf)) {
    throw new PlexusError('InvalidConfig', `${where}: ${schemaProblems(validate.errors)}`);
  }
  if (typeof conf['globalNamespaces'] === 'string') {
    conf['globalNamespaces'] = conf['globalNamespaces'].split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (conf['clusterNetwork'] === undefined && conf['install'] === undefined) {
    throw new PlexusError('InvalidConfig', `${where}: / must have required property 'clusterNetwork' (or an install section, which finds it)`);
  }
  // A DaemonSet passes the node's name in NODE_NAME (downward API): one config for every node.
  if (conf['nodeName'] === undefined) conf['nodeName'] = process.env['NODE_NAME'] || hostname();
  try {
    conf['source'] = parseSourceOptions(conf['source']);
    conf['ipam'] = parseIpamConfig(conf['ipam']).config;
    if (conf['routed'] !== undefined) conf['routed'] = parseRoutedOptions(conf['routed']);
    if (conf['sriov'] !== undefined) conf['sriov'] = parseSriovOptions(conf['sriov']);
    if (conf['dpdk'] !== undefined) conf['dpdk'] = parseDpdkOptions(conf['dpdk']);
  } catch (e) {
    throw new PlexusError('InvalidConfig', `${where}: ${errorText(e)}`);
  }
  return deepFreeze(conf) as unknown as DaemonConfig;
}

export function loadDaemonConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PlexusError('IoFailure', `cannot read config ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = yaml.load(text, { json: true });
  } catch (e) {
    throw new PlexusError('DecodeFailure', `config ${path} is not valid YAML/JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  return parseDaemonConfig(raw, path);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

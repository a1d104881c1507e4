/**
 * plexus-sriov's two configurations:
 * - the node's: the daemon config's `sriov` section (where sysfs is, where the kubelet's PodResources socket
 *   and checkpoint are, whether the PF is emulated for a machine without SR-IOV hardware);
 * - the network's: the plugin entry, which takes every key sriov-cni takes, with sriov-cni's rules
 *   (`../shared/specs/sriov-and-devices.md` 1.1), so migrating is changing `"type": "sriov"` to
 *   `"plexus-sriov"`. Unlike sriov-cni, a key it does not know is an error naming it: a `spoofChk` (the
 *   SriovNetwork resource's spelling) that sriov-cni silently ignores would leave spoof checking on.
 */
import Ajv from 'ajv';
import { PlexusError } from '../core/errors';
import { schemaProblems, validSection } from '../core/schema-problems';
import { parseCniArgs } from '../cni/request';
import type { VfLinkState, VlanProto } from '../kernel';
import { BUILTIN_PLUGIN_KEYS, ipamSectionOf } from '../delegates/contract';

export const SRIOV_TYPE = 'plexus-sriov';
/** sriov-cni's type, served too when `sriov.serveSriovType` is on. */
export const SRIOV_CNI_TYPE = 'sriov';
export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';
export const DEFAULT_KUBELET_CHECKPOINT = '/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint';

export const SRIOV_OPTIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    /** Where sysfs is mounted: PFs, VFs, drivers and netdevs are discovered under `<sysfsRoot>/bus/pci/devices`. */
    sysfsRoot: { type: 'string', pattern: '^/', default: '/sys' },
    /**
     * Keep the VF settings a PF would hold in `<sysfsRoot>/plexus-emulated-pf.json` instead of sending them to
     * the PF's driver: for a fake sysfs on a machine without SR-IOV hardware (the demo, tests). Refused with
     * the real /sys.
     */
    emulatePf: { type: 'boolean', default: false },
    podResources: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** The kubelet's PodResources API v1 (gRPC over a unix socket). */
        socket: { type: 'string', pattern: '^/', default: DEFAULT_POD_RESOURCES_SOCKET },
        /** Read when the API does not answer: the kubelet's device-manager checkpoint. */
        checkpoint: { type: 'string', pattern: '^/', default: DEFAULT_KUBELET_CHECKPOINT },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 60000, default: 5000 },
        /** A List answer is reused for this long by concurrent ADDs (kubelets rate-limit the API). */
        cacheMs: { type: 'integer', minimum: 0, maximum: 60000, default: 1000 },
      },
    },
    /**
     * Also run NADs of `"type": "sriov"` (what the sriov-network-operator renders, and reconciles back if edited)
     * with plexus-sriov, so an operator-managed cluster migrates without touching its NADs.
     */
    serveSriovType: { type: 'boolean', default: false },
    /** Bounded wait for a VF's admin MAC to read back as set (drivers apply it asynchronously): tries x delay. */
    macRetries: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
    macRetryDelayMs: { type: 'integer', minimum: 1, maximum: 5000, default: 100 },
  },
} as const;

export interface SriovOptions {
  readonly sysfsRoot: string;
  readonly emulatePf: boolean;
  readonly serveSriovType: boolean;
  readonly podResources: { readonly socket: string; readonly checkpoint: string; readonly timeoutMs: number; readonly cacheMs: number };
  readonly macRetries: number;
  readonly macRetryDelayMs: number;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateOptions = ajv.compile(SRIOV_OPTIONS_SCHEMA);

/** The daemon config's `sriov` section, defaulted; InvalidConfig naming the field. */
export function parseSriovOptions(raw: unknown): SriovOptions {
  const opts = validSection<SriovOptions>(validateOptions, raw, 'sriov');
  if (opts.emulatePf && opts.sysfsRoot.replace(/\/+$/, '') === '/sys') {
    throw new PlexusError('InvalidConfig', 'sriov.emulatePf is for a fake sysfs tree: set sriov.sysfsRoot to it (never /sys)');
  }
  return opts;
}

/** A PCI address in sysfs's form, domain included: 0000:af:06.0. */
export const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
/** Colons or dashes, as Go's net.ParseMAC (sriov-cni's parser) takes a 6-byte MAC; stored with colons. */
const MAC = '^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$';
const normalMac = (m: string) => m.toLowerCase().replace(/-/g, ':');
const ON_OFF = { enum: ['on', 'off'] };
const RATE = { type: 'integer', minimum: 0, maximum: 4294967294 };

/** Every key sriov-cni reads, plus the standard ones; `mtu` is Plexus's (sriov-cni overwrites it). */
const PLUGIN_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    ...BUILTIN_PLUGIN_KEYS,
    type: { enum: [SRIOV_TYPE, SRIOV_CNI_TYPE] },
    runtimeConfig: {
      type: 'object',
      properties: { mac: { type: 'string', pattern: MAC }, CNIDeviceInfoFile: { type: 'string', pattern: '^/' } },
    },
    deviceID: { type: 'string' },
    pciBusID: { type: 'string' },
    vlan: { type: 'integer', minimum: 0, maximum: 4094 },
    vlanQoS: { type: 'integer', minimum: 0, maximum: 7 },
    vlanProto: { type: 'string', pattern: '^(802\\.1[qQ]|802\\.1[aA][dD])$' },
    mac: { type: 'string', pattern: MAC },
    spoofchk: ON_OFF,
    trust: ON_OFF,
    link_state: { enum: ['auto', 'enable', 'disable'] },
    min_tx_rate: RATE,
    max_tx_rate: RATE,
    mtu: { type: 'integer', minimum: 68, maximum: 65535 },
    logLevel: { enum: ['panic', 'error', 'warning', 'info', 'debug'] },
    logFile: { type: 'string' },
  },
} as const;
const validatePlugin = ajv.compile(PLUGIN_SCHEMA);

/** Keys people write for sriov-cni's: the SriovNetwork resource's camelCase spellings. */
const MISSPELLINGS: Record<string, string> = {
  spoofChk: 'spoofchk',
  linkState: 'link_state',
  minTxRate: 'min_tx_rate',
  maxTxRate: 'max_tx_rate',
  vlanQos: 'vlanQoS',
  deviceId: 'deviceID',
};

/** A network's VF settings, validated; only what the config names is applied (and restored). */
export interface SriovNetConf {
  readonly network: string;
  /** The VF's PCI address (deviceID, else pciBusID), lower-cased. */
  readonly pci: string;
  readonly vlan?: { readonly id: number; readonly qos: number; readonly proto: VlanProto };
  /** runtimeConfig.mac, else CNI_ARGS MAC, else `mac`; lower-cased. */
  readonly mac?: string;
  readonly spoofchk?: boolean;
  readonly trust?: boolean;
  readonly linkState?: VfLinkState;
  /** Present when either rate is set (the other is 0, as sriov-cni sends it). */
  readonly rate?: { readonly min: number; readonly max: number };
  readonly mtu?: number;
  /** The IPAM section, `type` defaulted to plexus-ipam; absent: the VF gets no address (L2 only). */
  readonly ipam?: Record<string, unknown>;
  readonly deviceInfoFile?: string;
}

const invalid = (network: string, why: string) => new PlexusError('InvalidConfig', `${SRIOV_TYPE} network "${network}": ${why}`);

/** The plugin entry and the CNI_ARGS of a call; InvalidConfig (7) naming the key. */
export function parseSriovNetConf(config: Record<string, unknown>, cniArgs: string): SriovNetConf {
  const network = typeof config['name'] === 'string' ? config['name'] : '?';
  if (!validatePlugin(config)) {
    const problems = schemaProblems(validatePlugin.errors);
    const typo = Object.keys(config).find((k) => MISSPELLINGS[k]);
    throw invalid(network, typo ? `${problems} (sriov-cni's key is "${MISSPELLINGS[typo]}", not "${typo}")` : problems);
  }
  const c = config;
  const pciText = (c['deviceID'] ?? c['pciBusID']) as string | undefined;
  if (pciText === undefined) {
    throw invalid(network, 'deviceID is required (the VF\'s PCI address; the meta-plugin sets it from the device plugin\'s allocation)');
  }
  const pci = pciText.toLowerCase();
  if (!PCI_ADDRESS.test(pci)) throw invalid(network, `deviceID ${JSON.stringify(pciText)} is not a PCI address such as 0000:af:06.0`);
  const vlanId = c['vlan'] as number | undefined;
  const qos = c['vlanQoS'] as number | undefined;
  const protoText = c['vlanProto'] as string | undefined;
  // sriov-cni's rules: QoS and protocol need a VLAN; a non-zero QoS and 802.1ad need a non-zero VLAN.
  if (vlanId === undefined && (qos !== undefined || protoText !== undefined)) {
    throw invalid(network, `${qos !== undefined ? 'vlanQoS' : 'vlanProto'} needs vlan`);
  }
  const proto: VlanProto = protoText?.toLowerCase() === '802.1ad' ? '802.1ad' : '802.1Q';
  if (vlanId === 0 && (qos ?? 0) !== 0) throw invalid(network, 'vlanQoS needs a non-zero vlan');
  if (vlanId === 0 && proto === '802.1ad') throw invalid(network, 'vlanProto 802.1ad needs a non-zero vlan');
  const min = c['min_tx_rate'] as number | undefined;
  const max = c['max_tx_rate'] as number | undefined;
  if (min !== undefined && max !== undefined && max !== 0 && min > max) {
    throw invalid(network, `min_tx_rate ${min} is above max_tx_rate ${max}`);
  }
  const out: { -readonly [K in keyof SriovNetConf]: SriovNetConf[K] } = { network, pci };
  if (vlanId !== undefined) out.vlan = { id: vlanId, qos: qos ?? 0, proto };
  const mac = macOf(config, cniArgs, network);
  if (mac) out.mac = mac;
  if (c['spoofchk'] !== undefined) out.spoofchk = c['spoofchk'] === 'on';
  if (c['trust'] !== undefined) out.trust = c['trust'] === 'on';
  if (c['link_state'] !== undefined) out.linkState = c['link_state'] as VfLinkState;
  if (min !== undefined || max !== undefined) out.rate = { min: min ?? 0, max: max ?? 0 };
  if (c['mtu'] !== undefined) out.mtu = c['mtu'] as number;
  const ipamType = (c['ipam'] as Record<string, unknown> | undefined)?.['type'];
  if (ipamType !== undefined && typeof ipamType !== 'string') throw invalid(network, 'ipam.type must be a string');
  const ipam = ipamSectionOf(c);
  if (ipam) out.ipam = ipam;
  const rc = c['runtimeConfig'] as Record<string, unknown> | undefined;
  if (typeof rc?.['CNIDeviceInfoFile'] === 'string') out.deviceInfoFile = rc['CNIDeviceInfoFile'];
  return out;
}

/** sriov-cni's order: runtimeConfig.mac wins over CNI_ARGS MAC, which wins over the config's `mac`. */
function macOf(config: Record<string, unknown>, cniArgs: string, network: string): string | undefined {
  const rc = config['runtimeConfig'] as Record<string, unknown> | undefined;
  if (typeof rc?.['mac'] === 'string') return normalMac(rc['mac']);
  const fromArgs = parseCniArgs(cniArgs)['MAC'];
  if (fromArgs !== undefined) {
    if (!new RegExp(MAC).test(fromArgs)) throw invalid(network, `CNI_ARGS MAC=${JSON.stringify(fromArgs)} is not a MAC address`);
    return normalMac(fromArgs);
  }
  return typeof config['mac'] === 'string' ? normalMac(config['mac']) : undefined;
}

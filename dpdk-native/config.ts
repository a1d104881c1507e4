/**
 * The engine's configuration, the daemon config's `dpdk` section (one JSON Schema holds names and defaults,
 * STYLE 6): where plexus-dataplane listens, where pod sockets live, and what EAL gets (lcores, memory,
 * hugepages or not). plexus-dataplane reads the same section from the file it is started with.
 */
import Ajv from 'ajv';
import { PlexusError } from '../core/errors';
import { validSection } from '../core/schema-problems';

export const DPDK_OPTIONS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    /** plexus-dataplane's control socket (root only). */
    socketPath: { type: 'string', pattern: '^/', default: '/run/plexus/dataplane.sock' },
    /** Pod sockets are created in per-pod directories here: short, for the 108-byte sun_path limit. */
    socketDir: { type: 'string', pattern: '^/[^,]{0,40}$', default: '/run/plexus/dpdk' },
    /** EAL --lcores: lcore 0 is the Node thread (never pinned to one CPU), lcore 1 the poll loop. */
    lcores: { type: 'string', pattern: '^[0-9@(),-]{1,64}$', default: '0@(0-1),1@1' },
    /** EAL memory (-m), MiB. */
    memoryMb: { type: 'integer', minimum: 64, maximum: 65536, default: 256 },
    /** Use hugepages (--in-memory); else --no-huge (memfd-backed, works everywhere, slower). */
    hugepages: { type: 'boolean', default: false },
    /** Packet buffers in the engine's pool (2^n - 1 is the efficient size). */
    mbufs: { type: 'integer', minimum: 1023, maximum: 1048575, default: 16383 },
    /** Longest sleep of an idle poll loop (µs): the worst added latency of the first packet after a pause. */
    maxSleepUs: { type: 'integer', minimum: 1, maximum: 100000, default: 200 },
    /** EAL --file-prefix: two engines on one machine (tests, local clusters) need different ones. */
    filePrefix: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,32}$', default: 'plexus-dataplane' },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' },
    /**
     * Per L2 network (the name plexus-dpdk attachments give, the NAD's `network` or its name), a host interface
     * that joins the network to the same network on other nodes: a NIC port, a VF in kernel mode, or a veth.
     * The engine owns these ports (created at start, retried until the interface exists, never removed by
     * the daemon). The interface must be up; the engine sets it promiscuous.
     */
    uplinks: {
      type: 'object',
      default: {},
      propertyNames: { pattern: '^[A-Za-z0-9_./-]{1,63}$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['iface'],
        properties: {
          iface: { type: 'string', pattern: '^[^/\\s:,=]{1,15}$' },
          /** af_packet works on any interface; af_xdp is faster where the driver supports XDP. */
          driver: { enum: ['af_packet', 'af_xdp'], default: 'af_packet' },
        },
      },
    },
  },
} as const;

export interface Uplink {
  readonly iface: string;
  readonly driver: 'af_packet' | 'af_xdp';
}

export interface DpdkOptions {
  readonly socketPath: string;
  readonly socketDir: string;
  readonly lcores: string;
  readonly memoryMb: number;
  readonly hugepages: boolean;
  readonly mbufs: number;
  readonly maxSleepUs: number;
  readonly filePrefix: string;
  readonly logLevel: string;
  readonly uplinks: Readonly<Record<string, Uplink>>;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(DPDK_OPTIONS_SCHEMA);

export function parseDpdkOptions(raw: unknown): DpdkOptions {
  const options = validSection<DpdkOptions>(validate, raw, 'dpdk');
  const owner = new Map<string, string>();
  for (const [network, u] of Object.entries(options.uplinks)) {
    const other = owner.get(u.iface);
    if (other !== undefined) throw new PlexusError('InvalidConfig', `dpdk.uplinks: ${u.iface} is the uplink of both "${other}" and "${network}" (one interface carries one network)`);
    owner.set(u.iface, network);
  }
  return options;
}

/** The engine's port of an uplink: named after the interface, which no pod port name can be. */
export const uplinkPortName = (iface: string): string => `uplink-${iface}`;

/** The EAL arguments of these options (no PCI: every port is a vdev). */
export function ealArgs(o: DpdkOptions): string[] {
  const memory = o.hugepages ? ['--in-memory', '-m', String(o.memoryMb)] : ['--no-huge', '-m', String(o.memoryMb)];
  return [...memory, '--no-pci', '--lcores', o.lcores, '--file-prefix', o.filePrefix, '--log-level', 'lib.eal:error', '--log-level', 'pmd:warning', '--log-level', 'lib.vhost.config:error'];
}

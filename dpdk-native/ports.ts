/**
 * A port of the engine as the control API describes it, and the one place that turns it into DPDK devargs.
 * Nothing from a request reaches devargs unchecked: names and networks are short and plain, paths absolute
 * and free of the characters devargs parsing splits on, and the vdev name is derived, never given.
 *
 * Roles are the engine's own: a vhost-user `server` engine creates the socket and the pod connects
 * (`virtio_user,path=`); a `client` engine connects to the socket the pod created (`virtio_user,server=1`)
 * and reconnects on its own when either side restarts. memif likewise (the engine's `server` creates the
 * socket).
 */
import { createHash } from 'node:crypto';
import Ajv from 'ajv';
import { PlexusError } from '../core/errors';
import { schemaProblems } from '../core/schema-problems';

export type PortKind = 'vhost-user' | 'memif' | 'af_packet' | 'af_xdp';

export interface PortSpec {
  /** Unique in the engine: the attachment's identity (e.g. "<containerId[:12]>-<ifName>"). */
  name: string;
  /** The L2 network the port joins: ports of one network reach each other, and only them. */
  network: string;
  kind: PortKind;
  /** vhost-user, memif: the socket file. */
  socket?: string;
  /** vhost-user, memif: the engine's side of the socket. */
  role?: 'server' | 'client';
  /** af_packet, af_xdp: the host interface (an uplink to other nodes). */
  iface?: string;
  /** vhost-user, memif: queue pairs (default 1); the pod's side must use as many. */
  queues?: number;
}

const PATH = { type: 'string', pattern: '^/[^,=\\s]{1,100}$' };
const PORT_SPEC_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'network', 'kind'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,48}$' },
    network: { type: 'string', pattern: '^[A-Za-z0-9_./-]{1,63}$' },
    kind: { enum: ['vhost-user', 'memif', 'af_packet', 'af_xdp'] },
    socket: PATH,
    role: { enum: ['server', 'client'] },
    iface: { type: 'string', pattern: '^[^/\\s:,=]{1,15}$' },
    queues: { type: 'integer', minimum: 1, maximum: 16 },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: false }).compile(PORT_SPEC_SCHEMA);

export function parsePortSpec(raw: unknown): PortSpec {
  if (!validate(raw)) throw new PlexusError('InvalidConfig', `port: ${schemaProblems(validate.errors)}`);
  const spec = raw as unknown as PortSpec;
  const needs = (key: 'socket' | 'role' | 'iface') => {
    if (spec[key] === undefined) throw new PlexusError('InvalidConfig', `port ${spec.name}: a ${spec.kind} port needs ${key}`);
  };
  if (spec.kind === 'vhost-user' || spec.kind === 'memif') {
    needs('socket');
    needs('role');
  } else {
    needs('iface');
    if ((spec.queues ?? 1) !== 1) throw new PlexusError('InvalidConfig', `port ${spec.name}: an uplink (${spec.kind}) has one queue pair`);
  }
  return spec;
}

/** The vdev name: the PMD's prefix and a hash of the port name (unique while the port exists). */
export function vdevName(spec: PortSpec): string {
  const prefix = { 'vhost-user': 'net_vhost', memif: 'net_memif', af_packet: 'net_af_packet', af_xdp: 'net_af_xdp' }[spec.kind];
  return `${prefix}_${createHash('sha256').update(spec.name).digest('hex').slice(0, 12)}`;
}

export function devargs(spec: PortSpec): string {
  const dev = vdevName(spec);
  switch (spec.kind) {
    case 'vhost-user':
      return `${dev},iface=${spec.socket},client=${spec.role === 'client' ? 1 : 0},queues=${queuesOf(spec)}`;
    case 'memif':
      return `${dev},role=${spec.role},socket=${spec.socket},socket-abstract=no,id=0`;
    case 'af_packet':
      return `${dev},iface=${spec.iface},qpairs=1`;
    case 'af_xdp':
      return `${dev},iface=${spec.iface},start_queue=0,queue_count=1`;
  }
}

export const queuesOf = (spec: PortSpec): number => spec.queues ?? 1;

export const sameSpec = (a: PortSpec, b: PortSpec): boolean =>
  a.name === b.name && a.network === b.network && a.kind === b.kind && a.socket === b.socket && a.role === b.role && a.iface === b.iface && queuesOf(a) === queuesOf(b);

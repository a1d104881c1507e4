/**
 * MultiNetworkPolicy for the engine's ports, as plexusd sends it (`PUT /v1/policy`) and as the addon takes it
 * (addon/policy.h's blob). plexusd compiles the policies (policy/compile.ts) over the pods of the node's DPDK
 * attachments; what it sends is the compiled form itself, with endpoint numbers of its own, so the engine
 * decides exactly as the eBPF datapath does and knows nothing of selectors or labels.
 *
 * Engine networks are named here (plexus-dpdk's `network`); the engine turns names into its own ids.
 */
import Ajv from 'ajv';
import { PlexusError } from '../core/errors';
import { schemaProblems } from '../core/schema-problems';
import { addr16, cidr16 } from '../core/address';

export interface EnginePolicy {
  /** What the sender compiled it from (a fingerprint); `GET /v1/policy` returns it, so a sender can tell the engine is up to date. */
  revision: string;
  /** The engine networks whose packets are judged. */
  networks: string[];
  /**
   * Endpoints (a pod on a network) of this engine: id (epdir = id * 2 + direction), the directions they are
   * isolated in, their addresses, and their ports (the engine's port names: a packet from one is the
   * endpoint's, judged by its egress, and must not claim another pod's address).
   */
  endpoints: Array<{ network: string; id: number; ips: string[]; ports: string[]; isolated: Array<'ingress' | 'egress'> }>;
  /** The ports of the other pods on the judged networks (their NAD no policy names): only their sources are checked. */
  otherPorts: string[];
  /** Every pod address the policies may name: [network, ip, identity]. */
  ipcache: Array<[string, string, number]>;
  /** ipBlock classes: [epdir, cidr, class]. */
  cidrs: Array<[number, string, number]>;
  /** Rules: [epdir, peer (identity or class), protocol (0: any), port (0: any), prefix length of the 56-bit key]. */
  rules: Array<[number, number, number, number, number]>;
}

const U32 = { type: 'integer', minimum: 0, maximum: 0xffff_ffff } as const;
const NETWORK = { type: 'string', pattern: '^[A-Za-z0-9_./-]{1,63}$' } as const;
const IP = { type: 'string', maxLength: 45 } as const;
const PORT = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,48}$' } as const;
const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['revision', 'networks', 'endpoints', 'otherPorts', 'ipcache', 'cidrs', 'rules'],
  properties: {
    revision: { type: 'string', maxLength: 128 },
    networks: { type: 'array', items: NETWORK, maxItems: 255 },
    endpoints: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['network', 'id', 'ips', 'ports', 'isolated'],
        properties: {
          network: NETWORK, id: { type: 'integer', minimum: 0, maximum: 65534 }, ips: { type: 'array', items: IP },
          ports: { type: 'array', items: PORT }, isolated: { type: 'array', items: { enum: ['ingress', 'egress'] }, uniqueItems: true },
        },
      },
    },
    otherPorts: { type: 'array', items: PORT },
    ipcache: { type: 'array', items: { type: 'array', items: [NETWORK, IP, U32], minItems: 3, additionalItems: false } },
    cidrs: { type: 'array', items: { type: 'array', items: [U32, { type: 'string', maxLength: 49 }, U32], minItems: 3, additionalItems: false } },
    rules: {
      type: 'array',
      items: {
        type: 'array', minItems: 5, additionalItems: false,
        items: [U32, U32, { type: 'integer', minimum: 0, maximum: 255 }, { type: 'integer', minimum: 0, maximum: 65535 }, { type: 'integer', minimum: 0, maximum: 56 }],
      },
    },
  },
} as const;
const validate = new Ajv({ allErrors: true, strict: false }).compile(SCHEMA);

/** The policy a request carries, checked (bad input: InvalidConfig naming the field; nothing changes). */
export function parseEnginePolicy(raw: unknown): EnginePolicy {
  if (!validate(raw)) throw new PlexusError('InvalidConfig', `policy: ${schemaProblems(validate.errors)}`);
  const p = raw as unknown as EnginePolicy;
  for (const [i, e] of p.endpoints.entries()) for (const ip of e.ips) addr16(ip, `policy: endpoints[${i}].ips`);
  for (const [i, [, ip]] of p.ipcache.entries()) addr16(ip, `policy: ipcache[${i}]`);
  for (const [i, [, cidr]] of p.cidrs.entries()) cidr16(cidr, `policy: cidrs[${i}]`);
  return p;
}

/** An engine network's policy verdicts (`GET /v1/policy` counters; the addon's px_policy_counters): running totals. */
export interface EnginePolicyCounters {
  /** New connections allowed. */
  forwarded: number;
  droppedEgress: number;
  droppedIngress: number;
  /** Packets from a pod's port with another pod's address as their source. */
  droppedSpoofed: number;
  /** Tracked connections a policy change denied. */
  cut: number;
  eventsLost: number;
}

/** The addon's blob (addon/policy.h): record sizes there and here are kept equal by dpdk-native/policy-wire.test.ts. */
export const BLOB = { magic: 0x4c505850, version: 2, header: 32, network: 4, port: 72, portName: 64, local: 28, ident: 24, cidr: 26, rule: 13, noEndpoint: 65535 } as const;
export const ISOLATED = { ingress: 1, egress: 2 } as const;

const flags = (e: EnginePolicy['endpoints'][number]): number => e.isolated.reduce((f, d) => f | ISOLATED[d], 0);

export function policyBlob(p: EnginePolicy, networkId: (name: string) => number): Buffer {
  const locals = p.endpoints.flatMap((e) => e.ips.map((ip) => ({ e, ip })));
  const ports = [
    ...p.endpoints.flatMap((e) => e.ports.map((name) => ({ id: e.id, flags: flags(e), name }))),
    ...p.otherPorts.map((name) => ({ id: BLOB.noEndpoint, flags: 0, name })),
  ];
  const size = BLOB.header + p.networks.length * BLOB.network + ports.length * BLOB.port + locals.length * BLOB.local + p.ipcache.length * BLOB.ident + p.cidrs.length * BLOB.cidr + p.rules.length * BLOB.rule;
  const b = Buffer.alloc(size);
  let o = 0;
  const u32 = (v: number) => (o = b.writeUInt32LE(v >>> 0, o));
  const u8 = (v: number) => (o = b.writeUInt8(v, o));
  const addr = (bytes: Buffer) => (o += bytes.copy(b, o));
  for (const v of [BLOB.magic, BLOB.version, p.networks.length, ports.length, locals.length, p.ipcache.length, p.cidrs.length, p.rules.length]) u32(v);
  for (const n of p.networks) u32(networkId(n));
  for (const { id, flags, name } of ports) {
    u32(id);
    u32(flags);
    b.write(name, o, 'latin1'); // the schema keeps names to 48 plain characters: NUL-padded to 64
    o += BLOB.portName;
  }
  for (const { e, ip } of locals) {
    u32(networkId(e.network));
    addr(addr16(ip, 'policy'));
    u32(e.id);
    u32(flags(e));
  }
  for (const [network, ip, identity] of p.ipcache) {
    u32(networkId(network));
    addr(addr16(ip, 'policy'));
    u32(identity);
  }
  for (const [epdir, text, cls] of p.cidrs) {
    const c = cidr16(text, 'policy');
    u32(epdir);
    u8(c.v6 ? 1 : 0);
    u8(c.prefix);
    addr(c.bytes);
    u32(cls);
  }
  for (const [epdir, peer, proto, port, len] of p.rules) {
    u32(epdir);
    u8(len);
    o = b.writeBigUInt64LE((BigInt(peer) << 24n) | (BigInt(proto) << 16n) | BigInt(port), o);
  }
  return b;
}

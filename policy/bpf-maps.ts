/**
 * The TypeScript side of policy/bpf/policy.h: map codecs and names, and the writer that puts a compiled policy
 * (policy/compile.ts) into the maps of policy.c. Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d; LPM keys are
 * the kernel trie's (prefix length, then big-endian bytes).
 */
import { addr16, addrText, be128, formatIp, parseIp } from '../core/address';
import { type BpfMap, type BpfObject, bpfCodec } from '../kernel';
import { type Attachment, type Compiled, type EndpointMaps, WORLD, endpointKey } from './compile';

/** The two hooks of policy.c: out of an endpoint and into it. */
export const PROGRAMS = { fromEndpoint: 'policy_from_endpoint', toEndpoint: 'policy_to_endpoint' } as const;
export const MAPS = {
  ipcache: 'pol_ipcache', local: 'pol_local', cidr: 'pol_cidr', rules: 'pol_rules', ct: 'pol_ct', state: 'pol_state',
  events: 'pol_events', droplog: 'pol_droplog', counters: 'pol_counters', frags: 'pol_frags', ports: 'pol_ports',
} as const;
/** The object file `make build` compiles from bpf/policy.c, next to the bundled daemon. */
export const OBJECT_FILE = 'bpf/policy.o';
/** The section of policy.c's network constant (`policy_network`, a __u32), set per loaded copy. */
export const NETWORK_SECTION = '.rodata.network';
export const FLAGS = { ISOLATED_INGRESS: 1, ISOLATED_EGRESS: 2, NODE: 4, SLOT_FLIP: 8 } as const;
export const DIRECTION = { ingress: 0, egress: 1 } as const;
/** Flow events: verdicts, drop reasons and flags of struct flow_event (never renumbered). */
export const VERDICT = { FORWARDED: 1, DROPPED: 2 } as const;
export const REASON = { NONE: 0, EGRESS: 1, INGRESS: 2, SPOOFED: 3 } as const;
export const FLOW = { V6: 1, TO_ENDPOINT: 2, CUT: 4 } as const;
/** pol_counters: what each counter counts. */
export const COUNTER = { FORWARDED: 0, DROPPED_EGRESS: 1, DROPPED_INGRESS: 2, CUT: 3, EVENTS_LOST: 4, DROPPED_SPOOFED: 5 } as const;

const { structCodec, u8, u32, u64, be16, be32, bytes } = bpfCodec;

/** __u32[2]: a value per generation. */
const pair32: bpfCodec.Codec<[number, number]> = {
  cName: '__u32[2]',
  size: 8,
  encode: (v) => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v[0] >>> 0, 0);
    b.writeUInt32LE(v[1] >>> 0, 4);
    return b;
  },
  decode: (b, o = 0) => [b.readUInt32LE(o), b.readUInt32LE(o + 4)],
};

export const AddrKeyStruct = structCodec('struct addr_key', 20, { network: [u32, 0], addr: [bytes(16), 4] });
export const LocalEndpointStruct = structCodec('struct local_endpoint', 12, { id: [u32, 0], flags: [pair32, 4] });
export const IdentityPairStruct = structCodec('struct identity_pair', 8, { id: [pair32, 0] });
export const CidrKeyStruct = structCodec('struct cidr_key', 25, { prefixlen: [u32, 0], epdir: [be32, 4], family: [u8, 8], addr: [bytes(16), 9] });
export const RuleKeyStruct = structCodec('struct rule_key', 15, { prefixlen: [u32, 0], epdir: [be32, 4], peer: [be32, 8], proto: [u8, 12], port: [be16, 13] });
export const CtKeyStruct = structCodec('struct ct_key', 44, { network: [u32, 0], src: [bytes(16), 4], dst: [bytes(16), 20], sport: [be16, 36], dport: [be16, 38], proto: [u8, 40] });
export const CtEntryStruct = structCodec('struct ct_entry', 16, { seen: [u64, 0], revision: [u32, 8], replied: [u8, 12], fin_initiator: [u8, 13], fin_responder: [u8, 14], cut: [u8, 15] });
export const StateStruct = structCodec('struct policy_state', 8, { revision: [u32, 0] });
export const FlowEventStruct = structCodec('struct flow_event', 64, {
  time: [u64, 0], src: [bytes(16), 8], dst: [bytes(16), 24], ifindex: [u32, 40], network: [u32, 44], sport: [be16, 48], dport: [be16, 50],
  proto: [u8, 52], verdict: [u8, 53], reason: [u8, 54], flags: [u8, 55], len: [u32, 56],
});
export const CounterKeyStruct = structCodec('struct counter_key', 8, { network: [u32, 0], counter: [u32, 4] });
export const PortKeyStruct = structCodec('struct port_key', 16, { netns: [u64, 0], ifindex: [u32, 8], pad: [u32, 12] });
export const STRUCTS = [AddrKeyStruct, LocalEndpointStruct, IdentityPairStruct, CidrKeyStruct, RuleKeyStruct, CtKeyStruct, CtEntryStruct, StateStruct, FlowEventStruct, CounterKeyStruct, PortKeyStruct];
export type FlowEventRecord = bpfCodec.StructValue<typeof FlowEventStruct.fields>;

const FLOW_AT = Object.fromEntries(Object.entries(FlowEventStruct.fields).map(([k, [, at]]) => [k, at])) as Record<keyof FlowEventRecord, number>;

/**
 * FlowEventStruct.decode for the daemon's hot path (one call per connection a node opens): one copy of the
 * record, the addresses as views of it, and an object of one fixed shape, about five times faster than the
 * generic struct codec. Equal to it field by field (bpf-policy.test.ts).
 */
export function decodeFlowEvent(record: Buffer): FlowEventRecord {
  if (record.length < FlowEventStruct.size) return FlowEventStruct.decode(record); // throws the codec's error
  const b = Buffer.from(record.subarray(0, FlowEventStruct.size));
  return {
    time: b.readBigUInt64LE(FLOW_AT.time),
    src: b.subarray(FLOW_AT.src, FLOW_AT.src + 16),
    dst: b.subarray(FLOW_AT.dst, FLOW_AT.dst + 16),
    ifindex: b.readUInt32LE(FLOW_AT.ifindex),
    network: b.readUInt32LE(FLOW_AT.network),
    sport: b.readUInt16BE(FLOW_AT.sport),
    dport: b.readUInt16BE(FLOW_AT.dport),
    proto: b[FLOW_AT.proto]!,
    verdict: b[FLOW_AT.verdict]!,
    reason: b[FLOW_AT.reason]!,
    flags: b[FLOW_AT.flags]!,
    len: b.readUInt32LE(FLOW_AT.len),
  };
}

/** Addresses as policy.c keys them (16 bytes, IPv4 as ::ffff:a.b.c.d): core/address's form. */
export { addr16, addrText };

export interface PolicyMaps {
  ipcache: BpfMap<bpfCodec.StructValue<typeof AddrKeyStruct.fields>, bpfCodec.StructValue<typeof IdentityPairStruct.fields>>;
  local: BpfMap<bpfCodec.StructValue<typeof AddrKeyStruct.fields>, bpfCodec.StructValue<typeof LocalEndpointStruct.fields>>;
  cidr: BpfMap<bpfCodec.StructValue<typeof CidrKeyStruct.fields>, number>;
  rules: BpfMap<bpfCodec.StructValue<typeof RuleKeyStruct.fields>, number>;
  ct: BpfMap<bpfCodec.StructValue<typeof CtKeyStruct.fields>, bpfCodec.StructValue<typeof CtEntryStruct.fields>>;
  state: BpfMap<number, bpfCodec.StructValue<typeof StateStruct.fields>>;
  events: BpfMap;
  counters: BpfMap<bpfCodec.StructValue<typeof CounterKeyStruct.fields>, bigint>;
  ports: BpfMap<bpfCodec.StructValue<typeof PortKeyStruct.fields>, bpfCodec.StructValue<typeof LocalEndpointStruct.fields>>;
}

export function policyMaps(obj: BpfObject): PolicyMaps {
  return {
    ipcache: obj.map(MAPS.ipcache, AddrKeyStruct, IdentityPairStruct),
    local: obj.map(MAPS.local, AddrKeyStruct, LocalEndpointStruct),
    cidr: obj.map(MAPS.cidr, CidrKeyStruct, u32),
    rules: obj.map(MAPS.rules, RuleKeyStruct, u32),
    ct: obj.map(MAPS.ct, CtKeyStruct, CtEntryStruct),
    state: obj.map(MAPS.state, u32, StateStruct),
    events: obj.map(MAPS.events),
    counters: obj.map(MAPS.counters, CounterKeyStruct, u64),
    ports: obj.map(MAPS.ports, PortKeyStruct, LocalEndpointStruct),
  };
}

/** A pod's own interface on a secondary network, and the endpoint behind it (pol_ports; policy.h's port_key). */
export interface PortBinding {
  /** Its netns's cookie (kernel netnsCookie). */
  readonly netns: bigint;
  readonly ifindex: number;
  /** compile.ts's endpointKey of its pod on its network. */
  readonly endpoint: string;
}

const portKey = (p: { netns: bigint; ifindex: number }): string => `${p.netns}#${p.ifindex}`;

export interface WriterOptions {
  /** Network ids: the cluster network is 0. */
  readonly networkId: (network: string | undefined) => number;
}

type CidrEntry = bpfCodec.StructValue<typeof CidrKeyStruct.fields>;
type RuleEntry = bpfCodec.StructValue<typeof RuleKeyStruct.fields>;
type Gen = 0 | 1;

/** What one endpoint holds in one slot: its address-trie and rule-trie entries, both directions. */
interface SlotContent {
  readonly cidr: ReadonlyArray<{ key: CidrEntry; cls: number }>;
  readonly rules: readonly RuleEntry[];
  /** The entries without their slot bit, sorted: equal signatures are equal contents. */
  readonly signature: string;
}

interface EndpointState {
  readonly id: number;
  /** Per generation, as written (isolation and POLICY_SLOT_FLIP). */
  flags: [number, number];
  /** Per slot (the last bit of the entries' epdir). */
  content: [SlotContent | undefined, SlotContent | undefined];
  keys: string[]; // network|address of its pol_local entries
}

interface AddressState {
  readonly network: number;
  readonly addr: Buffer;
  ids: [number, number];
}

/** POLICY_SLOT of policy.h: the slot a generation's flags point its endpoint's entries at. */
const slotOf = (flags: number, gen: Gen): Gen => (gen ^ (flags & FLAGS.SLOT_FLIP ? 1 : 0)) as Gen;
const withSlot = (flags: number, gen: Gen, slot: Gen): number => (flags & ~FLAGS.SLOT_FLIP) | (slot === gen ? 0 : FLAGS.SLOT_FLIP);
const localValue = (v: { id: number; flags: [number, number] }): string => `${v.id}/${v.flags[0]}/${v.flags[1]}`;
const parseLocalValue = (v: string): { id: number; flags: [number, number] } => {
  const [id, f0, f1] = v.split('/').map(Number) as [number, number, number];
  return { id, flags: [f0, f1] };
};
const ISOLATED = FLAGS.ISOLATED_INGRESS | FLAGS.ISOLATED_EGRESS;
/** What a generation's flags decide: isolation, node, and the slot they point an isolated endpoint at. */
const meaning = (flags: number, gen: Gen): number => (flags & ~FLAGS.SLOT_FLIP) | (flags & ISOLATED ? slotOf(flags, gen) << 8 : 0);

/**
 * Writes compiled policies into the maps of policy.c, and later ones over them, so that every packet is
 * decided wholly by the old policy or wholly by the new one. Everything that says what the policy is exists per
 * generation (endpoint flags and identities as pairs; rules and address classes in one of two slots that each
 * generation's flags point at), and the low bit of the revision in pol_state says which generation is live:
 *   1. the other generation is filled: identities, node addresses, every endpoint's flags; an endpoint whose
 *      classes and rules change gets them in the slot the live generation does not use, one that keeps them
 *      keeps its slot, and nothing of it is written;
 *   2. the revision is bumped: one 32-bit write flips every endpoint at once and makes every tracked
 *      connection be judged again (skipped when nothing changed);
 *   3. the slots no longer used are emptied, and addresses gone are forgotten.
 * So a change costs map writes for what it changes, not for every endpoint on the node. A per-endpoint switch
 * was tried first; the test below it found the window it leaves: a connection between two endpoints decided by
 * one's new policy and the other's old one. Identity numbers are stable across compiles (IdentityAllocator).
 * `onStep` (tests) runs after every map write.
 */
export class PolicyWriter {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly addresses = new Map<string, AddressState>();
  /** pol_local as written: network|address -> localValue(); a write of the same value is skipped. */
  private readonly localWritten = new Map<string, string>();
  /** pol_ports as written: port key -> its netns, ifindex and localValue(). */
  private ports = new Map<string, { netns: bigint; ifindex: number; value: string }>();
  private nodes = new Set<string>();
  private nextId = 1;

  constructor(
    private readonly maps: PolicyMaps,
    private readonly opts: WriterOptions,
  ) {}

  /**
   * Takes over maps a previous writer filled (pinned maps after a daemon restart), so the next apply() knows
   * what to replace and remove; until then the maps keep enforcing what they hold. `local` names the endpoints
   * (their addresses find their ids); an id no local attachment has is an endpoint gone meanwhile, removed by
   * the next apply. Entries in a slot the live generation does not use are the leftovers of an update cut
   * short: they are removed now (no packet reads them).
   */
  adopt(local: readonly Attachment[]): { endpoints: number; addresses: number; leftovers: number } {
    const m = this.maps;
    const live = ((m.state.lookup(0)?.revision ?? 0) & 1) as Gen;
    const keyOf = new Map<string, string>(); // network|ip -> endpoint key
    for (const a of local) for (const ip of a.ips) keyOf.set(addrKey(this.opts.networkId(a.network), ip), endpointKey(a.network, a.pod));
    const byId = new Map<number, EndpointState>();
    const named = new Map<number, string>(); // id -> endpoint key, from any of its addresses
    let leftovers = 0;
    /*
     * An endpoint's entries may disagree on their live half (an address added before a flip that never came
     * has 0 there): its live flags, which say which slot is live, are those of an entry whose live half
     * isolates, if any.
     */
    const endpoint = (id: number, flags: [number, number]): EndpointState => {
      let st = byId.get(id);
      if (!st) byId.set(id, (st = { id, flags, content: [undefined, undefined], keys: [] }));
      else if (!(st.flags[live] & ISOLATED) && flags[live] & ISOLATED) st.flags = flags;
      this.nextId = Math.max(this.nextId, id + 1);
      return st;
    };
    for (const [k, v] of m.local.entries()) {
      const key = addrKey(k.network, addrText(k.addr));
      if (v.id === 0) {
        // A node address only the next generation had (an update cut short before its flip) is no node's.
        if (!(v.flags[live] & FLAGS.NODE)) {
          m.local.delete(k);
          leftovers++;
          continue;
        }
        this.nodes.add(addrText(k.addr));
        this.localWritten.set(key, localValue(v));
        continue;
      }
      this.localWritten.set(key, localValue(v));
      endpoint(v.id, v.flags).keys.push(key);
      const ep = keyOf.get(key);
      if (ep && !named.has(v.id)) named.set(v.id, ep);
    }
    // Ports name their endpoint too: one with no address (an interface without IPAM) is known only there.
    for (const [k, v] of m.ports.entries()) {
      this.ports.set(portKey(k), { netns: k.netns, ifindex: k.ifindex, value: localValue(v) });
      if (v.id !== 0) endpoint(v.id, v.flags);
    }
    for (const [id, st] of byId) this.endpoints.set(named.get(id) ?? `#${id}`, st);
    const contents = new Map<number, { cidr: Array<{ key: CidrEntry; cls: number }>; rules: RuleEntry[] }>();
    const inLiveSlot = (epdir: number): boolean => {
      const st = byId.get(epdir >>> 2);
      return st !== undefined && (epdir & 1) === slotOf(st.flags[live], live);
    };
    const contentOf = (id: number) => {
      let c = contents.get(id);
      if (!c) contents.set(id, (c = { cidr: [], rules: [] }));
      return c;
    };
    for (const [k, cls] of m.cidr.entries()) {
      if (!inLiveSlot(k.epdir)) {
        m.cidr.delete(k);
        leftovers++;
      } else contentOf(k.epdir >>> 2).cidr.push({ key: k, cls });
    }
    for (const k of m.rules.keys()) {
      if (!inLiveSlot(k.epdir)) {
        m.rules.delete(k);
        leftovers++;
      } else contentOf(k.epdir >>> 2).rules.push(k);
    }
    for (const [id, c] of contents) {
      const st = byId.get(id)!;
      st.content[slotOf(st.flags[live], live)] = { ...c, signature: signatureOf(c.cidr, c.rules) };
    }
    for (const [k, v] of m.ipcache.entries()) {
      const ip = addrText(k.addr);
      this.addresses.set(addrKey(k.network, ip), { network: k.network, addr: k.addr, ids: v.id });
    }
    return { endpoints: byId.size, addresses: this.addresses.size, leftovers };
  }

  /** `ports`: the pods' own interfaces on secondary networks, each judged as its endpoint's (pol_ports). */
  apply(compiled: Compiled, local: readonly Attachment[], nodeAddresses: readonly string[], onStep: () => void = () => undefined, ports: readonly PortBinding[] = []): void {
    const m = this.maps;
    const revision = m.state.lookup(0)?.revision ?? 0;
    const live = (revision & 1) as Gen;
    const next = (live ^ 1) as Gen;
    const pair = (liveValue: number, nextValue: number): [number, number] => (live === 0 ? [liveValue, nextValue] : [nextValue, liveValue]);
    // Whether the next generation decides anything differently from the live one (else no flip is needed), and
    // whether anything is to be removed after it.
    let changed = false;
    let gone = false;
    const differs = (flags: [number, number]) => meaning(flags[live], live) !== meaning(flags[next], next);
    /** Whether writing `value` over `prev` changes what the live generation decides right away (the id is not per generation). */
    const altersLive = (prev: { id: number; flags: [number, number] } | undefined, value: { id: number; flags: [number, number] }) =>
      !prev || prev.id !== value.id || prev.flags[live] !== value.flags[live];
    const putLocal = (k: string, value: { id: number; flags: [number, number] }) => {
      const v = localValue(value);
      const prev = this.localWritten.get(k);
      if (differs(value.flags) || (prev !== v && altersLive(prev === undefined ? undefined : parseLocalValue(prev), value))) changed = true;
      if (prev === v) return;
      const [net, ip] = splitKey(k);
      this.localWritten.delete(k); // unknown until the write is done
      m.local.update({ network: net, addr: addr16(ip) }, value);
      this.localWritten.set(k, v);
      onStep();
    };

    // 1. The next generation: identities ...
    const wanted = new Map<string, number>();
    for (const [network, cache] of compiled.ipcache) {
      const net = this.opts.networkId(network || undefined);
      for (const [ip, id] of cache) wanted.set(addrKey(net, ip), id);
    }
    for (const k of new Set([...wanted.keys(), ...this.addresses.keys()])) {
      const id = wanted.get(k) ?? WORLD;
      let st = this.addresses.get(k);
      const fresh = !st;
      if (!st) {
        const [net, ip] = splitKey(k);
        this.addresses.set(k, (st = { network: net, addr: addr16(ip), ids: pair(WORLD, WORLD) }));
      }
      if (id !== st.ids[live]) changed = true;
      if (!wanted.has(k)) gone = true;
      if (!fresh && st.ids[next] === id) continue;
      const ids = pair(st.ids[live], id);
      m.ipcache.update({ network: st.network, addr: st.addr }, { id: ids });
      st.ids = ids; // booked once written: a failed write is tried again
      onStep();
    }
    // ... node addresses ...
    const nodes = new Set(nodeAddresses.map(canonical));
    for (const ip of new Set([...nodes, ...this.nodes])) {
      putLocal(addrKey(0, ip), { id: 0, flags: pair(this.nodes.has(ip) ? FLAGS.NODE : 0, nodes.has(ip) ? FLAGS.NODE : 0) });
    }
    // ... and every endpoint's flags, classes and rules.
    const current = new Map<string, { ep: EndpointMaps; keys: string[] }>();
    for (const a of local) {
      const ep = compiled.endpoints.get(endpointKey(a.network, a.pod));
      if (ep) current.set(endpointKey(a.network, a.pod), { ep, keys: a.ips.map((ip) => addrKey(this.opts.networkId(a.network), ip)) });
    }
    // An address another endpoint now has is that endpoint's to write, and never removed as this one's.
    const claimed = new Map<string, string>();
    for (const [key, c] of current) for (const k of c.keys) claimed.set(k, key);
    for (const key of new Set([...current.keys(), ...this.endpoints.keys()])) {
      const c = current.get(key);
      let st = this.endpoints.get(key);
      if (!st) this.endpoints.set(key, (st = { id: this.nextId++, flags: [0, 0], content: [undefined, undefined], keys: [] }));
      const isolation = c ? (c.ep.ingress.isolated ? FLAGS.ISOLATED_INGRESS : 0) | (c.ep.egress.isolated ? FLAGS.ISOLATED_EGRESS : 0) : 0;
      const liveSlot = slotOf(st.flags[live], live);
      let slot = liveSlot;
      if ((c ? signatureOfMaps(c.ep) : '') !== (st.content[liveSlot]?.signature ?? '')) {
        // Changed: into the slot no live packet reads (emptied of anything an update cut short left there).
        slot = (liveSlot ^ 1) as Gen;
        this.remove(st.content[slot], onStep);
        const content = c && slotContent(st.id, slot, c.ep);
        st.content[slot] = content; // booked before the writes, so a failure midway leaves nothing unknown
        for (const e of content?.cidr ?? []) {
          m.cidr.update(e.key, e.cls);
          onStep();
        }
        for (const r of content?.rules ?? []) {
          m.rules.update(r, 1);
          onStep();
        }
        changed = true;
      }
      const flags = withSlot(isolation, next, slot);
      st.flags = pair(st.flags[live], flags);
      const keys = c?.keys ?? [];
      if (!c || st.keys.some((k) => !keys.includes(k))) gone = true;
      for (const k of new Set([...keys, ...st.keys])) {
        if ((claimed.get(k) ?? key) !== key) continue;
        if (!st.keys.includes(k)) changed = true; // a new address of the endpoint
        putLocal(k, { id: st.id, flags: pair(st.keys.includes(k) ? st.flags[live] : 0, keys.includes(k) ? flags : 0) });
      }
      st.keys = [...new Set([...keys, ...st.keys])];
    }

    // ... and the pods' interfaces: the endpoint behind each, with its flags of both generations.
    const boundPorts = new Map<string, { netns: bigint; ifindex: number; value: string }>();
    for (const b of ports) {
      const st = this.endpoints.get(b.endpoint);
      if (!st || !current.has(b.endpoint)) continue;
      const value = { id: st.id, flags: st.flags };
      const k = portKey(b);
      const v = localValue(value);
      const prev = this.ports.get(k);
      if (differs(value.flags) || (prev?.value !== v && altersLive(prev?.value ? parseLocalValue(prev.value) : undefined, value))) changed = true;
      if (prev?.value !== v) {
        if (prev) prev.value = ''; // unknown until the write is done (and still removed if unbound meanwhile)
        m.ports.update({ netns: b.netns, ifindex: b.ifindex, pad: 0 }, value);
        onStep();
      }
      boundPorts.set(k, { netns: b.netns, ifindex: b.ifindex, value: v });
    }

    // 2. The flip, unless the next generation decides nothing differently and nothing is to go (then no
    //    connection needs judging again, and the next generation written stays the next).
    if (!changed && !gone && [...this.nodes].every((ip) => nodes.has(ip)) && [...this.ports.keys()].every((k) => boundPorts.has(k))) {
      this.ports = boundPorts;
      return;
    }
    m.state.update(0, { revision: (revision + 1) >>> 0 });
    onStep();

    // 3. The slots no longer used are emptied; what is gone is forgotten.
    for (const [key, st] of this.endpoints) {
      const unused = (slotOf(st.flags[next], next) ^ 1) as Gen;
      this.remove(st.content[unused], onStep);
      st.content[unused] = undefined;
      const keys = current.get(key)?.keys ?? [];
      for (const k of st.keys.filter((x) => !keys.includes(x) && !claimed.has(x))) {
        const [net, ip] = splitKey(k);
        this.localWritten.delete(k);
        m.local.delete({ network: net, addr: addr16(ip) });
        onStep();
      }
      st.keys = keys;
      if (!current.has(key)) this.endpoints.delete(key);
    }
    for (const [k, st] of this.addresses) {
      if (wanted.has(k)) continue;
      m.ipcache.delete({ network: st.network, addr: st.addr });
      this.addresses.delete(k);
      onStep();
    }
    for (const ip of this.nodes) {
      if (nodes.has(ip)) continue;
      this.localWritten.delete(addrKey(0, ip));
      m.local.delete({ network: 0, addr: addr16(ip) });
      onStep();
    }
    this.nodes = nodes;
    for (const [k, p] of this.ports) {
      if (boundPorts.has(k)) continue;
      m.ports.delete({ netns: p.netns, ifindex: p.ifindex, pad: 0 });
      onStep();
    }
    this.ports = boundPorts;
  }

  private remove(content: SlotContent | undefined, onStep: () => void): void {
    for (const c of content?.cidr ?? []) {
      this.maps.cidr.delete(c.key);
      onStep();
    }
    for (const r of content?.rules ?? []) {
      this.maps.rules.delete(r);
      onStep();
    }
  }
}

/** An address as the writer's books key it: network id and canonical text, so `fd00::0:1` and `fd00::1` are one. */
const canonicalCache = new Map<string, string>();
function canonical(ip: string): string {
  let c = canonicalCache.get(ip);
  if (c === undefined) {
    if (canonicalCache.size >= 1 << 16) canonicalCache.clear(); // bounded: addresses come and go
    canonicalCache.set(ip, (c = formatIp(parseIp(ip))));
  }
  return c;
}
const addrKey = (network: number, ip: string): string => `${network}|${canonical(ip)}`;

const splitKey = (k: string): [number, string] => {
  const i = k.indexOf('|');
  return [Number(k.slice(0, i)), k.slice(i + 1)];
};

/** POLICY_EPDIR of policy.h. */
const epdirOf = (id: number, dir: number, gen: number): number => (((id << 1) | dir) << 1) | gen;

function slotContent(id: number, slot: Gen, ep: EndpointMaps): SlotContent {
  const cidr: Array<{ key: CidrEntry; cls: number }> = [];
  const rules: RuleEntry[] = [];
  for (const [dir, d] of [[DIRECTION.ingress, ep.ingress], [DIRECTION.egress, ep.egress]] as const) {
    if (!d.isolated) continue;
    const epdir = epdirOf(id, dir, slot);
    // compile.ts keys addresses in 129 bits: a family bit, then 128 (IPv4 in the low 32); the trie has a family byte.
    for (const { key, len, value } of d.cidr.entries()) {
      const v = key & ((1n << 128n) - 1n);
      cidr.push({ key: { prefixlen: 32 + 8 + len - 1, epdir, family: Number(key >> 128n), addr: be128(v) }, cls: value });
    }
    for (const { key, len } of d.rules.entries()) {
      rules.push({ prefixlen: 32 + len, epdir, peer: Number(key >> 24n), proto: Number((key >> 16n) & 0xffn), port: Number(key & 0xffffn) });
    }
  }
  return { cidr, rules, signature: signatureOf(cidr, rules) };
}

/**
 * What a slot holds, its endpoint and slot aside (the direction kept), as one comparable string. The trie keeps
 * a key's bits past its prefix as written, and compile.ts writes them zero, so entries read back from the maps
 * give the same string.
 */
function signatureOf(cidr: ReadonlyArray<{ key: CidrEntry; cls: number }>, rules: readonly RuleEntry[]): string {
  const parts: string[] = [];
  for (const { key: k, cls } of cidr) parts.push(`c${k.prefixlen}/${(k.epdir >>> 1) & 1}/${k.family}/${k.addr.toString('hex')}=${cls}`);
  for (const r of rules) parts.push(`r${r.prefixlen}/${(r.epdir >>> 1) & 1}/${r.peer}/${r.proto}/${r.port}`);
  return parts.sort().join(' ');
}

/** compile.ts gives every endpoint of an identity one EndpointMaps: its signature is computed once per compile. */
const signatures = new WeakMap<EndpointMaps, string>();
function signatureOfMaps(ep: EndpointMaps): string {
  let sig = signatures.get(ep);
  if (sig === undefined) signatures.set(ep, (sig = slotContent(0, 0, ep).signature));
  return sig;
}

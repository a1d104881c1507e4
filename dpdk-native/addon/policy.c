/*
 * MultiNetworkPolicy decided in the poll loop (policy.h). The decision is the eBPF datapath's (policy/bpf/
 * policy.c) over the same compiled form, so the two cannot mean different things:
 *
 * - a packet of a governed network is judged by the port it came in on and its destination address: the
 *   egress of the endpoint owning that port, and the ingress of the endpoint owning the destination address.
 *   The engine sees both ends of a packet between two of its pods, so both are checked at once, before the
 *   packet is forwarded; a packet from another node (an uplink) meets only its destination's ingress, and one
 *   to another node only its source's egress (the other engine checks the rest);
 * - a source address is checked against the port: an endpoint's port sending with another pod's address (one
 *   the ipcache knows) is spoofing that pod to borrow what its peers allow it, and is dropped; an address no
 *   pod has (a router's traffic) passes to the policy as `world`;
 * - a direction allows when the endpoint is not isolated in it, or the rule table answers for the peer's
 *   identity (ipcache), for any peer, or for the peer address's ipBlock class: lookups bounded by the key
 *   widths whatever the number of rules (one hash probe per prefix length in use);
 * - connection tracking: a connection is judged at its first packet and remembered as its initiator opened
 *   it; later packets and replies pass unasked (NP4) until the policy changes, when it is judged again at its
 *   next packet and cut if denied. ICMP errors about a tracked connection pass as its replies; fragments take
 *   their first fragment's ports; neighbour discovery and link-scoped IPv6 always pass; non-IP frames (ARP)
 *   are not policy's business (NP10). VLAN tags (802.1Q, 802.1ad, 0x9100) are looked through, up to eight; a
 *   frame with more is dropped on a judged network, so a tag never hides a packet from policy.
 *
 * The tables a build makes are read-only for the loop; the tracking, fragment and drop-report tables, the
 * counters and the event ring's head are the loop's alone (one writer, no lock), the ring's tail the control
 * side's.
 */
#include "policy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#define CT_SIZE 262144 /* power of two; the eBPF datapath's pol_ct has as many */
#define CT_PROBE 16
/* Idle lifetimes, as the eBPF datapath's (policy/bpf/policy.h says why): TCP by its state, the rest alike. */
#define CT_LIFETIME_S 300
#define CT_TCP_S 21600
#define CT_TCP_SYN_S 60
#define CT_TCP_HALF_CLOSED_S 120
#define CT_TCP_CLOSING_S 10
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define FRAG_SIZE 4096 /* power of two, direct-mapped */
#define FRAG_LIFETIME_S 30
#define DROPLOG_SIZE 4096 /* power of two, direct-mapped */
#define EVENTS 8192 /* power of two */
#define MAX_EXTENSION_HEADERS 6
#define MAX_TAGS 8
#define MAX_RECORDS (1u << 24) /* of each kind in a blob: far above any node's, and table sizes cannot overflow */

/* ---- read-only tables (built by the control side) --------------------------------------------------- */

#define KEY_MAX 24

struct slot {
	uint64_t value;
	uint8_t used;
	uint8_t key[KEY_MAX];
};

/* Open addressing, linear probing; filled once, then only read. */
struct table {
	uint32_t mask;
	uint32_t key_len;
	struct slot *slots;
};

struct addr_key {
	uint32_t network;
	uint8_t addr[16];
};

struct rule_key {
	uint32_t epdir;
	uint32_t len;
	uint64_t key;
};

struct cidr_key {
	uint32_t epdir;
	uint8_t family;
	uint8_t len;
	uint8_t pad[2];
	uint8_t addr[16];
};

struct px_policy_port {
	char name[PX_POL_PORT_NAME];
	struct px_policy_endpoint ep;
};

struct px_policy {
	uint64_t revision;
	uint32_t n_ports;
	struct px_policy_port *ports;
	uint64_t governed[PX_POL_MAX_NETWORKS / 64];
	struct table locals, ipcache, cidrs, rules;
	uint64_t rule_lens; /* bit n: some rule has prefix length n (0..56) */
	uint64_t cidr_lens[2][3]; /* per family, bit n: some class has prefix n (0..128) */
};

static uint64_t next_revision = 1;

static int table_init(struct table *t, uint32_t n, uint32_t key_len)
{
	uint32_t size = 16;
	while (size < n * 2)
		size <<= 1;
	t->slots = calloc(size, sizeof(struct slot));
	t->mask = size - 1;
	t->key_len = key_len;
	return t->slots ? 0 : -ENOMEM;
}

static void table_put(struct table *t, const void *key, uint64_t value)
{
	for (uint32_t i = rte_hash_crc(key, t->key_len, 0);; i++) {
		struct slot *s = &t->slots[i & t->mask];
		if (!s->used || memcmp(s->key, key, t->key_len) == 0) {
			s->used = 1;
			memcpy(s->key, key, t->key_len);
			s->value = value;
			return;
		}
	}
}

static inline const uint64_t *table_get(const struct table *t, const void *key)
{
	for (uint32_t i = rte_hash_crc(key, t->key_len, 0);; i++) {
		const struct slot *s = &t->slots[i & t->mask];
		if (!s->used)
			return NULL;
		if (memcmp(s->key, key, t->key_len) == 0)
			return &s->value;
	}
}

static inline uint64_t rule_mask(uint32_t len)
{
	return len == 0 ? 0 : (~0ULL << (56 - len)) & ((1ULL << 56) - 1);
}

static void addr_mask(uint8_t *a, uint32_t bits)
{
	for (uint32_t i = 0; i < 16; i++) {
		uint32_t keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? bits - i * 8 : 0;
		a[i] &= (uint8_t)(0xff00 >> keep);
	}
}

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return rte_le_to_cpu_32(v);
}

void px_policy_free(struct px_policy *p)
{
	if (!p)
		return;
	free(p->ports);
	free(p->locals.slots);
	free(p->ipcache.slots);
	free(p->cidrs.slots);
	free(p->rules.slots);
	free(p);
}

int px_policy_build(const uint8_t *blob, size_t len, struct px_policy **out, char *why, size_t why_len)
{
#define REFUSE(...) (snprintf(why, why_len, __VA_ARGS__), px_policy_free(p), -EINVAL)
	struct px_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return snprintf(why, why_len, "out of memory"), -ENOMEM;
	if (len < PX_POL_HEADER_LEN)
		return REFUSE("policy blob of %zu bytes: shorter than its header", len);
	if (u32_at(blob) != PX_POL_MAGIC || u32_at(blob + 4) != PX_POL_VERSION)
		return REFUSE("policy blob: not a version %u blob", PX_POL_VERSION);
	uint32_t n_net = u32_at(blob + 8), n_port = u32_at(blob + 12), n_loc = u32_at(blob + 16), n_ident = u32_at(blob + 20), n_cidr = u32_at(blob + 24),
		 n_rule = u32_at(blob + 28);
	uint64_t want = PX_POL_HEADER_LEN + (uint64_t)n_net * PX_POL_NETWORK_LEN + (uint64_t)n_port * PX_POL_PORT_LEN + (uint64_t)n_loc * PX_POL_LOCAL_LEN +
			(uint64_t)n_ident * PX_POL_IDENT_LEN + (uint64_t)n_cidr * PX_POL_CIDR_LEN + (uint64_t)n_rule * PX_POL_RULE_LEN;
	if (want != len)
		return REFUSE("policy blob of %zu bytes: its counts say %llu", len, (unsigned long long)want);
	if (n_net > MAX_RECORDS || n_port > MAX_RECORDS || n_loc > MAX_RECORDS || n_ident > MAX_RECORDS || n_cidr > MAX_RECORDS || n_rule > MAX_RECORDS)
		return REFUSE("policy blob: more than %u records of one kind", MAX_RECORDS);
	if (!(p->ports = calloc(n_port ? n_port : 1, sizeof(*p->ports))) || table_init(&p->locals, n_loc, sizeof(struct addr_key)) || table_init(&p->ipcache, n_ident, sizeof(struct addr_key)) ||
	    table_init(&p->cidrs, n_cidr, sizeof(struct cidr_key)) || table_init(&p->rules, n_rule, sizeof(struct rule_key)))
		return REFUSE("out of memory for the policy tables");
	const uint8_t *r = blob + PX_POL_HEADER_LEN;
	for (uint32_t i = 0; i < n_net; i++, r += PX_POL_NETWORK_LEN) {
		uint32_t net = u32_at(r);
		if (net >= PX_POL_MAX_NETWORKS)
			return REFUSE("policy blob: network id %u is not below %u", net, PX_POL_MAX_NETWORKS);
		p->governed[net / 64] |= 1ULL << (net % 64);
	}
	for (uint32_t i = 0; i < n_port; i++, r += PX_POL_PORT_LEN) {
		struct px_policy_port *port = &p->ports[p->n_ports++];
		port->ep.id = u32_at(r);
		port->ep.flags = u32_at(r + 4);
		memcpy(port->name, r + 8, PX_POL_PORT_NAME);
		if (port->ep.id > PX_POL_MAX_ENDPOINT || port->name[PX_POL_PORT_NAME - 1] != 0 || port->name[0] == 0)
			return REFUSE("policy blob: port %u: endpoint id over %u, or a name not NUL-terminated", i, PX_POL_MAX_ENDPOINT);
	}
	for (uint32_t i = 0; i < n_loc + n_ident; i++) {
		struct addr_key k = { .network = u32_at(r) };
		memcpy(k.addr, r + 4, 16);
		if (i < n_loc) {
			table_put(&p->locals, &k, (uint64_t)u32_at(r + 24) << 32 | u32_at(r + 20));
			r += PX_POL_LOCAL_LEN;
		} else {
			table_put(&p->ipcache, &k, u32_at(r + 20));
			r += PX_POL_IDENT_LEN;
		}
	}
	for (uint32_t i = 0; i < n_cidr; i++, r += PX_POL_CIDR_LEN) {
		struct cidr_key k = { .epdir = u32_at(r), .family = r[4], .len = r[5] };
		if (k.family > 1 || k.len > (k.family ? 128 : 32))
			return REFUSE("policy blob: cidr %u: family %u prefix %u", i, k.family, k.len);
		memcpy(k.addr, r + 6, 16);
		addr_mask(k.addr, k.family ? k.len : 96 + k.len);
		table_put(&p->cidrs, &k, u32_at(r + 22));
		p->cidr_lens[k.family][k.len / 64] |= 1ULL << (k.len % 64);
	}
	for (uint32_t i = 0; i < n_rule; i++, r += PX_POL_RULE_LEN) {
		uint64_t key;
		memcpy(&key, r + 5, 8);
		struct rule_key k = { .epdir = u32_at(r), .len = r[4], .key = rte_le_to_cpu_64(key) };
		if (k.len > 56)
			return REFUSE("policy blob: rule %u: prefix %u is over 56", i, k.len);
		k.key &= rule_mask(k.len);
		table_put(&p->rules, &k, 1);
		p->rule_lens |= 1ULL << k.len;
	}
	p->revision = next_revision++;
	*out = p;
	return 0;
#undef REFUSE
}

int px_policy_endpoint_of(const struct px_policy *p, const char *port, struct px_policy_endpoint *out)
{
	for (uint32_t i = 0; i < p->n_ports; i++) {
		if (strcmp(p->ports[i].name, port) == 0) {
			*out = p->ports[i].ep;
			return 1;
		}
	}
	return 0;
}

int px_policy_governs(const struct px_policy *p, uint32_t network)
{
	return network < PX_POL_MAX_NETWORKS && (p->governed[network / 64] >> (network % 64) & 1);
}

/* ---- the decision ---------------------------------------------------------------------------------- */

static int rule(const struct px_policy *p, uint32_t epdir, uint32_t peer, uint8_t proto, uint16_t port)
{
	uint64_t full = (uint64_t)peer << 24 | (uint64_t)proto << 16 | port;
	for (uint64_t lens = p->rule_lens; lens; lens &= ~(1ULL << (63 - __builtin_clzll(lens)))) {
		uint32_t len = 63 - (uint32_t)__builtin_clzll(lens); /* longest first */
		struct rule_key k = { .epdir = epdir, .len = len, .key = full & rule_mask(len) };
		if (table_get(&p->rules, &k))
			return 1;
	}
	return 0;
}

/* The ipBlock class of `peer` at this endpoint and direction: the longest prefix in the table containing it. */
static int cidr_class(const struct px_policy *p, uint32_t epdir, const uint8_t *peer, int v6, uint32_t *cls)
{
	const uint64_t *lens = p->cidr_lens[v6];
	for (int w = 2; w >= 0; w--) {
		for (uint64_t bits = lens[w]; bits; bits &= ~(1ULL << (63 - __builtin_clzll(bits)))) {
			uint32_t len = (uint32_t)w * 64 + 63 - (uint32_t)__builtin_clzll(bits);
			struct cidr_key k = { .epdir = epdir, .family = (uint8_t)v6, .len = (uint8_t)len };
			memcpy(k.addr, peer, 16);
			addr_mask(k.addr, v6 ? len : 96 + len);
			const uint64_t *v = table_get(&p->cidrs, &k);
			if (v) {
				*cls = (uint32_t)*v;
				return 1;
			}
		}
	}
	return 0;
}

static int allows(const struct px_policy *p, uint32_t epdir, uint32_t network, const uint8_t *peer, int v6, uint8_t proto, uint16_t port)
{
	struct addr_key a = { .network = network };
	memcpy(a.addr, peer, 16);
	const uint64_t *id = table_get(&p->ipcache, &a);
	uint32_t cls;
	return rule(p, epdir, id ? (uint32_t)*id : PX_POL_WORLD, proto, port) || rule(p, epdir, PX_POL_ANY_PEER, proto, port) ||
	       (cidr_class(p, epdir, peer, v6, &cls) && rule(p, epdir, cls, proto, port));
}

/*
 * A connection opened from `src` to `dst`:`port`: the source's egress (the endpoint of the port it came from,
 * else the endpoint owning `src`: a connection judged again after a policy change), then the destination's
 * ingress.
 */
static int decide(const struct px_policy *p, uint32_t network, const struct px_policy_endpoint *port_ep, const uint8_t *src, const uint8_t *dst, int v6,
		  uint8_t proto, uint16_t port)
{
	struct addr_key a = { .network = network };
	memcpy(a.addr, src, 16);
	struct px_policy_endpoint from = { 0, 0 };
	if (port_ep) {
		from = *port_ep; /* PX_POL_NO_ENDPOINT has no flags: no egress to judge */
	} else {
		const uint64_t *owner = table_get(&p->locals, &a);
		if (owner)
			from = (struct px_policy_endpoint){ (uint32_t)*owner, (uint32_t)(*owner >> 32) };
	}
	if ((from.flags & PX_POL_ISOLATED_EGRESS) && !allows(p, from.id * 2 + PX_POL_EGRESS, network, dst, v6, proto, port))
		return PX_POL_REASON_EGRESS;
	memcpy(a.addr, dst, 16);
	const uint64_t *to = table_get(&p->locals, &a);
	if (to && (*to >> 32 & PX_POL_ISOLATED_INGRESS) && !allows(p, (uint32_t)*to * 2 + PX_POL_INGRESS, network, src, v6, proto, port))
		return PX_POL_REASON_INGRESS;
	return PX_POL_REASON_NONE;
}

/*
 * A source address the packet's port may not claim (checked on every packet, so a spoofed packet cannot ride a
 * connection the impersonated pod has open either): from a pod's port (`from`: an endpoint, or
 * PX_POL_NO_ENDPOINT for a pod on the network that no policy selects), another pod's address; from any other
 * port (an uplink: other nodes), the address of an endpoint of this engine.
 */
static int spoofed(const struct px_policy *p, uint32_t network, const struct px_policy_endpoint *from, const uint8_t *src)
{
	struct addr_key a = { .network = network };
	memcpy(a.addr, src, 16);
	const uint64_t *owner = table_get(&p->locals, &a);
	if (!from)
		return owner != NULL;
	return owner ? (uint32_t)*owner != from->id : table_get(&p->ipcache, &a) != NULL;
}

/* ---- parsing ----------------------------------------------------------------------------------------- */

enum { ICMP_NONE, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_ERROR, ICMP_NDP, ICMP_OTHER };
enum { FRAG_NONE, FRAG_FIRST, FRAG_LATER };

struct flow {
	uint32_t network;
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint8_t proto;
	uint8_t pad[3];
};

struct packet {
	struct flow f; /* ports in host order */
	int v6, icmp, frag, untracked;
	uint8_t tcp; /* a TCP header's flags (TCP_*), else 0 */
	uint32_t frag_id;
	struct flow quoted; /* the packet an ICMP error quotes, as its sender sent it */
};

static const uint8_t V4_MAPPED[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* `len` bytes at `off` (copied into `buf` when they straddle segments); NULL past the end. */
static inline const uint8_t *at(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint8_t *buf)
{
	return rte_pktmbuf_read(m, off, len, buf);
}

/* The addresses and ports of a packet an ICMP error quotes (at `off`); 0 when they can be read. */
static int quote(const struct rte_mbuf *m, uint32_t off, int v6, struct flow *q)
{
	uint8_t buf[40];
	const uint8_t *h = at(m, off, v6 ? 40 : 20, buf);
	if (!h)
		return -1;
	uint32_t l4;
	if (v6) {
		memcpy(q->src, h + 8, 16);
		memcpy(q->dst, h + 24, 16);
		q->proto = h[6];
		l4 = off + 40;
	} else {
		memcpy(q->src, V4_MAPPED, 12);
		memcpy(q->src + 12, h + 12, 4);
		memcpy(q->dst, V4_MAPPED, 12);
		memcpy(q->dst + 12, h + 16, 4);
		q->proto = h[9];
		l4 = off + (uint32_t)(h[0] & 0x0f) * 4;
	}
	const uint8_t *h4 = at(m, l4, 8, buf);
	if (!h4)
		return -1;
	if (q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP || q->proto == IPPROTO_SCTP) {
		q->sport = (uint16_t)(h4[0] << 8 | h4[1]);
		q->dport = (uint16_t)(h4[2] << 8 | h4[3]);
		return 0;
	}
	/* a quoted echo request: its identifier stands for both ports, as in the connection it belongs to */
	if ((q->proto == IPPROTO_ICMP && !v6 && h4[0] == 8) || (q->proto == IPPROTO_ICMPV6 && v6 && h4[0] == 128)) {
		q->sport = q->dport = (uint16_t)(h4[4] << 8 | h4[5]);
		return 0;
	}
	return -1;
}

/*
 * -1: not IP; -2: tagged deeper than looked through (dropped); 0: parsed; 1: an IP packet whose transport
 * header cannot be read (judged with no port).
 */
static int parse(const struct rte_mbuf *m, struct packet *pk)
{
	uint8_t buf[40];
	const uint8_t *eth = at(m, 0, 14, buf);
	if (!eth)
		return -1;
	uint16_t type = (uint16_t)(eth[12] << 8 | eth[13]);
	uint32_t off = 14;
	for (int tags = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; tags++) {
		const uint8_t *tag = tags < MAX_TAGS ? at(m, off, 4, buf) : NULL;
		if (!tag)
			return -2; /* more tags than looked through, or cut short: never forwarded unjudged */
		type = (uint16_t)(tag[2] << 8 | tag[3]);
		off += 4;
	}
	uint32_t l4;
	uint8_t next;
	if (type == 0x0800) {
		const uint8_t *ip = at(m, off, 20, buf);
		if (!ip)
			return -1;
		memcpy(pk->f.src, V4_MAPPED, 12);
		memcpy(pk->f.src + 12, ip + 12, 4);
		memcpy(pk->f.dst, V4_MAPPED, 12);
		memcpy(pk->f.dst + 12, ip + 16, 4);
		next = ip[9];
		uint16_t frag = (uint16_t)(ip[6] << 8 | ip[7]);
		pk->frag = (frag & 0x1fff) ? FRAG_LATER : (frag & 0x2000) ? FRAG_FIRST : FRAG_NONE;
		pk->frag_id = (uint32_t)(ip[4] << 8 | ip[5]);
		l4 = off + (uint32_t)(ip[0] & 0x0f) * 4;
	} else if (type == 0x86dd) {
		const uint8_t *ip6 = at(m, off, 40, buf);
		if (!ip6)
			return -1;
		memcpy(pk->f.src, ip6 + 8, 16);
		memcpy(pk->f.dst, ip6 + 24, 16);
		pk->v6 = 1;
		next = ip6[6];
		l4 = off + 40;
		for (int i = 0; i < MAX_EXTENSION_HEADERS; i++) {
			const uint8_t *eh;
			if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS || next == IPPROTO_AH) {
				if (!(eh = at(m, l4, 2, buf)))
					goto no_transport;
				uint32_t hlen = next == IPPROTO_AH ? ((uint32_t)eh[1] + 2) * 4 : ((uint32_t)eh[1] + 1) * 8;
				next = eh[0];
				l4 += hlen;
			} else if (next == IPPROTO_FRAGMENT) {
				if (!(eh = at(m, l4, 8, buf)))
					goto no_transport;
				next = eh[0];
				uint16_t fo = (uint16_t)(eh[2] << 8 | eh[3]);
				pk->frag = (fo & 0xfff8) ? FRAG_LATER : (fo & 1) ? FRAG_FIRST : FRAG_NONE;
				pk->frag_id = (uint32_t)eh[4] << 24 | (uint32_t)eh[5] << 16 | (uint32_t)eh[6] << 8 | eh[7];
				l4 += 8;
				if (pk->frag == FRAG_LATER)
					break; /* payload follows, not headers: the first fragment says the rest */
			} else {
				break;
			}
		}
		if (pk->frag != FRAG_LATER && (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS || next == IPPROTO_AH || next == IPPROTO_FRAGMENT)) {
			pk->f.proto = next;
			goto no_transport; /* more extension headers than walked */
		}
	} else {
		return -1;
	}
	pk->f.proto = next;
	if (pk->frag == FRAG_LATER)
		return 0;
	if (next == IPPROTO_TCP || next == IPPROTO_UDP || next == IPPROTO_SCTP) {
		const uint8_t *ports = at(m, l4, 4, buf);
		if (!ports)
			goto no_transport;
		pk->f.sport = (uint16_t)(ports[0] << 8 | ports[1]);
		pk->f.dport = (uint16_t)(ports[2] << 8 | ports[3]);
		const uint8_t *flags = next == IPPROTO_TCP ? at(m, l4 + 13, 1, buf) : NULL;
		if (flags)
			pk->tcp = *flags;
	} else if ((next == IPPROTO_ICMP && !pk->v6) || (next == IPPROTO_ICMPV6 && pk->v6)) {
		const uint8_t *h = at(m, l4, 8, buf);
		if (!h)
			goto no_transport;
		uint8_t request = pk->v6 ? 128 : 8, reply = pk->v6 ? 129 : 0;
		pk->icmp = h[0] == request ? ICMP_ECHO_REQUEST : h[0] == reply ? ICMP_ECHO_REPLY : ICMP_OTHER;
		if (pk->v6 && ((h[0] >= 130 && h[0] <= 137) || h[0] == 143))
			pk->icmp = ICMP_NDP; /* neighbour discovery and MLD */
		if (pk->icmp == ICMP_ECHO_REQUEST || pk->icmp == ICMP_ECHO_REPLY)
			pk->f.sport = pk->f.dport = (uint16_t)(h[4] << 8 | h[5]);
		if (pk->v6 ? h[0] >= 1 && h[0] <= 4 : h[0] == 3 || h[0] == 11 || h[0] == 12)
			pk->icmp = quote(m, l4 + 8, pk->v6, &pk->quoted) == 0 ? ICMP_ERROR : ICMP_OTHER;
	}
	return 0;
no_transport:
	pk->frag = FRAG_NONE;
	pk->f.sport = pk->f.dport = 0;
	pk->icmp = ICMP_NONE;
	return 1;
}

/* ---- the loop's own state ---------------------------------------------------------------------------- */

struct ct_entry {
	struct flow k;
	uint8_t used; /* ever used: a probe stops at a slot never used */
	uint8_t replied, fin_initiator, fin_responder; /* TCP state, as the eBPF datapath's */
	uint8_t cut; /* a policy change cut it: the reason; kept so its packets either way stay dropped (policy/bpf/policy.h) */
	uint64_t seen; /* TSC; 0: forgotten (cut, or closed) */
	uint64_t revision;
};

struct frag_entry {
	struct flow k; /* ports 0; the datagram's id in sport:dport */
	uint64_t seen;
	uint16_t sport, dport;
	uint8_t proto;
	int icmp;
};

static struct ct_entry ct[CT_SIZE];
static struct frag_entry frags[FRAG_SIZE];
static struct {
	uint32_t hash;
	uint64_t at;
} droplog[DROPLOG_SIZE];
static struct px_policy_counters counters[PX_POL_MAX_NETWORKS];
static struct px_flow_event events[EVENTS];
static uint64_t events_head, events_tail; /* head: the loop's; tail: the control side's */

static inline uint32_t flow_hash(const struct flow *k)
{
	return rte_hash_crc(k, sizeof(*k), 0);
}

/* How long `e` may stay idle, in TSC cycles: TCP by its state, the rest CT_LIFETIME_S. */
static inline uint64_t ct_lifetime(const struct ct_entry *e)
{
	uint64_t s = CT_LIFETIME_S;
	if (e->k.proto == IPPROTO_TCP)
		s = e->fin_initiator && e->fin_responder ? CT_TCP_CLOSING_S
		    : e->fin_initiator || e->fin_responder ? CT_TCP_HALF_CLOSED_S
		    : e->replied ? CT_TCP_S
				 : CT_TCP_SYN_S;
	return rte_get_tsc_hz() * s;
}

static inline int ct_live(const struct ct_entry *e, uint64_t now)
{
	return e->seen != 0 && now - e->seen < ct_lifetime(e);
}

static struct ct_entry *ct_find(const struct flow *k, uint64_t now)
{
	uint32_t h = flow_hash(k);
	for (int i = 0; i < CT_PROBE; i++) {
		struct ct_entry *e = &ct[(h + i) & (CT_SIZE - 1)];
		if (!e->used)
			return NULL;
		if (memcmp(&e->k, k, sizeof(*k)) == 0)
			return ct_live(e, now) ? e : NULL;
	}
	return NULL;
}

static struct ct_entry *ct_remember(const struct flow *k, uint64_t now, uint64_t revision)
{
	uint32_t h = flow_hash(k);
	struct ct_entry *free_slot = NULL;
	for (int i = 0; i < CT_PROBE; i++) {
		struct ct_entry *e = &ct[(h + i) & (CT_SIZE - 1)];
		if (e->used && memcmp(&e->k, k, sizeof(*k)) == 0) {
			free_slot = e;
			break;
		}
		if (!free_slot && !ct_live(e, now))
			free_slot = e;
		if (!e->used)
			break;
	}
	if (!free_slot) {
		/* a full neighbourhood of live connections: the one idle longest makes room */
		free_slot = &ct[h & (CT_SIZE - 1)];
		for (int i = 1; i < CT_PROBE; i++) {
			struct ct_entry *e = &ct[(h + i) & (CT_SIZE - 1)];
			if (e->seen < free_slot->seen)
				free_slot = e;
		}
	}
	free_slot->k = *k;
	free_slot->used = 1;
	free_slot->replied = free_slot->fin_initiator = free_slot->fin_responder = free_slot->cut = 0;
	free_slot->seen = now;
	free_slot->revision = revision;
	return free_slot;
}

/*
 * TCP's state in a tracked connection for a packet with flags `tcp`, as the eBPF datapath's track_tcp (which
 * says why a closed connection is kept closing for seconds rather than forgotten at its last ACK): each side's
 * FIN is remembered, and an RST counts as both.
 */
static void ct_track_tcp(struct ct_entry *e, uint8_t tcp, int reply)
{
	if (tcp & TCP_RST)
		e->fin_initiator = e->fin_responder = 1;
	else if (tcp & TCP_FIN) {
		if (reply)
			e->fin_responder = 1;
		else
			e->fin_initiator = 1;
	}
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void report(const struct flow *f, uint32_t len, uint8_t verdict, uint8_t reason, uint8_t flags)
{
	uint64_t tail = __atomic_load_n(&events_tail, __ATOMIC_ACQUIRE);
	if (events_head - tail >= EVENTS) {
		counters[f->network].events_lost++;
		return;
	}
	struct px_flow_event *e = &events[events_head & (EVENTS - 1)];
	e->time_ns = monotonic_ns();
	e->network = f->network;
	e->len = len;
	memcpy(e->src, f->src, 16);
	memcpy(e->dst, f->dst, 16);
	e->sport = f->sport;
	e->dport = f->dport;
	e->proto = f->proto;
	e->verdict = verdict;
	e->reason = reason;
	e->flags = flags;
	__atomic_store_n(&events_head, events_head + 1, __ATOMIC_RELEASE);
}

/* Whether the flow `key` names is due a report: none in the last second (then it is now). Direct-mapped. */
static int due(const struct flow *key, uint64_t now)
{
	uint32_t h = flow_hash(key);
	typeof(droplog[0]) *d = &droplog[h & (DROPLOG_SIZE - 1)];
	if (d->hash == h && now - d->at <= rte_get_tsc_hz())
		return 0;
	d->hash = h;
	d->at = now;
	return 1;
}

/* A drop, counted always and reported at most once a second per flow (a flood of drops never fills the ring). */
static int dropped(const struct flow *f, uint32_t len, uint64_t now, int reason, uint8_t flags)
{
	struct px_policy_counters *c = &counters[f->network];
	if (flags & PX_POL_FLOW_CUT)
		c->cut++;
	else if (reason == PX_POL_REASON_SPOOFED)
		c->dropped_spoofed++;
	else if (reason == PX_POL_REASON_EGRESS)
		c->dropped_egress++;
	else
		c->dropped_ingress++;
	if (due(f, now))
		report(f, len, PX_POL_VERDICT_DROPPED, (uint8_t)reason, flags);
	return reason;
}

/* A fragmented datagram is one connection: its first fragment's ports are remembered, later ones take them. */
static void fragment_ports(struct packet *pk, uint64_t now)
{
	if (pk->frag == FRAG_NONE)
		return;
	struct flow k = pk->f;
	k.sport = (uint16_t)(pk->frag_id >> 16);
	k.dport = (uint16_t)pk->frag_id;
	k.proto = pk->v6 ? 0 : pk->f.proto; /* IPv6 names a datagram by addresses and id (RFC 8200) */
	struct frag_entry *e = &frags[flow_hash(&k) & (FRAG_SIZE - 1)];
	if (pk->frag == FRAG_FIRST) {
		e->k = k;
		e->seen = now;
		e->sport = pk->f.sport;
		e->dport = pk->f.dport;
		e->proto = pk->f.proto;
		e->icmp = pk->icmp;
		return;
	}
	if (e->seen == 0 || now - e->seen > rte_get_tsc_hz() * FRAG_LIFETIME_S || memcmp(&e->k, &k, sizeof(k)) != 0) {
		pk->untracked = 1; /* its first fragment was not seen: judged as it comes, port 0, never tracked */
		return;
	}
	pk->f.sport = e->sport;
	pk->f.dport = e->dport;
	pk->f.proto = e->proto;
	pk->icmp = e->icmp;
}

static inline void remember(struct px_policy_memo *memo, const struct packet *pk)
{
	memo->valid = pk->icmp == ICMP_NONE && !pk->untracked;
	memcpy(memo->flow, &pk->f, sizeof(pk->f));
}

static void reverse(const struct flow *f, struct flow *r)
{
	*r = *f;
	memcpy(r->src, f->dst, 16);
	memcpy(r->dst, f->src, 16);
	r->sport = f->dport;
	r->dport = f->sport;
}

/* An ICMP error quoting a packet of a tracked connection that the error's destination sent. */
static int related(struct packet *pk, uint64_t now)
{
	struct flow *q = &pk->quoted, r;
	if (memcmp(q->src, pk->f.dst, 16) != 0)
		return 0;
	q->network = pk->f.network;
	reverse(q, &r);
	return ct_find(q, now) || ct_find(&r, now);
}

_Static_assert(sizeof(struct flow) == sizeof(((struct px_policy_memo *)0)->flow), "px_policy_memo holds one flow");

int px_policy_judge(const struct px_policy *p, uint32_t network, const struct px_policy_endpoint *from, const struct rte_mbuf *m, uint64_t now,
		    struct px_policy_memo *memo)
{
	struct packet pk;
	memset(&pk, 0, sizeof(pk));
	pk.f.network = network;
	int parsed = parse(m, &pk);
	if (parsed == -2)
		return dropped(&pk.f, rte_pktmbuf_pkt_len(m), now, PX_POL_REASON_SPOOFED, 0);
	if (parsed < 0)
		return PX_POL_REASON_NONE; /* not IP (NP10) */
	pk.untracked = parsed > 0;
	/*
	 * Neighbour discovery and MLD are never connections (policy/bpf/policy.c says why); anything else, link-local
	 * or multicast included, is judged by its addresses (such an address is `world` unless an ipBlock has it).
	 */
	if (pk.icmp == ICMP_NDP)
		return PX_POL_REASON_NONE;
	fragment_ports(&pk, now);
	/*
	 * the burst's last tracked flow again (its source was checked, its connection is live): nothing to ask,
	 * unless it may change the connection's TCP state
	 */
	if (memo->valid && pk.icmp == ICMP_NONE && !pk.untracked && !(pk.tcp & (TCP_FIN | TCP_SYN | TCP_RST)) && memcmp(memo->flow, &pk.f, sizeof(pk.f)) == 0)
		return PX_POL_REASON_NONE;
	if (spoofed(p, network, from, pk.f.src))
		return dropped(&pk.f, rte_pktmbuf_pkt_len(m), now, PX_POL_REASON_SPOOFED, pk.v6 ? PX_POL_FLOW_V6 : 0);
	uint32_t len = rte_pktmbuf_pkt_len(m);
	uint8_t flags = pk.v6 ? PX_POL_FLOW_V6 : 0;
	if (pk.icmp == ICMP_ERROR && related(&pk, now))
		return PX_POL_REASON_NONE;
	struct flow k = pk.f, r;
	struct ct_entry *e = pk.icmp == ICMP_ECHO_REPLY ? NULL : ct_find(&k, now);
	int reply = 0;
	if (!e && pk.icmp != ICMP_ECHO_REQUEST) {
		reverse(&pk.f, &r);
		if ((e = ct_find(&r, now))) {
			k = r; /* a reply: k names the connection as its initiator opened it */
			reply = 1;
		}
	}
	/* A SYN on the ports of a closing connection opens a new one (TIME_WAIT reuse): judged anew. */
	if (e && (pk.tcp & (TCP_SYN | TCP_ACK)) == TCP_SYN && (e->fin_initiator || e->fin_responder || e->cut)) {
		e->seen = 0;
		e = NULL;
		k = pk.f;
		memo->valid = 0; /* the new connection is judged below; nothing of the burst may pass on the old one */
	}
	if (e) {
		if (e->revision != p->revision || e->cut) {
			/* judged again as opened; a connection cut stays cut (either way) until the next change */
			int why = e->revision == p->revision ? e->cut : decide(p, network, NULL, k.src, k.dst, pk.v6, k.proto, k.dport);
			e->revision = p->revision;
			if (why != PX_POL_REASON_NONE) {
				int first = !e->cut;
				e->cut = (uint8_t)why;
				e->seen = now;
				return dropped(&k, len, now, why, flags | (first ? PX_POL_FLOW_CUT : 0));
			}
			e->cut = 0;
		}
		if (pk.tcp)
			ct_track_tcp(e, pk.tcp, reply);
		/* answered: a reply, or the initiator's ACK of one */
		if (reply || (pk.tcp & (TCP_ACK | TCP_SYN)) == TCP_ACK)
			e->replied = 1;
		e->seen = now;
		remember(memo, &pk);
		return PX_POL_REASON_NONE;
	}
	int why = decide(p, network, from, pk.f.src, pk.f.dst, pk.v6, pk.f.proto, pk.f.dport);
	if (why != PX_POL_REASON_NONE)
		return dropped(&pk.f, len, now, why, flags);
	/* An RST opens nothing (it ends what it belongs to); an allowed FIN of a connection forgotten is tracked closing. */
	if (pk.icmp == ICMP_OTHER || pk.icmp == ICMP_ERROR || pk.icmp == ICMP_ECHO_REPLY || pk.untracked || (pk.tcp & TCP_RST))
		return PX_POL_REASON_NONE; /* allowed as it is; nothing to remember */
	struct ct_entry *fresh = ct_remember(&pk.f, now, p->revision);
	fresh->fin_initiator = (pk.tcp & TCP_FIN) ? 1 : 0;
	remember(memo, &pk);
	counters[network].forwarded++;
	/* reported once a second per client, server, protocol and port (policy/bpf/policy.c says why) */
	struct flow server = pk.f;
	server.sport = 0;
	server.pad[0] = PX_POL_VERDICT_FORWARDED;
	if (due(&server, now))
		report(&pk.f, len, PX_POL_VERDICT_FORWARDED, PX_POL_REASON_NONE, flags);
	return PX_POL_REASON_NONE;
}

/* ---- the control side's reads ------------------------------------------------------------------------ */

void px_policy_counters_of(uint32_t network, struct px_policy_counters *out)
{
	if (network >= PX_POL_MAX_NETWORKS) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = counters[network]; /* 64-bit words the loop only adds to: each read whole */
}

int px_policy_events(struct px_flow_event *out, int max)
{
	uint64_t head = __atomic_load_n(&events_head, __ATOMIC_ACQUIRE);
	int n = 0;
	while (events_tail + (uint64_t)n < head && n < max) {
		out[n] = events[(events_tail + (uint64_t)n) & (EVENTS - 1)];
		n++;
	}
	__atomic_store_n(&events_tail, events_tail + (uint64_t)n, __ATOMIC_RELEASE);
	return n;
}

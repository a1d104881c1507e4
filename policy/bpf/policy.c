// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * policy_verdict: the policy decision of docs/policy.md in eBPF, over the maps policy/compile.ts fills. For a
 * packet on network N (the network of the interface it crosses), with source S and destination D:
 *
 *   egress:  if S is a local endpoint isolated for egress, one of its rules must allow (D, proto, port);
 *   ingress: if D is a local endpoint isolated for ingress, one of its rules must allow (S, proto, port),
 *            unless S is this node on the cluster network (NP5).
 *
 * A direction's rules are found with a fixed number of lookups whatever their number: the ipcache gives the
 * peer's identity (or WORLD), and the rule trie is asked for (identity, proto, port), (any peer, proto, port)
 * and (the peer address's ipBlock class, proto, port), the class coming from the endpoint's address trie.
 * Port ranges, "every port" and "every protocol" are prefixes of the rule key, so each ask is one LPM lookup.
 *
 * Connections are tracked (pol_ct), so the policy is asked once per connection and replies pass (NP4); a
 * policy change (a new revision in pol_state) makes each connection be judged again at its next packet, and
 * cut if now denied. Tested under BPF_PROG_TEST_RUN against the reference evaluator
 * (policy/bpf-policy.test.ts).
 *
 * Hooks: two programs, one per way through an endpoint's interface, attached as direct-action tc filters ahead
 * of the datapath's own (priority 1): on a routed pod's host veth, policy_from_endpoint on ingress (before
 * from_pod, whose bpf_redirect_peer skips the destination's hooks, so both sides are decided here) and
 * policy_to_endpoint on egress (traffic from other nodes and the node itself); on a secondary interface inside
 * the pod, the other way round. A packet allowed returns TC_ACT_UNSPEC so the next filter (from_pod) runs.
 *
 * Flow events (pol_events, a ring buffer the daemon reads): connections allowed, at most one a second per
 * client, server, protocol and port (a client opening thousands a second to one server is one flow a second,
 * not thousands of events for the daemon to read), and drops, at most one per flow (5-tuple) per second; both
 * through pol_droplog. When the buffer is full the event is counted as lost and the packet goes on: the
 * datapath never waits for the reader. Counters per network in pol_counters count every connection and drop.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "policy.h"

/* The maps outlive the daemon (pinned by name under its pin directory), so enforcement survives a restart. */
#ifndef POLICY_PINNING
#define POLICY_PINNING LIBBPF_PIN_BY_NAME
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, POLICY_MAX_ADDRESSES);
	__type(key, struct addr_key);
	__type(value, struct identity_pair);
	__uint(pinning, POLICY_PINNING);
} pol_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, POLICY_MAX_ADDRESSES);
	__type(key, struct addr_key);
	__type(value, struct local_endpoint);
	__uint(pinning, POLICY_PINNING);
} pol_local SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, POLICY_MAX_PORTS);
	__type(key, struct port_key);
	__type(value, struct local_endpoint);
	__uint(pinning, POLICY_PINNING);
} pol_ports SEC(".maps");

/*
 * The network of the interfaces this copy of the programs is hooked on (0: the cluster network): set by the
 * loader before load, one loaded copy per network (the maps are shared, pinned by name). A constant rather than
 * a map keyed by ifindex, because ifindexes are per netns: a pod's net1 and a host veth of the node can share one.
 */
const volatile __u32 policy_network SEC(".rodata.network") = 0;
/*
 * 1: check a pod interface's packets against pol_ports (below). Set by the loader, which tries 1 and falls back
 * to 0 on a kernel whose tc programs may not call bpf_get_netns_cookie (before 6.13): the verifier never walks
 * the branch a constant 0 cuts off, so the same object loads on both.
 */
const volatile __u32 policy_ports SEC(".rodata.network") = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_MAX_CIDRS);
	__type(key, struct cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, POLICY_PINNING);
} pol_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_MAX_RULES);
	__type(key, struct rule_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, POLICY_PINNING);
} pol_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, POLICY_MAX_CONNECTIONS);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(pinning, POLICY_PINNING);
} pol_ct SEC(".maps");

/* The ports of fragmented datagrams, by their first fragment (LRU: a datagram never completed is forgotten). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, POLICY_MAX_FRAGMENTED);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
	__uint(pinning, POLICY_PINNING);
} pol_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policy_state);
	__uint(pinning, POLICY_PINNING);
} pol_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, POLICY_EVENTS_BYTES);
	__uint(pinning, POLICY_PINNING);
} pol_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ct_key);
	__type(value, __u64); /* when this flow (a drop's 5-tuple, an allowed connection's server and port) was last reported */
	__uint(pinning, POLICY_PINNING);
} pol_droplog SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct counter_key);
	__type(value, __u64);
	__uint(pinning, POLICY_PINNING);
} pol_counters SEC(".maps");

static __always_inline void count(__u32 network, __u32 counter)
{
	struct counter_key k = { .network = network, .counter = counter };
	__u64 *n = bpf_map_lookup_elem(&pol_counters, &k);
	if (n) {
		(*n)++;
		return;
	}
	__u64 one = 1;
	bpf_map_update_elem(&pol_counters, &k, &one, BPF_NOEXIST);
}

static __always_inline void report(struct __sk_buff *skb, const struct ct_key *flow, __u64 now, __u8 verdict, __u8 reason, __u8 flags)
{
	struct flow_event *ev = bpf_ringbuf_reserve(&pol_events, sizeof(*ev), 0);
	if (!ev) {
		count(flow->network, POLICY_COUNT_EVENTS_LOST);
		return;
	}
	ev->time = now;
	__builtin_memcpy(ev->src, flow->src, 16);
	__builtin_memcpy(ev->dst, flow->dst, 16);
	ev->ifindex = skb->ifindex;
	ev->network = flow->network;
	ev->sport = flow->sport;
	ev->dport = flow->dport;
	ev->proto = flow->proto;
	ev->verdict = verdict;
	ev->reason = reason;
	ev->flags = flags;
	ev->len = skb->len;
	ev->pad = 0;
	/* The daemon polls; it never sleeps on the buffer, so no wakeup (an irq_work per drained buffer) is needed. */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
}

/* Whether the flow `key` names is due a report: none in the last POLICY_DROP_REPORT_NS (then it is now). */
static __always_inline int due(const struct ct_key *key, __u64 now)
{
	__u64 *last = bpf_map_lookup_elem(&pol_droplog, key);
	if (last && now - *last < POLICY_DROP_REPORT_NS)
		return 0;
	bpf_map_update_elem(&pol_droplog, key, &now, BPF_ANY);
	return 1;
}

/* A drop: counted always, reported at most once per flow per POLICY_DROP_REPORT_NS. */
static __always_inline int dropped(struct __sk_buff *skb, const struct ct_key *flow, __u64 now, __u8 reason, __u8 flags)
{
	count(flow->network, (flags & POLICY_FLOW_CUT)		    ? POLICY_COUNT_CUT
			     : reason == POLICY_REASON_EGRESS	    ? POLICY_COUNT_DROPPED_EGRESS
			     : reason == POLICY_REASON_SPOOFED ? POLICY_COUNT_DROPPED_SPOOFED
							       : POLICY_COUNT_DROPPED_INGRESS);
	if (due(flow, now))
		report(skb, flow, now, POLICY_VERDICT_DROPPED, reason, flags);
	return TC_ACT_SHOT;
}

static __always_inline int rule(__u32 epdir, __u32 peer, __u8 proto, __u16 port)
{
	struct rule_key k = {
		.prefixlen = 32 + 56,
		.epdir = bpf_htonl(epdir),
		.peer = bpf_htonl(peer),
		.proto = proto,
		.port = bpf_htons(port),
	};
	return bpf_map_lookup_elem(&pol_rules, &k) != NULL;
}

static __always_inline int allows(__u32 epdir, __u32 gen, __u32 network, const __u8 *peer, int v6, __u8 proto, __u16 port)
{
	struct addr_key a = { .network = network };
	__builtin_memcpy(a.addr, peer, 16);
	struct identity_pair *id = bpf_map_lookup_elem(&pol_ipcache, &a);
	if (rule(epdir, id ? id->id[gen & 1] : POLICY_WORLD, proto, port) || rule(epdir, POLICY_ANY_PEER, proto, port))
		return 1;
	struct cidr_key c = { .prefixlen = 32 + 8 + 128, .epdir = bpf_htonl(epdir), .family = v6 };
	if (v6)
		__builtin_memcpy(c.addr, peer, 16);
	else
		__builtin_memcpy(c.addr + 12, peer + 12, 4);
	__u32 *cls = bpf_map_lookup_elem(&pol_cidr, &c);
	return cls && rule(epdir, *cls, proto, port);
}

/* How an ICMP packet is tracked: echo requests and replies as a connection keyed by their identifier. */
#define ICMP_NONE 0 /* not ICMP */
#define ICMP_ECHO_REQUEST 1
#define ICMP_ECHO_REPLY 2
#define ICMP_OTHER 3 /* errors and the rest: judged as they come, never tracked */
#define ICMP_NDP 4 /* IPv6 neighbour discovery (router and neighbour solicitations and advertisements, redirects) */
#define ICMP_ERROR 5 /* an error quoting a packet (unreachable, too big, time exceeded, parameter problem) */

/* TCP header flags (*tcp of parse). */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Where a packet stands in a fragmented datagram. */
#define FRAG_NONE 0 /* not a fragment */
#define FRAG_FIRST 1 /* the first fragment: it carries the transport header */
#define FRAG_LATER 2 /* a later fragment: no transport header, its bytes are payload */

/* IPv6 extension headers walked before the transport header (hop-by-hop, routing, ...): at most this many. */
#define MAX_EXTENSION_HEADERS 6

/*
 * The packet an ICMP error quotes (its IP header and the first bytes of its transport header), as a
 * connection key in the way it was sent: 0 when it could be read, with ports (TCP, UDP, SCTP) or an echo
 * request's identifier.
 */
static __always_inline int quote(__u8 *p, void *end, int v6, struct ct_key *q)
{
	__u8 *l4;
	if (!v6) {
		struct iphdr *ip = (void *)p;
		if ((void *)(ip + 1) > end)
			return -1;
		__builtin_memset(q->src, 0, 10);
		__builtin_memset(q->dst, 0, 10);
		q->src[10] = q->src[11] = q->dst[10] = q->dst[11] = 0xff;
		__builtin_memcpy(q->src + 12, &ip->saddr, 4);
		__builtin_memcpy(q->dst + 12, &ip->daddr, 4);
		q->proto = ip->protocol;
		l4 = (__u8 *)ip + ip->ihl * 4;
	} else {
		struct ipv6hdr *ip6 = (void *)p;
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(q->src, &ip6->saddr, 16);
		__builtin_memcpy(q->dst, &ip6->daddr, 16);
		q->proto = ip6->nexthdr;
		l4 = (__u8 *)(ip6 + 1);
	}
	if ((void *)(l4 + 8) > end)
		return -1;
	if (q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP || q->proto == IPPROTO_SCTP) {
		__builtin_memcpy(&q->sport, l4, 2);
		__builtin_memcpy(&q->dport, l4 + 2, 2);
		return 0;
	}
	if ((q->proto == IPPROTO_ICMP && !v6 && l4[0] == 8) || (q->proto == IPPROTO_ICMPV6 && v6 && l4[0] == 128)) {
		__builtin_memcpy(&q->sport, l4 + 4, 2);
		__builtin_memcpy(&q->dport, l4 + 4, 2);
		return 0;
	}
	return -1;
}

/*
 * Source, destination (IPv4 as ::ffff:a.b.c.d), protocol and ports; -1 when it is not IP. An ICMP echo's
 * identifier stands in for both ports, so a request and its reply are one connection and a ping the other way
 * is another (without it, any ping between two pods would look like the reply of one the other way). IPv6
 * extension headers are walked to the transport header. A later fragment has no ports (*frag says so, with
 * the datagram's identification): its first fragment's are looked up by the caller. Returns -1 when it is not
 * IP, 1 when it is but its transport header cannot be read (truncated, or more extension headers than walked):
 * the caller judges it with no port rather than letting it through. An ICMP error's quoted packet goes to
 * *quoted (ICMP_ERROR). *tcp: a TCP header's flags (TCP_*), 0 for anything else.
 */
static __always_inline int parse(struct __sk_buff *skb, __u8 *src, __u8 *dst, int *v6, __u8 *proto, __u16 *sport, __u16 *port, __u8 *tcp,
				 int *icmp, int *frag, __u32 *frag_id, struct ct_key *quoted)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	void *l4;
	*frag = FRAG_NONE;
	*frag_id = 0;
	*port = 0;
	*sport = 0;
	*tcp = 0;
	*icmp = ICMP_NONE;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return -1;
		__builtin_memset(src, 0, 10);
		__builtin_memset(dst, 0, 10);
		src[10] = src[11] = dst[10] = dst[11] = 0xff;
		__builtin_memcpy(src + 12, &ip->saddr, 4);
		__builtin_memcpy(dst + 12, &ip->daddr, 4);
		*proto = ip->protocol;
		*v6 = 0;
		l4 = (void *)ip + ip->ihl * 4;
		__u16 frag_off = bpf_ntohs(ip->frag_off);
		if (frag_off & 0x1fff)
			*frag = FRAG_LATER;
		else if (frag_off & 0x2000)
			*frag = FRAG_FIRST;
		*frag_id = bpf_ntohs(ip->id);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(src, &ip6->saddr, 16);
		__builtin_memcpy(dst, &ip6->daddr, 16);
		*v6 = 1;
		__u8 next = ip6->nexthdr;
		void *h = ip6 + 1;
#pragma unroll
		for (int i = 0; i < MAX_EXTENSION_HEADERS; i++) {
			__u8 *eh = h;
			if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
				if ((void *)(eh + 2) > end)
					goto no_transport;
				next = eh[0];
				h += ((__u32)eh[1] + 1) * 8;
			} else if (next == IPPROTO_AH) {
				if ((void *)(eh + 2) > end)
					goto no_transport;
				next = eh[0];
				h += ((__u32)eh[1] + 2) * 4;
			} else if (next == IPPROTO_FRAGMENT) {
				if ((void *)(eh + 8) > end)
					goto no_transport;
				next = eh[0];
				__u16 off = ((__u16)eh[2] << 8) | eh[3];
				*frag = (off & 0xfff8) ? FRAG_LATER : (off & 1) ? FRAG_FIRST : FRAG_NONE;
				*frag_id = ((__u32)eh[4] << 24) | ((__u32)eh[5] << 16) | ((__u32)eh[6] << 8) | eh[7];
				h += 8;
				if (*frag == FRAG_LATER)
					break; /* what follows is payload, not headers: the first fragment says the rest */
			} else {
				break;
			}
		}
		if (*frag != FRAG_LATER && (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS || next == IPPROTO_AH || next == IPPROTO_FRAGMENT)) {
			*proto = next;
			goto no_transport; /* more extension headers than walked */
		}
		*proto = next;
		l4 = h;
	} else {
		return -1;
	}
	if (*frag == FRAG_LATER)
		return 0;
	if (*proto == IPPROTO_TCP || *proto == IPPROTO_UDP || *proto == IPPROTO_SCTP) {
		__be16 *ports = l4;
		if ((void *)(ports + 2) > end)
			goto no_transport;
		*sport = bpf_ntohs(ports[0]);
		*port = bpf_ntohs(ports[1]);
		__u8 *flags = (__u8 *)l4 + 13;
		if (*proto == IPPROTO_TCP && (void *)(flags + 1) <= end)
			*tcp = *flags;
	} else if ((*proto == IPPROTO_ICMP && !*v6) || (*proto == IPPROTO_ICMPV6 && *v6)) {
		__u8 *h = l4;
		if ((void *)(h + 8) > end)
			goto no_transport;
		__u8 request = *v6 ? 128 : 8, reply = *v6 ? 129 : 0;
		*icmp = h[0] == request ? ICMP_ECHO_REQUEST : h[0] == reply ? ICMP_ECHO_REPLY : ICMP_OTHER;
		if (*v6 && ((h[0] >= 130 && h[0] <= 137) || h[0] == 143))
			*icmp = ICMP_NDP; /* neighbour discovery and MLD */
		if (*icmp == ICMP_ECHO_REQUEST || *icmp == ICMP_ECHO_REPLY)
			*sport = *port = ((__u16)h[4] << 8) | h[5];
		if (*v6 ? h[0] >= 1 && h[0] <= 4 : h[0] == 3 || h[0] == 11 || h[0] == 12)
			*icmp = quote(h + 8, end, *v6, quoted) == 0 ? ICMP_ERROR : ICMP_OTHER;
	}
	return 0;
no_transport:
	/* An IP packet whose transport header cannot be read here: judged with no port, never let through unasked. */
	*frag = FRAG_NONE;
	*sport = *port = 0;
	*icmp = ICMP_NONE;
	return 1;
}

/*
 * A fragmented datagram is one connection: its first fragment's ports (and ICMP kind) are remembered, and a
 * later fragment takes them. A later fragment whose first was not seen (reordered, or lost) has none: it is
 * judged as it comes with port 0, and never tracked (*untracked).
 */
static __always_inline void fragment_ports(__u32 network, const __u8 *src, const __u8 *dst, int v6, __u8 *proto, int frag, __u32 frag_id,
					   __u16 *sport, __u16 *port, int *icmp, int *untracked)
{
	if (frag == FRAG_NONE)
		return;
	/* IPv4 identifies a datagram by addresses, protocol and id; IPv6 by addresses and id (RFC 8200). */
	struct frag_key k = { .network = network, .id = frag_id, .proto = v6 ? 0 : *proto };
	__builtin_memcpy(k.src, src, 16);
	__builtin_memcpy(k.dst, dst, 16);
	if (frag == FRAG_FIRST) {
		struct frag_ports p = { .sport = *sport, .dport = *port, .icmp = *icmp, .proto = *proto };
		bpf_map_update_elem(&pol_frags, &k, &p, BPF_ANY);
		return;
	}
	struct frag_ports *p = bpf_map_lookup_elem(&pol_frags, &k);
	if (!p) {
		*untracked = 1;
		return;
	}
	*sport = p->sport;
	*port = p->dport;
	*icmp = p->icmp;
	*proto = p->proto;
}

/*
 * The policy's answer for a connection opened from `src` to `dst`:`port`: the source's egress, then the
 * destination's ingress. POLICY_REASON_NONE when allowed, else the side that denies.
 */
static __always_inline int decide(__u32 gen, __u32 network, struct local_endpoint *port_ep, const __u8 *src, const __u8 *dst, int v6, __u8 proto,
				  __u16 port)
{
	gen &= 1;
	struct addr_key a = { .network = network };
	__builtin_memcpy(a.addr, src, 16);
	/* out of a pod's own interface: that pod's egress, whatever source it claims (a `world` one, say) */
	struct local_endpoint *from = port_ep ? port_ep : bpf_map_lookup_elem(&pol_local, &a);
	if (from) {
		__u32 flags = from->flags[gen];
		if ((flags & POLICY_ISOLATED_EGRESS) && !allows(POLICY_EPDIR(from->id, POLICY_EGRESS, POLICY_SLOT(flags, gen)), gen, network, dst, v6, proto, port))
			return POLICY_REASON_EGRESS;
	}
	__builtin_memcpy(a.addr, dst, 16);
	struct local_endpoint *to = bpf_map_lookup_elem(&pol_local, &a);
	if (!to)
		return POLICY_REASON_NONE;
	__u32 flags = to->flags[gen];
	if (flags & POLICY_ISOLATED_INGRESS) {
		__u32 epdir = POLICY_EPDIR(to->id, POLICY_INGRESS, POLICY_SLOT(flags, gen));
		__builtin_memcpy(a.addr, src, 16);
		struct local_endpoint *node = bpf_map_lookup_elem(&pol_local, &a);
		int from_node = node && (node->flags[gen] & POLICY_NODE) && network == 0;
		if (!from_node && !allows(epdir, gen, network, src, v6, proto, port))
			return POLICY_REASON_INGRESS;
	}
	return POLICY_REASON_NONE;
}

/* How long `e` may stay idle (POLICY_CT_*_NS): TCP by its state, the rest alike. */
static __always_inline __u64 lifetime(const struct ct_entry *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return POLICY_CT_LIFETIME_NS;
	if (e->fin_initiator && e->fin_responder)
		return POLICY_CT_TCP_CLOSING_NS;
	if (e->fin_initiator || e->fin_responder)
		return POLICY_CT_TCP_HALF_CLOSED_NS;
	return e->replied ? POLICY_CT_TCP_NS : POLICY_CT_TCP_SYN_NS;
}

/*
 * An ICMP error about a packet of a tracked connection (destination unreachable, packet too big, time
 * exceeded) belongs to that connection and passes as its replies do (path MTU discovery needs it). The quoted
 * packet must be one the error's destination sent; otherwise the error is judged as it comes.
 */
static __always_inline int related(struct ct_key *q, __u32 network, const __u8 *dst, __u64 now)
{
	__u64 a[2], b[2];
	__builtin_memcpy(a, q->src, 16);
	__builtin_memcpy(b, dst, 16);
	if (a[0] != b[0] || a[1] != b[1])
		return 0;
	q->network = network;
	struct ct_entry *e = bpf_map_lookup_elem(&pol_ct, q);
	if (!e) {
		struct ct_key r = { .network = network, .sport = q->dport, .dport = q->sport, .proto = q->proto };
		__builtin_memcpy(r.src, q->dst, 16);
		__builtin_memcpy(r.dst, q->src, 16);
		e = bpf_map_lookup_elem(&pol_ct, &r);
	}
	return e && now - e->seen < lifetime(e, q->proto);
}

/*
 * TCP's state in a tracked connection `e` for a packet with flags `tcp`: each side's FIN is remembered, and an
 * RST counts as both. The connection then lives minutes idle (one FIN: the other side may go on sending), then
 * seconds (both), not hours (lifetime): long enough for what a close still sends (the last ACK, a FIN sent
 * again when it was lost, the two ACKs of a simultaneous close) to pass as the connection's, and its entry is
 * the LRU's to reuse soon after. Forgetting it at the last ACK was tried and dropped: any of those packets,
 * judged anew the other way, could be denied where the initiator is isolated, and a packet that crosses two
 * policy programs on one node (a secondary network's pods, a host veth the stack delivers to) met the second
 * one after the first had forgotten the connection.
 */
static __always_inline void track_tcp(struct ct_entry *e, __u8 tcp, int reply)
{
	if (tcp & TCP_RST) {
		if (!e->fin_initiator)
			e->fin_initiator = 1;
		if (!e->fin_responder)
			e->fin_responder = 1;
	} else if (tcp & TCP_FIN) {
		if (reply && !e->fin_responder)
			e->fin_responder = 1;
		else if (!reply && !e->fin_initiator)
			e->fin_initiator = 1;
	}
}

/*
 * A packet of a known connection (either way: the reply of an allowed connection passes, NP4) passes without
 * the policy being asked again, until the policy changes: then the connection is judged again as its initiator
 * opened it, and cut (forgotten and dropped) if the new policy denies it. A new connection is judged once and
 * remembered when allowed.
 */
static __always_inline int verdict(struct __sk_buff *skb, __u8 way)
{
	__u8 src[16], dst[16], proto;
	__u16 sport, port;
	__u32 frag_id;
	int v6, icmp, frag, untracked;
	struct ct_key quoted = {};
	__u8 tcp;
	int parsed = parse(skb, src, dst, &v6, &proto, &sport, &port, &tcp, &icmp, &frag, &frag_id, &quoted);
	if (parsed < 0)
		return TC_ACT_UNSPEC; /* not IP: not policy's business (NP10) */
	untracked = parsed > 0;
	/*
	 * Neighbour discovery and MLD: never a connection. On a secondary L2 network, pods resolve each other's
	 * global addresses: a neighbour advertisement goes from one global address to another, and a pod isolated
	 * from its peer must still answer and hear it. Anything else from a link-local source or to a multicast
	 * group is judged by its addresses like any packet (`world` unless an ipBlock has them): passing it would
	 * let a pod reach an isolated peer's global address from its fe80:: one.
	 */
	if (icmp == ICMP_NDP)
		return TC_ACT_UNSPEC;
	__u32 network = policy_network, zero = 0;
	fragment_ports(network, src, dst, v6, &proto, frag, frag_id, &sport, &port, &icmp, &untracked);
	struct policy_state *state = bpf_map_lookup_elem(&pol_state, &zero);
	__u32 revision = state ? state->revision : 0;
	__u64 now = bpf_ktime_get_ns();
	__u8 flags = way | (v6 ? POLICY_FLOW_V6 : 0);
	/*
	 * Out of a pod's own interface on a secondary network (pol_ports knows it): judged as that pod's, and its
	 * source must not be another pod's address, on every packet (else a pod could claim a peer's address, be
	 * allowed what the peer is, and ride its tracked connections). A source no pod has passes as `world`.
	 */
	struct local_endpoint *port_ep = NULL;
	if (way == 0 && policy_ports && policy_network != 0) { /* constants: the cluster network's copy (host veths) never pays */
		struct port_key pk = { .netns = bpf_get_netns_cookie(skb), .ifindex = skb->ifindex };
		port_ep = bpf_map_lookup_elem(&pol_ports, &pk);
		if (port_ep) {
			struct addr_key a = { .network = network };
			__builtin_memcpy(a.addr, src, 16);
			struct local_endpoint *owner = bpf_map_lookup_elem(&pol_local, &a);
			struct identity_pair *known = owner ? NULL : bpf_map_lookup_elem(&pol_ipcache, &a);
			if ((owner && owner->id != port_ep->id) || (known && known->id[revision & 1] != POLICY_WORLD)) {
				struct ct_key f = { .network = network, .sport = bpf_htons(sport), .dport = bpf_htons(port), .proto = proto };
				__builtin_memcpy(f.src, src, 16);
				__builtin_memcpy(f.dst, dst, 16);
				return dropped(skb, &f, now, POLICY_REASON_SPOOFED, flags);
			}
		}
	}

	if (icmp == ICMP_ERROR && related(&quoted, network, dst, now))
		return TC_ACT_UNSPEC;
	struct ct_key k = { .network = network, .sport = bpf_htons(sport), .dport = bpf_htons(port), .proto = proto };
	__builtin_memcpy(k.src, src, 16);
	__builtin_memcpy(k.dst, dst, 16);
	/* The connection keyed the other way: built only when the forward lookup misses (a reply, or a new connection). */
	struct ct_key r;
	/* An echo reply is only ever the reply of a request; an echo request never is one. */
	struct ct_entry *e = icmp == ICMP_ECHO_REPLY ? NULL : bpf_map_lookup_elem(&pol_ct, &k);
	int reply = 0;
	if (!e && icmp != ICMP_ECHO_REQUEST) {
		r = (struct ct_key){ .network = network, .sport = bpf_htons(port), .dport = bpf_htons(sport), .proto = proto };
		__builtin_memcpy(r.src, dst, 16);
		__builtin_memcpy(r.dst, src, 16);
		e = bpf_map_lookup_elem(&pol_ct, &r);
		reply = e != NULL;
	}
	/* A SYN on the ports of a connection that is closing opens a new connection (TIME_WAIT reuse): judged anew. */
	if (e && (tcp & (TCP_SYN | TCP_ACK)) == TCP_SYN && (e->fin_initiator | e->fin_responder | e->cut)) {
		bpf_map_delete_elem(&pol_ct, reply ? &r : &k); /* keyed the other way, it would shadow the new one's replies */
		e = NULL;
	}
	if (e && now - e->seen < lifetime(e, proto)) {
		struct ct_key *conn = reply ? &r : &k; /* the connection as its initiator opened it */
		if (e->revision != revision || e->cut) {
			/* the policy changed: judged again as opened; a connection cut stays cut until the next change */
			int why = e->revision == revision ? e->cut : decide(revision, network, NULL, conn->src, conn->dst, v6, proto, bpf_ntohs(conn->dport));
			e->revision = revision;
			if (why != POLICY_REASON_NONE) {
				__u8 first = !e->cut;
				e->cut = why;
				e->seen = now;
				return dropped(skb, conn, now, why, flags | (first ? POLICY_FLOW_CUT : 0));
			}
			e->cut = 0;
		}
		if (tcp)
			track_tcp(e, tcp, reply);
		/* answered: a reply, or the initiator's ACK of one (an entry an older version wrote learns it so) */
		if (!e->replied && (reply || (tcp & (TCP_ACK | TCP_SYN)) == TCP_ACK))
			e->replied = 1;
		/*
		 * At most once a second: a write per packet would bounce the entry's cache line between the CPUs
		 * of the two directions (a second's precision is plenty for the lifetimes).
		 */
		if (now - e->seen > POLICY_CT_TOUCH_NS)
			e->seen = now;
		return TC_ACT_UNSPEC;
	}
	int why = decide(revision, network, port_ep, src, dst, v6, proto, port);
	if (why != POLICY_REASON_NONE)
		return dropped(skb, &k, now, why, flags);
	/* An RST opens nothing (it ends what it belongs to); an allowed FIN of a connection forgotten is tracked closing. */
	if (icmp == ICMP_OTHER || icmp == ICMP_ERROR || icmp == ICMP_ECHO_REPLY || untracked || (tcp & TCP_RST))
		return TC_ACT_UNSPEC; /* allowed as it is; nothing to remember */
	struct ct_entry fresh = { .seen = now, .revision = revision, .fin_initiator = (tcp & TCP_FIN) ? 1 : 0 };
	bpf_map_update_elem(&pol_ct, &k, &fresh, BPF_ANY);
	count(network, POLICY_COUNT_FORWARDED);
	/* reported once a second per client, server, protocol and port: the source port aside, and marked apart from drops */
	struct ct_key server = k;
	server.sport = 0;
	server.pad[0] = POLICY_VERDICT_FORWARDED;
	if (due(&server, now))
		report(skb, &k, now, POLICY_VERDICT_FORWARDED, POLICY_REASON_NONE, flags);
	return TC_ACT_UNSPEC;
}

/* Out of the endpoint: tc ingress of a routed pod's host veth, tc egress of a secondary interface in the pod. */
SEC("tc")
int policy_from_endpoint(struct __sk_buff *skb)
{
	return verdict(skb, 0);
}

/* Into the endpoint: tc egress of a routed pod's host veth, tc ingress of a secondary interface in the pod. */
SEC("tc")
int policy_to_endpoint(struct __sk_buff *skb)
{
	return verdict(skb, POLICY_FLOW_TO_ENDPOINT);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

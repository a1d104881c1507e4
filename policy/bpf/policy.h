/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps of policy.c, shared with policy/bpf-maps.ts (a parity test compares the two). Addresses are 16 bytes,
 * IPv4 as ::ffff:a.b.c.d; LPM keys are big-endian bytes after their prefix length, as the kernel's trie wants.
 */
#ifndef PLEXUS_POLICY_H
#define PLEXUS_POLICY_H

#include <linux/types.h>

#define POLICY_MAX_ADDRESSES 65536
#define POLICY_MAX_CIDRS 65536
#define POLICY_MAX_RULES 262144

#define POLICY_ANY_PEER 0
#define POLICY_WORLD 1

#define POLICY_INGRESS 0
#define POLICY_EGRESS 1

/* local_endpoint.flags */
#define POLICY_ISOLATED_INGRESS 1
#define POLICY_ISOLATED_EGRESS 2
#define POLICY_NODE 4 /* an address of this node, not a pod */
#define POLICY_SLOT_FLIP 8 /* this generation's rules and classes sit in the other generation's slot (see below) */

struct addr_key {
	__u32 network;
	__u8 addr[16];
};

/*
 * Generations: every entry that says what the policy is exists for generation 0 and 1, and the low bit of the
 * revision (pol_state) says which one is live. A writer fills the other generation, then flips the revision
 * with one write: no packet is ever decided by half an old and half a new policy.
 *
 * An endpoint's rules and address classes sit in one of two slots, the last bit of their epdir. A generation's
 * flags say which: the generation's own number, or the other with POLICY_SLOT_FLIP. An endpoint a change does
 * not touch keeps its slot in both generations, so the writer leaves its entries alone; one it changes gets the
 * slot the live generation does not use. (Entries written before the flag existed have it clear: slot ==
 * generation, as they were.)
 */
#define POLICY_EPDIR(id, dir, slot) (((((id) << 1) | (dir)) << 1) | (slot))
#define POLICY_SLOT(flags, gen) ((gen) ^ (((flags) & POLICY_SLOT_FLIP) ? 1 : 0))

struct local_endpoint {
	__u32 id;
	__u32 flags[2]; /* per generation */
};

struct identity_pair {
	__u32 id[2]; /* per generation; POLICY_WORLD where the address is unknown */
};

/*
 * The family is part of the key, so an IPv6 block never holds an IPv4 address (::/0 is not 0.0.0.0/0): family
 * 0 is IPv4 with the address in the last 4 bytes, family 1 is IPv6. The prefix length counts 32 (epdir) + 8
 * (family) + 96 + the IPv4 prefix, or 32 + 8 + the IPv6 prefix.
 */
struct cidr_key {
	__u32 prefixlen;
	__be32 epdir;
	__u8 family;
	__u8 addr[16];
} __attribute__((packed));

struct rule_key {
	__u32 prefixlen; /* 32 (epdir) + 32 peer, + 8 protocol, + up to 16 of the port */
	__be32 epdir;
	__be32 peer;
	__u8 proto;
	__be16 port;
} __attribute__((packed));

/* Connection tracking: one entry per connection, keyed as its initiator sent the first packet. */
#define POLICY_MAX_CONNECTIONS 262144
/*
 * How long a connection may stay idle before it is forgotten (and its next packet judged anew). TCP follows its
 * state, as the kernel's conntrack and Cilium's tracker do: an open connection is kept for hours, one whose
 * first packet was never answered and one closing (a FIN seen) for moments. Other protocols have no state.
 */
#define POLICY_CT_LIFETIME_NS (300ULL * 1000000000ULL) /* UDP, SCTP, ICMP echo */
#define POLICY_CT_TCP_NS (21600ULL * 1000000000ULL) /* TCP, answered: 6 h */
#define POLICY_CT_TCP_SYN_NS (60ULL * 1000000000ULL) /* TCP, never answered yet */
#define POLICY_CT_TCP_HALF_CLOSED_NS (120ULL * 1000000000ULL) /* TCP, one side sent its FIN (the other may go on) */
#define POLICY_CT_TCP_CLOSING_NS (10ULL * 1000000000ULL) /* TCP, both sides sent their FIN, or an RST came */
#define POLICY_CT_TOUCH_NS (1000000000ULL) /* a connection's last-seen time is refreshed at most this often */

struct ct_key {
	__u32 network;
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * A datagram in fragments: the ports its first fragment carried, so the later ones (which carry none) are
 * judged as the same connection. Keyed by the addresses, protocol and the IP identification.
 */
#define POLICY_MAX_FRAGMENTED 8192
struct frag_key {
	__u32 network;
	__u8 src[16];
	__u8 dst[16];
	__u32 id; /* IPv4: the 16-bit identification; IPv6: the fragment header's 32 bits */
	__u8 proto; /* IPv4's protocol; 0 for IPv6 */
	__u8 pad[3];
};

struct frag_ports {
	__u16 sport; /* host order, as parse() reads them */
	__u16 dport;
	__u8 icmp; /* the ICMP kind of the first fragment (an echo's request or reply) */
	__u8 proto; /* the transport protocol (an IPv6 later fragment names only what follows its fragment header) */
	__u8 pad[2];
};

/*
 * A pod's own interface on a secondary network (the programs sit inside the pod), named the only way that is
 * unique on the node: its netns's cookie and its ifindex there. The value is the endpoint behind it (an
 * endpoint's id and flags, as pol_local has them), so a packet out of it is judged as that endpoint's, and
 * must not carry another pod's address.
 */
#define POLICY_MAX_PORTS 65536
struct port_key {
	__u64 netns;
	__u32 ifindex;
	__u32 pad;
};

struct ct_entry {
	__u64 seen; /* bpf_ktime_get_ns() of the last packet */
	__u32 revision; /* the policy revision the connection was last judged under */
	/*
	 * TCP state, one byte each: the two ways of a connection may be handled on two CPUs at once, and a byte
	 * written never tears another (bits of one word set with plain writes could lose each other).
	 */
	__u8 replied; /* a packet went the reply way */
	__u8 fin_initiator; /* the initiator sent a FIN */
	__u8 fin_responder; /* the responder sent a FIN */
	/*
	 * A policy change cut it: the reason (POLICY_REASON_*). Kept, not forgotten, so its packets either way stay
	 * dropped: forgotten, the responder's next packet (a retransmission) would open it anew the other way, and
	 * the initiator's would then pass as its replies. Judged again at the next change; a SYN on its ports opens
	 * a new connection.
	 */
	__u8 cut;
};

/* Flow events (pol_events, a ring buffer): a new connection allowed, or a packet dropped (rate-limited per flow). */
#define POLICY_VERDICT_FORWARDED 1
#define POLICY_VERDICT_DROPPED 2

/* Why a packet was dropped, or 0; never renumbered (flow events and counters carry it). */
#define POLICY_REASON_NONE 0
#define POLICY_REASON_EGRESS 1 /* the source's egress policy denies the connection */
#define POLICY_REASON_INGRESS 2 /* the destination's ingress policy denies it */
#define POLICY_REASON_SPOOFED 3 /* from a pod's interface, with another pod's address as its source */

/* flow_event.flags */
#define POLICY_FLOW_V6 1
#define POLICY_FLOW_TO_ENDPOINT 2 /* seen on the way into the endpoint (else on the way out of it) */
#define POLICY_FLOW_CUT 4 /* a tracked connection the changed policy now denies */

#define POLICY_EVENTS_BYTES (1 << 20)
#define POLICY_DROP_REPORT_NS 1000000000ULL /* at most one event a second per dropped flow, or per allowed client-server-port */

struct flow_event {
	__u64 time; /* bpf_ktime_get_ns() */
	__u8 src[16];
	__u8 dst[16];
	__u32 ifindex;
	__u32 network;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 verdict;
	__u8 reason;
	__u8 flags;
	__u32 len;
	__u32 pad;
};

/* pol_counters (per CPU), by network and counter. */
#define POLICY_COUNT_FORWARDED 0 /* new connections allowed */
#define POLICY_COUNT_DROPPED_EGRESS 1 /* packets dropped, per reason */
#define POLICY_COUNT_DROPPED_INGRESS 2
#define POLICY_COUNT_CUT 3 /* tracked connections cut by a policy change */
#define POLICY_COUNT_EVENTS_LOST 4 /* flow events the ring buffer had no room for */
#define POLICY_COUNT_DROPPED_SPOOFED 5

struct counter_key {
	__u32 network;
	__u32 counter;
};

/* pol_state[0]: the revision of the policy in the maps, bumped by every write; its low bit is the live generation. */
struct policy_state {
	__u32 revision;
	__u32 pad;
};

#endif

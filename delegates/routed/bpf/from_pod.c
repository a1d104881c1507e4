// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * from_pod: attached as a direct-action cls_bpf filter on tc INGRESS of the host end of every pod veth, so it
 * sees every frame the pod sends, before the node's stack does.
 *
 *  1. The source address must be one of the pod's own (the endpoints map says which host veth it lives
 *     behind): anything else is dropped and counted (ROUTED_DROP_SPOOFED). Link-local and unspecified IPv6
 *     sources (neighbour discovery, MLD) are left to the stack, which never forwards them.
 *  2. A destination that is another pod on this node is delivered straight into that pod's netns with
 *     bpf_redirect_peer: no second pass through the stack, no backlog queue.
 *  3. Anything else is routed with bpf_fib_lookup (the node's own routing table, so node routes to other
 *     nodes' blocks apply) and sent with bpf_redirect, or bpf_redirect_neigh when the next hop's MAC is not
 *     known yet. Whatever the FIB cannot forward (a local address, no route, a packet too big for the egress
 *     MTU) goes to the stack, which answers with the right ICMP error.
 *
 * Forwarding decrements TTL / hop limit like the stack would; a packet that would expire goes to the stack
 * so the sender gets its ICMP time-exceeded.
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

#include "routed.h"

#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ROUTED_MAX_ENDPOINTS);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, ROUTED_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct endpoint_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoint_stats SEC(".maps");

#define IP_TTL_OFF (ETH_HLEN + offsetof(struct iphdr, ttl))
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP6_HOPLIMIT_OFF (ETH_HLEN + offsetof(struct ipv6hdr, hop_limit))

static __always_inline int drop(struct endpoint_stats *st, struct __sk_buff *skb, enum routed_drop_reason why)
{
	if (st) {
		if (why == ROUTED_DROP_SPOOFED) {
			st->spoofed_packets++;
			st->spoofed_bytes += skb->len;
		} else {
			st->malformed++;
		}
	}
	return TC_ACT_SHOT;
}

static __always_inline int pass(struct endpoint_stats *st)
{
	if (st)
		st->passed++;
	return TC_ACT_OK;
}

/* Is `ep` the endpoint behind the veth this frame came in on? */
static __always_inline int owns(const struct endpoint *ep, const struct __sk_buff *skb)
{
	return ep && ep->ifindex == skb->ifindex;
}

/* TTL - 1 with the IPv4 header checksum fixed incrementally (TTL shares a 16-bit word with the protocol). */
static __always_inline int dec_ttl_v4(struct __sk_buff *skb, __u8 ttl, __u8 proto)
{
	__be16 old = bpf_htons(((__u16)ttl << 8) | proto);
	__be16 new = bpf_htons(((__u16)(ttl - 1) << 8) | proto);
	__u8 nttl = ttl - 1;

	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(__u16)))
		return -1;
	return bpf_skb_store_bytes(skb, IP_TTL_OFF, &nttl, 1, 0);
}

static __always_inline int dec_hoplimit_v6(struct __sk_buff *skb, __u8 hops)
{
	__u8 n = hops - 1;

	return bpf_skb_store_bytes(skb, IP6_HOPLIMIT_OFF, &n, 1, 0);
}

static __always_inline int set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	if (bpf_skb_store_bytes(skb, 0, dst, ETH_ALEN, 0))
		return -1;
	return bpf_skb_store_bytes(skb, ETH_ALEN, src, ETH_ALEN, 0);
}

/* 2. Straight into a local pod's netns. The TTL was already decremented. */
static __always_inline int to_local_pod(struct __sk_buff *skb, const struct endpoint *dst, struct endpoint_stats *st)
{
	__u8 pod_mac[ETH_ALEN], host_mac[ETH_ALEN];

	/* Copy first: map values must not be passed to helpers that may sleep or fault on them. */
	__builtin_memcpy(pod_mac, dst->pod_mac, ETH_ALEN);
	__builtin_memcpy(host_mac, dst->host_mac, ETH_ALEN);
	if (set_macs(skb, pod_mac, host_mac))
		return pass(st);
	if (st)
		st->redirected++;
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* 3. Routed by the node's FIB. `fib` was filled by the caller's bpf_fib_lookup. */
static __always_inline int to_fib(struct __sk_buff *skb, struct bpf_fib_lookup *fib, long rc, struct endpoint_stats *st)
{
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (set_macs(skb, fib->dmac, fib->smac))
			return pass(st);
		if (st)
			st->routed++;
		return bpf_redirect(fib->ifindex, 0);
	}
	/* NO_NEIGH: the route is fine but the next hop's MAC is unknown; the neighbour subsystem resolves it. */
	struct bpf_redir_neigh nh = {};

	if (fib->family == AF_INET) {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib->ipv4_dst; /* after the lookup: the next hop */
	} else {
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, sizeof(nh.ipv6_nh));
	}
	if (st)
		st->routed++;
	return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
}

static __always_inline int forwardable(long rc)
{
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
}

static __always_inline int from_pod_v4(struct __sk_buff *skb, struct endpoint_stats *st)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct endpoint_key key = {.family = ROUTED_FAMILY_V4};

	if ((void *)(ip + 1) > data_end)
		return drop(st, skb, ROUTED_DROP_MALFORMED);
	__u32 saddr = ip->saddr, daddr = ip->daddr;
	__u8 ttl = ip->ttl, proto = ip->protocol, tos = ip->tos;

	/* 1. */
	__builtin_memcpy(key.addr, &saddr, 4);
	if (!owns(bpf_map_lookup_elem(&endpoints, &key), skb))
		return drop(st, skb, ROUTED_DROP_SPOOFED);
	if (ttl <= 1)
		return pass(st);

	/* 2. */
	__builtin_memcpy(key.addr, &daddr, 4);
	struct endpoint *dst = bpf_map_lookup_elem(&endpoints, &key);
	if (dst) {
		if (dec_ttl_v4(skb, ttl, proto))
			return pass(st);
		return to_local_pod(skb, dst, st);
	}

	/* 3. tot_len 0: the kernel checks the skb itself against the MTU, which is right for GSO packets. */
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.tos = tos,
		.l4_protocol = proto,
		.ifindex = skb->ifindex,
		.ipv4_src = saddr,
		.ipv4_dst = daddr,
	};
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (!forwardable(rc))
		return pass(st);
	if (dec_ttl_v4(skb, ttl, proto))
		return pass(st);
	return to_fib(skb, &fib, rc, st);
}

/* fe80::/10 and :: : link-local traffic between the pod and its host end, never forwarded by the stack. */
static __always_inline int link_scoped_v6(const struct in6_addr *a)
{
	if ((a->in6_u.u6_addr8[0] == 0xfe) && ((a->in6_u.u6_addr8[1] & 0xc0) == 0x80))
		return 1;
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] | a->in6_u.u6_addr32[2] | a->in6_u.u6_addr32[3]) == 0;
}

static __always_inline int from_pod_v6(struct __sk_buff *skb, struct endpoint_stats *st)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct endpoint_key key = {.family = ROUTED_FAMILY_V6};

	if ((void *)(ip6 + 1) > data_end)
		return drop(st, skb, ROUTED_DROP_MALFORMED);
	struct in6_addr saddr = ip6->saddr, daddr = ip6->daddr;
	__u8 hops = ip6->hop_limit, nexthdr = ip6->nexthdr;
	__be32 flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);

	/* 1. Link-scoped sources, and anything to multicast (ND, MLD), are the stack's business. */
	if (link_scoped_v6(&saddr) || daddr.in6_u.u6_addr8[0] == 0xff)
		return pass(st);
	__builtin_memcpy(key.addr, &saddr, 16);
	if (!owns(bpf_map_lookup_elem(&endpoints, &key), skb))
		return drop(st, skb, ROUTED_DROP_SPOOFED);
	if (hops <= 1 || link_scoped_v6(&daddr))
		return pass(st);

	/* 2. */
	__builtin_memcpy(key.addr, &daddr, 16);
	struct endpoint *dst = bpf_map_lookup_elem(&endpoints, &key);
	if (dst) {
		if (dec_hoplimit_v6(skb, hops))
			return pass(st);
		return to_local_pod(skb, dst, st);
	}

	/* 3. */
	struct bpf_fib_lookup fib = {
		.family = AF_INET6,
		.flowinfo = flowinfo,
		.l4_protocol = nexthdr,
		.ifindex = skb->ifindex,
	};
	__builtin_memcpy(fib.ipv6_src, &saddr, 16);
	__builtin_memcpy(fib.ipv6_dst, &daddr, 16);
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (!forwardable(rc))
		return pass(st);
	if (dec_hoplimit_v6(skb, hops))
		return pass(st);
	return to_fib(skb, &fib, rc, st);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_stats *st = bpf_map_lookup_elem(&endpoint_stats, &ifindex);

	if (skb->protocol == bpf_htons(ETH_P_IP))
		return from_pod_v4(skb, st);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from_pod_v6(skb, st);
	/* ARP and anything else: the stack decides (the pod's gateway has a permanent neighbour entry anyway). */
	return pass(st);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

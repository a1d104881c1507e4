/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header-only packet parsing helpers for tc programs (direct packet access). */
#ifndef PLEXUS_PARSE_H
#define PLEXUS_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct l3 {
	__u16 eth_proto;  /* host order: ETH_P_IP, ETH_P_IPV6, anything else */
	__u8 proto;       /* IPv4 protocol / IPv6 next header */
	__be32 saddr_v4;  /* IPv4 only */
};

enum parse_result {
	PARSE_IP = 0,
	PARSE_NOT_IP = 1,
	PARSE_MALFORMED = 2,
};

/*
 * Reads the Ethernet and IP headers of skb into *out. Every access is checked against data_end first: the
 * verifier rejects a load it cannot prove is inside the packet.
 */
static __always_inline enum parse_result parse_l3(struct __sk_buff *skb, struct l3 *out)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	out->eth_proto = bpf_ntohs(eth->h_proto);
	if (out->eth_proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return PARSE_MALFORMED;
		out->proto = ip->protocol;
		out->saddr_v4 = ip->saddr;
		return PARSE_IP;
	}
	if (out->eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return PARSE_MALFORMED;
		out->proto = ip6->nexthdr;
		return PARSE_IP;
	}
	return PARSE_NOT_IP;
}

#endif

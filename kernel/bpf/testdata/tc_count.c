// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_count: the kernel layer's test program (kernel/bpf tests load it; the product never does).
 *
 * Attaches to: tc clsact ingress or egress of any Ethernet netdev, cls_bpf in direct-action mode
 * (section "tc"). Counts IPv4/IPv6 packets and bytes per protocol in proto_stats, drops IPv4 packets whose
 * source address is in deny_v4 (counting them there), and counts every verdict per CPU.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "tc_count.h"

/* Pinned by name under the pin root the loader gives, so counters survive the loader's restart. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TC_COUNT_PROTOS);
	__type(key, __u32);
	__type(value, struct proto_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct deny_key);
	__type(value, struct deny_value);
} deny_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_COUNT_VERDICTS);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 v, int action)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);

	/* Per-CPU slot: no other CPU writes it, a plain increment is enough. */
	if (n)
		*n += 1;
	return action;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	struct l3 l3 = {};
	enum parse_result r = parse_l3(skb, &l3);
	struct proto_stats *stats;
	__u32 proto;

	if (r == PARSE_NOT_IP)
		return verdict(TC_COUNT_NOT_IP, TC_ACT_OK);
	if (r == PARSE_MALFORMED)
		return verdict(TC_COUNT_MALFORMED, TC_ACT_OK);

	proto = l3.proto;
	stats = bpf_map_lookup_elem(&proto_stats, &proto);
	if (stats) {
		/* Shared across CPUs: atomic adds. */
		__sync_fetch_and_add(&stats->packets, 1);
		__sync_fetch_and_add(&stats->bytes, skb->len);
	}

	if (l3.eth_proto == ETH_P_IP) {
		struct deny_key key = { .addr = l3.saddr_v4 };
		struct deny_value *deny = bpf_map_lookup_elem(&deny_v4, &key);

		if (deny) {
			__sync_fetch_and_add(&deny->drops, 1);
			deny->last_proto = l3.proto;
			return verdict(TC_COUNT_DROP_DENIED, TC_ACT_SHOT);
		}
	}
	return verdict(TC_COUNT_PASS, TC_ACT_OK);
}

char _license[] SEC("license") = "Dual BSD/GPL";

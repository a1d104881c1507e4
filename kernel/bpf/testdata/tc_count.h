/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tc_count: what the BPF program and TypeScript share. The structs are the maps' keys and values; the
 * verdict numbers index the verdicts map and are never renumbered. kernel/bpf/struct-parity.test.ts compiles
 * this header and checks every size, offset and number against the codecs in kernel/bpf/testdata/tc-count.ts.
 */
#ifndef PLEXUS_TC_COUNT_H
#define PLEXUS_TC_COUNT_H

#include <linux/types.h>

/* proto_stats value, indexed by the IPv4 protocol / IPv6 next header number (0-255). */
struct proto_stats {
	__u64 packets;
	__u64 bytes;
};

/* deny_v4 key: an IPv4 source address, network byte order. */
struct deny_key {
	__be32 addr;
};

/* deny_v4 value: how many packets from that source were dropped. */
struct deny_value {
	__u64 drops;
	__u32 last_proto;
	__u32 _pad;
};

/* What happened to a packet: the verdicts map (per CPU) counts each. */
enum tc_count_verdict {
	TC_COUNT_PASS = 0,      /* IPv4 or IPv6, counted, passed on */
	TC_COUNT_DROP_DENIED = 1, /* IPv4 source in deny_v4 */
	TC_COUNT_NOT_IP = 2,    /* neither IPv4 nor IPv6 (ARP...), passed on uncounted */
	TC_COUNT_MALFORMED = 3, /* too short for the header it claims, passed on for the stack to judge */
	TC_COUNT_VERDICTS = 4,
};

#define TC_COUNT_PROTOS 256

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * plexus-routed: what the datapath programs and TypeScript share. The structs are the pinned maps' keys and
 * values, declared once here beside the maps (delegates/routed/bpf-maps.ts mirrors them; the parity test
 * compiles this header and compares every size and offset). Drop reasons and counters are never renumbered.
 */
#ifndef PLEXUS_ROUTED_H
#define PLEXUS_ROUTED_H

#include <linux/types.h>

#define ROUTED_FAMILY_V4 4
#define ROUTED_FAMILY_V6 6

/* endpoints key: one address of a local pod. IPv4 uses the first 4 bytes of addr, the rest are zero. */
struct endpoint_key {
	__u32 family; /* ROUTED_FAMILY_V4 or ROUTED_FAMILY_V6 */
	__u8 addr[16];
};

/* endpoints value: where that pod is. */
struct endpoint {
	__u32 ifindex;     /* the host end of the pod's veth, in the node's netns */
	__u32 flags;       /* reserved, 0 */
	__u8 pod_mac[6];   /* the pod end's MAC: destination MAC of frames delivered to the pod */
	__u8 host_mac[6];  /* the host end's MAC: source MAC of frames delivered to the pod */
};

/*
 * endpoint_stats value (per CPU), keyed by the host end's ifindex. The daemon creates the entry when the pod
 * is attached; the program only counts into entries that exist.
 */
struct endpoint_stats {
	__u64 redirected;      /* delivered straight into a local pod (bpf_redirect_peer) */
	__u64 routed;          /* sent out by bpf_fib_lookup + bpf_redirect / bpf_redirect_neigh */
	__u64 passed;          /* handed to the kernel's own stack (local destination, no route, MTU...) */
	__u64 spoofed_packets; /* ROUTED_DROP_SPOOFED */
	__u64 spoofed_bytes;
	__u64 malformed;       /* ROUTED_DROP_MALFORMED */
};

/* Why from_pod drops a packet; never renumbered. */
enum routed_drop_reason {
	ROUTED_DROP_NONE = 0,
	ROUTED_DROP_SPOOFED = 1,   /* the source address is not one of the pod's own */
	ROUTED_DROP_MALFORMED = 2, /* an IP packet too short for its header */
};

#define ROUTED_MAX_ENDPOINTS 65536

#endif

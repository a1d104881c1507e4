/*
 * MultiNetworkPolicy in the DPDK engine: the same compiled policy as the eBPF datapath (policy/compile.ts,
 * policy/bpf/policy.c), decided in the poll loop for every IP packet of a network some policy governs, before
 * it is forwarded. plexusd compiles; plexus-dataplane's Node thread turns the compiled form into the blob below
 * (dpdk-native/engine/policy-blob.ts, which a test keeps in step with these records); px_policy_build makes the
 * loop's read-only tables of it, and the engine publishes them with its port table (engine.c).
 */
#ifndef PLEXUS_ENGINE_POLICY_H
#define PLEXUS_ENGINE_POLICY_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;

#define PX_POL_MAGIC 0x4c505850u /* "PXPL" in little-endian bytes */
#define PX_POL_VERSION 2
#define PX_POL_MAX_NETWORKS 256 /* engine network ids are below this */

#define PX_POL_ANY_PEER 0
#define PX_POL_WORLD 1
#define PX_POL_INGRESS 0
#define PX_POL_EGRESS 1
#define PX_POL_ISOLATED_INGRESS 1
#define PX_POL_ISOLATED_EGRESS 2

/*
 * The blob, little-endian, records packed one after another in this order (no padding between them):
 *   header    magic u32, version u32, then the counts: networks, ports, locals, ipcache, cidrs, rules (u32 each)
 *   networks  u32 engine network id: the networks whose packets are judged
 *   ports     endpoint id u32, flags u32, port name[64] (NUL-padded)    an endpoint's port on this engine
 *   locals    network u32, addr[16], endpoint id u32, flags u32          an endpoint's address on this engine
 *   ipcache   network u32, addr[16], identity u32                         any pod's address (this node or not)
 *   cidrs     epdir u32, family u8 (0 IPv4, 1 IPv6), prefix u8, addr[16], class u32
 *   rules     epdir u32, len u8 (of the 56-bit key), key u64 ([peer 32 | proto 8 | port 16])
 * Addresses are 16 bytes, IPv4 as ::ffff:a.b.c.d; epdir = endpoint id * 2 + direction.
 */
#define PX_POL_HEADER_LEN 32
#define PX_POL_NETWORK_LEN 4
#define PX_POL_PORT_LEN 72
#define PX_POL_PORT_NAME 64
#define PX_POL_MAX_ENDPOINT 65535 /* endpoint ids are at most this */
#define PX_POL_NO_ENDPOINT 65535 /* the id of a pod's port no policy selects: its source is checked, nothing else */
#define PX_POL_LOCAL_LEN 28
#define PX_POL_IDENT_LEN 24
#define PX_POL_CIDR_LEN 26
#define PX_POL_RULE_LEN 13

/* Why a packet was dropped (flow events, counters); the eBPF datapath's numbers (policy/bpf/policy.h). */
#define PX_POL_REASON_NONE 0
#define PX_POL_REASON_EGRESS 1
#define PX_POL_REASON_INGRESS 2
#define PX_POL_REASON_SPOOFED 3 /* a source its port may not claim (another pod's address), or a frame tagged too deep */

#define PX_POL_VERDICT_FORWARDED 1
#define PX_POL_VERDICT_DROPPED 2
#define PX_POL_FLOW_V6 1
#define PX_POL_FLOW_CUT 4

struct px_policy_counters {
	uint64_t forwarded; /* new connections allowed */
	uint64_t dropped_egress;
	uint64_t dropped_ingress;
	uint64_t dropped_spoofed;
	uint64_t cut; /* tracked connections a policy change denies */
	uint64_t events_lost; /* flow events the ring had no room for */
};

struct px_flow_event {
	uint64_t time_ns; /* CLOCK_MONOTONIC, as bpf_ktime_get_ns */
	uint32_t network;
	uint32_t len;
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport;
	uint16_t dport;
	uint8_t proto;
	uint8_t verdict;
	uint8_t reason;
	uint8_t flags;
};

struct px_policy;

/* The endpoint behind one of the engine's ports (px_policy_endpoint_of). */
struct px_policy_endpoint {
	uint32_t id;
	uint32_t flags;
};

/* Builds the loop's tables from a blob (control side); 0 or a negative errno with the reason in *why. */
int px_policy_build(const uint8_t *blob, size_t len, struct px_policy **out, char *why, size_t why_len);
void px_policy_free(struct px_policy *p);

/* Whether packets of `network` are judged. */
int px_policy_governs(const struct px_policy *p, uint32_t network);

/*
 * What one burst remembers: the last flow that passed as a tracked connection. A burst is mostly one flow, so its
 * later packets cost a parse and a compare, not the source check and connection lookup again. Zeroed by the loop
 * before each burst (a burst comes from one port, under one policy).
 */
struct px_policy_memo {
	uint8_t valid;
	uint8_t flow[44];
};

/* Whether the port named `port` is an endpoint's (its policy is the endpoint's, whatever source a packet claims). */
int px_policy_endpoint_of(const struct px_policy *p, const char *port, struct px_policy_endpoint *out);

/*
 * The poll loop's verdict on one frame of `network` (the loop's own connection tracking is updated): 0 to
 * forward it, else the reason it is dropped (counted and reported). `from` is the endpoint of the port it came
 * in on (NULL: an uplink or a port of no endpoint). `now` is the loop's TSC.
 */
int px_policy_judge(const struct px_policy *p, uint32_t network, const struct px_policy_endpoint *from, const struct rte_mbuf *m, uint64_t now,
		    struct px_policy_memo *memo);

/* Control side: a network's counters (they only grow) and the flow events the loop left (up to `max`). */
void px_policy_counters_of(uint32_t network, struct px_policy_counters *out);
int px_policy_events(struct px_flow_event *out, int max);

#endif

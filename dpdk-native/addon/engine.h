/*
 * The plexus-dataplane forwarding engine: DPDK ports (vhost-user, memif, af_packet/af_xdp uplinks) hot-plugged
 * as vdevs, grouped into L2 networks, forwarded by one poll loop on an EAL worker lcore. The control side
 * (the EAL main lcore, which is the Node thread) only adds and removes ports and reads counters; it never
 * touches the datapath's state. See engine.c for how a change reaches the poll loop.
 */
#ifndef PLEXUS_ENGINE_H
#define PLEXUS_ENGINE_H

#include <stdint.h>
#include <stddef.h>

#define PX_MAX_PORTS 64
#define PX_MAX_NETWORKS 64
#define PX_NAME_LEN 64
#define PX_MAX_QUEUES 16 /* queue pairs per port */

struct px_port_counters {
	uint64_t rx_packets;
	uint64_t rx_bytes;
	uint64_t tx_packets;
	uint64_t tx_bytes;
	/* packets the port's transmit queue did not take (peer gone, ring full) */
	uint64_t tx_dropped;
	/* copies this port received because the destination was unknown, broadcast or multicast */
	uint64_t flooded;
	/* bursts the fault guard abandoned (a memif peer's memory torn down under the loop; engine.c) */
	uint64_t faults;
	/* packets MultiNetworkPolicy denied (policy.c) */
	uint64_t policy_dropped;
};

struct px_port_info {
	char name[PX_NAME_LEN];
	uint16_t port_id;
	uint32_t network;
	uint16_t queues;
	int link_up;
	struct px_port_counters counters;
};

struct px_engine_stats {
	uint64_t loops;
	uint64_t idle_sleeps;
	uint64_t learned;
	uint64_t packets;     /* received, all ports */
	uint64_t busy_cycles; /* TSC cycles of loop iterations that received packets */
	uint64_t tsc_hz;
	uint32_t ports;
	uint32_t sleep_us;
};

/* Every function returns 0 or a negative errno and, on failure, leaves a message in px_last_error(). */
const char *px_last_error(void);

/* rte_eal_init with `argv`, a packet pool of `mbufs` buffers, and the poll loop launched on the first worker lcore. */
int px_init(int argc, char **argv, unsigned mbufs, unsigned max_sleep_us);

/*
 * Hot-plugs `devargs` (e.g. "net_vhost_ab12,iface=/run/x.sock,client=1,queues=2") as port `name` of `network`,
 * with `queues` queue pairs: the loop reads every receive queue, and spreads what it sends to the port over its
 * transmit queues by flow (addresses and ports), so one flow keeps its order.
 */
int px_port_add(const char *name, const char *devargs, uint32_t network, uint16_t queues);

/* Takes the port out of the poll loop (waiting until the loop has let go of it), stops, closes and unplugs it. */
int px_port_remove(const char *name);

/*
 * Replaces the MultiNetworkPolicy with the one `blob` describes (policy.h; an empty blob: none), published with
 * the port table in one store: a packet is decided by the old policy or by the new, never by a mix.
 */
int px_policy_set(const uint8_t *blob, size_t len);

/* Copies up to `max` ports into `out`; returns how many there are. */
int px_ports(struct px_port_info *out, int max);

void px_stats(struct px_engine_stats *out);

/* Stops the poll loop and every port; the EAL itself stays (it cannot be initialised twice). */
void px_shutdown(void);

#endif

/*
 * The forwarding engine (engine.h). Two threads, and a strict split between them:
 *
 * - The poll loop (an EAL worker lcore) owns the datapath: it reads every port of the current port table in
 *   bursts of 32, learns source MACs per network, and forwards each packet to the port that owns its
 *   destination, or floods it (a refcount per extra copy, no copying) to every other port of its network
 *   when the destination is unknown, broadcast or multicast. Transmits are gathered per output port and sent
 *   as bursts. No allocation, no lock, no system call while packets flow. With nothing to read it backs off:
 *   a few thousand empty polls, then sleeps doubling from 1 µs up to `max_sleep_us`, so an idle engine costs
 *   a small fraction of a core and the first packet after a pause waits at most that long.
 * - The control side (the EAL main lcore: the Node thread of plexus-dataplane) adds and removes ports. It never
 *   changes a table the loop may be reading: it builds a new table, publishes it with one atomic store, and
 *   before it frees the old one (or stops a removed port) waits until the loop has finished two iterations
 *   (an epoch counter the loop bumps), so the loop can no longer hold a pointer into it. That wait is bounded
 *   by one sleep of the loop.
 *
 * MultiNetworkPolicy (policy.c) is decided in the loop, before a packet of a network some policy governs is
 * forwarded; its tables are published inside the port table, so a change of either is one store.
 *
 * The forwarding database lives in the loop alone: entries name a port by DPDK port id and generation (a
 * removed port's id may be reused), and expire after PX_FDB_AGE_S seconds without traffic.
 *
 * Bursts on memif ports run under a fault guard. DPDK 22.11's memif PMD unmaps a departed peer's shared
 * memory in the EAL interrupt thread while the poll loop may be in the middle of reading its rings: the loop
 * then takes a SIGSEGV (or SIGBUS) that is the PMD's, not ours. Inside a guarded burst such a fault abandons
 * the burst (its buffers are left to leak: the PMD may have taken some of them), parks the port for
 * PX_PARK_MS while the teardown finishes, and counts it; a fault anywhere else is handed to the handler that
 * was there before (Node's), or kills the process as it always would.
 */
#include "engine.h"
#include "policy.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define PX_BURST 32
#define PX_RING 1024
#define PX_FDB_SIZE 8192 /* power of two */
#define PX_FDB_PROBE 16
#define PX_FDB_AGE_S 300
#define PX_SPIN_BEFORE_SLEEP 2048
#define PX_PARK_MS 100

struct px_port {
	char name[PX_NAME_LEN];
	char device[RTE_DEV_NAME_MAX_LEN];
	uint16_t port_id;
	uint16_t nq; /* queue pairs */
	uint32_t network;
	uint32_t gen;
	int guarded; /* bursts run under the fault guard (memif) */
	uint64_t parked_until; /* TSC: after a fault, the loop leaves the port alone until then */
	struct px_port_counters c; /* written by the loop only */
};

struct px_table {
	int n;
	struct px_port *ports[PX_MAX_PORTS];
	/* port id -> index in ports[], -1 when the port is not in this table */
	int16_t slot_of[RTE_MAX_ETHPORTS];
	/* MultiNetworkPolicy (policy.c): published with the ports, so the loop sees one consistent pair; may be NULL */
	struct px_policy *policy;
	/* per slot, the endpoint behind the port (policy.c judges a packet's egress by it); has_ep[slot] 0: none */
	struct px_policy_endpoint ep[PX_MAX_PORTS];
	uint8_t has_ep[PX_MAX_PORTS];
};

struct px_fdb_entry {
	uint64_t key; /* MAC in the low 48 bits, network + 1 above (0: empty) */
	uint64_t seen; /* TSC */
	uint32_t gen;
	uint16_t port_id;
};

static char last_error[256];
static struct rte_mempool *pool;
static struct px_table *current;
static uint64_t epoch;
static volatile int running;
static unsigned worker_lcore = RTE_MAX_LCORE;
static uint32_t next_gen = 1;
static unsigned max_sleep;
static struct px_engine_stats stats;
static struct px_fdb_entry fdb[PX_FDB_SIZE];

static int fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err < 0 ? err : -err;
}

const char *px_last_error(void)
{
	return last_error;
}

/* ---- the fault guard (see the top of this file) ------------------------------------------------------- */

static __thread sigjmp_buf guard_jmp;
static __thread volatile sig_atomic_t in_guard;
static struct sigaction prev_segv, prev_bus;

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
	if (in_guard) {
		in_guard = 0;
		siglongjmp(guard_jmp, 1); /* SA_NODEFER: the signal is not blocked, so no mask to restore */
	}
	struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;
	if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
		prev->sa_sigaction(sig, si, ctx);
		return;
	}
	if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
		return;
	}
	/* The default action: put it back; the faulting instruction runs again and the process dies of it. */
	sigaction(sig, prev, NULL);
}

static int install_guard(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &prev_segv) < 0 || sigaction(SIGBUS, &sa, &prev_bus) < 0)
		return fail(-errno, "install the fault guard: %s", strerror(errno));
	return 0;
}

static void parked(struct px_port *p)
{
	p->c.faults++;
	p->parked_until = rte_rdtsc() + rte_get_tsc_hz() / 1000 * PX_PARK_MS;
}

static uint16_t rx_burst(struct px_port *in, uint16_t qi, struct rte_mbuf **rx)
{
	if (!in->guarded)
		return rte_eth_rx_burst(in->port_id, qi, rx, PX_BURST);
	if (sigsetjmp(guard_jmp, 0)) {
		parked(in);
		return 0;
	}
	in_guard = 1;
	uint16_t nb = rte_eth_rx_burst(in->port_id, qi, rx, PX_BURST);
	in_guard = 0;
	return nb;
}

/* How many of `n` buffers the port took. On a fault (counted in c.faults) none is known to be ours any more. */
static uint16_t tx_burst(struct px_port *out, uint16_t qi, struct rte_mbuf **m, uint16_t n)
{
	if (!out->guarded)
		return rte_eth_tx_burst(out->port_id, qi, m, n);
	if (sigsetjmp(guard_jmp, 0)) {
		parked(out);
		out->c.tx_dropped += n;
		return 0;
	}
	in_guard = 1;
	uint16_t sent = rte_eth_tx_burst(out->port_id, qi, m, n);
	in_guard = 0;
	return sent;
}

/* ---- the poll loop ---------------------------------------------------------------------------------- */

static inline uint64_t mac_key(const struct rte_ether_addr *a, uint32_t network)
{
	uint64_t k = 0;
	memcpy(&k, a->addr_bytes, RTE_ETHER_ADDR_LEN);
	return k | ((uint64_t)(network + 1) << 48);
}

static inline uint32_t fdb_hash(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (uint32_t)key & (PX_FDB_SIZE - 1);
}

static inline int fdb_valid(const struct px_table *t, const struct px_fdb_entry *e, uint64_t now, uint64_t age)
{
	if (e->key == 0 || now - e->seen > age)
		return 0;
	int16_t s = t->slot_of[e->port_id];
	return s >= 0 && t->ports[s]->gen == e->gen;
}

static void fdb_learn(const struct px_table *t, uint64_t key, const struct px_port *in, uint64_t now, uint64_t age)
{
	uint32_t h = fdb_hash(key);
	struct px_fdb_entry *free_slot = NULL;
	for (int i = 0; i < PX_FDB_PROBE; i++) {
		struct px_fdb_entry *e = &fdb[(h + i) & (PX_FDB_SIZE - 1)];
		if (e->key == key) {
			e->port_id = in->port_id;
			e->gen = in->gen;
			e->seen = now;
			return;
		}
		if (!free_slot && !fdb_valid(t, e, now, age))
			free_slot = e;
	}
	if (!free_slot)
		return; /* a full neighbourhood: this MAC is flooded to until an entry ages out */
	free_slot->key = key;
	free_slot->port_id = in->port_id;
	free_slot->gen = in->gen;
	free_slot->seen = now;
	stats.learned++;
}

static int fdb_lookup(const struct px_table *t, uint64_t key, uint64_t now, uint64_t age)
{
	uint32_t h = fdb_hash(key);
	for (int i = 0; i < PX_FDB_PROBE; i++) {
		const struct px_fdb_entry *e = &fdb[(h + i) & (PX_FDB_SIZE - 1)];
		if (e->key == key)
			return fdb_valid(t, e, now, age) ? t->slot_of[e->port_id] : -1;
		if (e->key == 0)
			return -1;
	}
	return -1;
}

struct px_txq {
	uint16_t n;
	struct rte_mbuf *m[PX_BURST];
};

/* The loop's transmit buffers, per slot of the port table and queue; `pending` has a bit per non-empty queue. */
static struct px_txq txq[PX_MAX_PORTS][PX_MAX_QUEUES];
static uint16_t pending[PX_MAX_PORTS];

/* Whether the loop leaves the port alone after a fault; the clock is read only for a port that had one. */
static inline int is_parked(struct px_port *p)
{
	if (p->parked_until == 0)
		return 0;
	if (rte_rdtsc() < p->parked_until)
		return 1;
	p->parked_until = 0;
	return 0;
}

static void flush_queue(struct px_port *out, uint16_t qi, struct px_txq *q)
{
	uint32_t len[PX_BURST];
	for (uint16_t i = 0; i < q->n; i++)
		len[i] = rte_pktmbuf_pkt_len(q->m[i]); /* before the burst: the port frees what it sends */
	uint64_t faults = out->c.faults;
	uint16_t sent = is_parked(out) ? 0 : tx_burst(out, qi, q->m, q->n);
	if (out->c.faults != faults) { /* the guard caught a fault: the buffers are the PMD's or lost */
		q->n = 0;
		return;
	}
	for (uint16_t i = 0; i < sent; i++)
		out->c.tx_bytes += len[i];
	out->c.tx_packets += sent;
	if (sent < q->n) {
		out->c.tx_dropped += q->n - sent;
		rte_pktmbuf_free_bulk(&q->m[sent], q->n - sent);
	}
	q->n = 0;
}

static inline void flush(const struct px_table *t, int slot)
{
	while (pending[slot]) {
		uint16_t qi = (uint16_t)__builtin_ctz(pending[slot]);
		flush_queue(t->ports[slot], qi, &txq[slot][qi]);
		pending[slot] &= (uint16_t)~(1u << qi);
	}
}

/*
 * The transmit queue of a packet on a port with several: a hash of its flow (IPv4 or IPv6 addresses, and TCP,
 * UDP or SCTP ports; else its MACs), so a receiver polling several queues gets flows spread and in order.
 */
static uint16_t flow_queue(const struct rte_mbuf *m, uint16_t nq)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), h = 0;
	uint16_t type = (uint16_t)(p[12] << 8 | p[13]);
	uint32_t l3 = 14, l4 = 0;
	uint8_t proto = 0;
	if (type == RTE_ETHER_TYPE_IPV4 && len >= l3 + 20) {
		h = rte_hash_crc(p + l3 + 12, 8, 0);
		proto = p[l3 + 9];
		l4 = l3 + (uint32_t)(p[l3] & 0x0f) * 4;
	} else if (type == RTE_ETHER_TYPE_IPV6 && len >= l3 + 40) {
		h = rte_hash_crc(p + l3 + 8, 32, 0);
		proto = p[l3 + 6];
		l4 = l3 + 40;
	} else {
		return (uint16_t)(rte_hash_crc(p, 12, 0) % nq);
	}
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) && len >= l4 + 4)
		h = rte_hash_crc(p + l4, 4, h);
	return (uint16_t)(h % nq);
}

static inline void enqueue(const struct px_table *t, int slot, struct rte_mbuf *m)
{
	struct px_port *out = t->ports[slot];
	uint16_t qi = out->nq > 1 ? flow_queue(m, out->nq) : 0;
	struct px_txq *q = &txq[slot][qi];
	if (q->n == PX_BURST)
		flush_queue(out, qi, q);
	q->m[q->n++] = m;
	pending[slot] |= (uint16_t)(1u << qi);
}

/* Switches one received burst of port slot `i` of table `t`: learn, look up, queue for sending (or flood). */
static void switch_burst(const struct px_table *t, int i, struct rte_mbuf **rx, uint16_t nb, uint64_t now, uint64_t age)
{
	struct px_port *in = t->ports[i];
	const struct px_policy *policy = t->policy && px_policy_governs(t->policy, in->network) ? t->policy : NULL;
	struct px_policy_memo memo;
	memo.valid = 0;
	/*
	 * A burst is mostly one conversation: the last source learned and the last destination looked
	 * up are remembered for the burst, so a run of packets of one flow costs one learn and one lookup.
	 * Learning a new source forgets the destination (it may have just moved behind this port).
	 */
	uint64_t last_src = 0, last_dst = 0;
	int last_out = -1;
	for (uint16_t k = 0; k < nb; k++) {
		struct rte_mbuf *m = rx[k];
		if (k + 1 < nb)
			rte_prefetch0(rte_pktmbuf_mtod(rx[k + 1], void *));
		in->c.rx_bytes += rte_pktmbuf_pkt_len(m);
		if (rte_pktmbuf_data_len(m) < sizeof(struct rte_ether_hdr)) {
			rte_pktmbuf_free(m);
			continue;
		}
		/*
		 * Judged by its addresses, so once whether it goes to one port or is flooded (policy.c), and before its
		 * source MAC is learned: a frame policy drops teaches the switch nothing.
		 */
		if (policy && px_policy_judge(policy, in->network, t->has_ep[i] ? &t->ep[i] : NULL, m, now, &memo) != 0) {
			in->c.policy_dropped++;
			rte_pktmbuf_free(m);
			continue;
		}
		const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
		if (rte_is_unicast_ether_addr(&eth->src_addr)) {
			uint64_t src = mac_key(&eth->src_addr, in->network);
			if (src != last_src) {
				fdb_learn(t, src, in, now, age);
				last_src = src;
				last_dst = 0;
			}
		}
		int out = -1;
		if (rte_is_unicast_ether_addr(&eth->dst_addr)) {
			uint64_t dst = mac_key(&eth->dst_addr, in->network);
			if (dst != last_dst) {
				last_dst = dst;
				last_out = fdb_lookup(t, dst, now, age);
			}
			out = last_out;
		}
		if (out == i) {
			rte_pktmbuf_free(m); /* the destination is behind the port it came from */
			continue;
		}
		if (out >= 0) {
			enqueue(t, out, m);
			continue;
		}
		/* flood: every other port of the network gets the same buffer, one reference each */
		int copies = 0;
		for (int j = 0; j < t->n; j++)
			copies += j != i && t->ports[j]->network == in->network;
		if (copies == 0) {
			rte_pktmbuf_free(m);
			continue;
		}
		rte_mbuf_refcnt_update(m, (int16_t)(copies - 1));
		for (int j = 0; j < t->n; j++) {
			if (j == i || t->ports[j]->network != in->network)
				continue;
			t->ports[j]->c.flooded++;
			enqueue(t, j, m);
		}
	}
}

static int poll_loop(void *arg)
{
	(void)arg;
	struct rte_mbuf *rx[PX_BURST];
	const uint64_t age = rte_get_tsc_hz() * PX_FDB_AGE_S;
	unsigned idle = 0, sleep_us = 0;

	/* the kernel may otherwise stretch each idle sleep by its default 50 µs slack: bound it to 1 µs */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	while (__atomic_load_n(&running, __ATOMIC_ACQUIRE)) {
		struct px_table *t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
		uint64_t now = rte_rdtsc();
		unsigned got = 0;
		for (int i = 0; i < t->n; i++) {
			struct px_port *in = t->ports[i];
			if (is_parked(in))
				continue;
			for (uint16_t qi = 0; qi < in->nq; qi++) {
				uint16_t nb = rx_burst(in, qi, rx);
				if (nb == 0)
					continue;
				got += nb;
				in->c.rx_packets += nb;
				switch_burst(t, i, rx, nb, now, age);
				for (int j = 0; j < t->n; j++)
					flush(t, j);
			}
		}
		stats.loops++;
		__atomic_store_n(&epoch, epoch + 1, __ATOMIC_RELEASE);
		if (got) {
			/* OVS's "processing cycles": iterations that moved packets, so cycles per packet compare */
			stats.busy_cycles += rte_rdtsc() - now;
			stats.packets += got;
			idle = 0;
			sleep_us = 0;
		} else if (++idle > PX_SPIN_BEFORE_SLEEP) {
			sleep_us = sleep_us ? RTE_MIN(sleep_us * 2, max_sleep) : 1;
			struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)sleep_us * 1000 };
			nanosleep(&ts, NULL);
			stats.idle_sleeps++;
		}
		stats.sleep_us = sleep_us;
	}
	return 0;
}

/* ---- the control side --------------------------------------------------------------------------------- */

/* Returns once the loop has started (and so finished) an iteration after the caller's last publish. */
static int quiesce(void)
{
	if (worker_lcore == RTE_MAX_LCORE)
		return 0;
	uint64_t start = __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
	uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() * 2;
	while (__atomic_load_n(&epoch, __ATOMIC_ACQUIRE) < start + 2) {
		if (rte_get_timer_cycles() > deadline)
			return fail(-ETIMEDOUT, "the poll loop did not come round within 2 s");
		rte_delay_us_sleep(20);
	}
	return 0;
}

static struct px_table *table_copy(const struct px_table *from)
{
	struct px_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	memset(t->slot_of, 0xff, sizeof(t->slot_of));
	if (from) {
		t->policy = from->policy;
		for (int i = 0; i < from->n; i++) {
			t->ports[t->n] = from->ports[i];
			t->slot_of[from->ports[i]->port_id] = (int16_t)t->n;
			t->n++;
		}
	}
	return t;
}

/* The endpoint behind each port of `t` under its policy. */
static void bind_endpoints(struct px_table *t)
{
	for (int i = 0; i < t->n; i++)
		t->has_ep[i] = t->policy && px_policy_endpoint_of(t->policy, t->ports[i]->name, &t->ep[i]);
}

static int publish(struct px_table *next)
{
	bind_endpoints(next);
	struct px_table *old = __atomic_exchange_n(&current, next, __ATOMIC_ACQ_REL);
	int err = quiesce();
	if (err == 0)
		free(old);
	/* on a timeout the old table is leaked rather than freed under a loop that may still read it */
	return err;
}

static struct px_port *find(const char *name)
{
	for (int i = 0; i < current->n; i++)
		if (strcmp(current->ports[i]->name, name) == 0)
			return current->ports[i];
	return NULL;
}

int px_init(int argc, char **argv, unsigned mbufs, unsigned max_sleep_us)
{
	if (current)
		return fail(-EALREADY, "the engine is already initialised (one EAL per process)");
	int ret = rte_eal_init(argc, argv);
	if (ret < 0)
		return fail(-rte_errno, "EAL init failed: %s", rte_strerror(rte_errno));
	pool = rte_pktmbuf_pool_create("px_pool", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (!pool)
		return fail(-rte_errno, "mbuf pool of %u buffers: %s", mbufs, rte_strerror(rte_errno));
	current = table_copy(NULL);
	if (!current)
		return fail(-ENOMEM, "port table");
	if ((ret = install_guard()) < 0)
		return ret;
	max_sleep = max_sleep_us ? max_sleep_us : 1;
	unsigned lcore = rte_get_next_lcore(-1, 1, 0);
	if (lcore >= RTE_MAX_LCORE)
		return fail(-EINVAL, "no worker lcore: give EAL two lcores (e.g. --lcores 0@(0-1),1@1)");
	__atomic_store_n(&running, 1, __ATOMIC_RELEASE);
	ret = rte_eal_remote_launch(poll_loop, NULL, lcore);
	if (ret < 0)
		return fail(ret, "launch the poll loop on lcore %u: %s", lcore, rte_strerror(-ret));
	worker_lcore = lcore;
	return 0;
}

static void unplug(uint16_t port_id, const char *device)
{
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
	rte_eal_hotplug_remove("vdev", device);
}

int px_port_add(const char *name, const char *devargs, uint32_t network, uint16_t queues)
{
	if (!current)
		return fail(-ENODEV, "the engine is not initialised");
	if (strlen(name) >= PX_NAME_LEN)
		return fail(-ENAMETOOLONG, "port name longer than %d bytes", PX_NAME_LEN - 1);
	if (find(name))
		return fail(-EEXIST, "port %s exists", name);
	if (current->n >= PX_MAX_PORTS)
		return fail(-ENOSPC, "the engine has %d ports, its limit", PX_MAX_PORTS);
	if (queues < 1 || queues > PX_MAX_QUEUES)
		return fail(-EINVAL, "queues must be 1 to %d, not %u", PX_MAX_QUEUES, queues);
	char device[RTE_DEV_NAME_MAX_LEN];
	size_t len = strcspn(devargs, ",");
	if (len == 0 || len >= sizeof(device))
		return fail(-EINVAL, "devargs must start with a device name: %s", devargs);
	memcpy(device, devargs, len);
	device[len] = 0;
	int ret = rte_dev_probe(devargs);
	if (ret < 0)
		return fail(ret, "probe %s: %s", devargs, rte_strerror(-ret));
	uint16_t pid;
	ret = rte_eth_dev_get_port_by_name(device, &pid);
	if (ret < 0) {
		rte_eal_hotplug_remove("vdev", device);
		return fail(ret, "no ethdev named %s after probing it", device);
	}
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int socket = rte_eth_dev_socket_id(pid);
	if (socket < 0)
		socket = (int)rte_socket_id();
	struct rte_eth_dev_info info;
	if ((ret = rte_eth_dev_info_get(pid, &info)) == 0 && (info.max_rx_queues < queues || info.max_tx_queues < queues)) {
		unplug(pid, device);
		return fail(-EINVAL, "port %s (%s) has at most %u queue pairs, not %u", name, device, RTE_MIN(info.max_rx_queues, info.max_tx_queues), queues);
	}
	if ((ret = rte_eth_dev_configure(pid, queues, queues, &conf)) < 0) {
		unplug(pid, device);
		return fail(ret, "configure port %s (%s): %s", name, device, rte_strerror(-ret));
	}
	for (uint16_t qi = 0; qi < queues; qi++) {
		if ((ret = rte_eth_rx_queue_setup(pid, qi, PX_RING, (unsigned)socket, NULL, pool)) < 0 ||
		    (ret = rte_eth_tx_queue_setup(pid, qi, PX_RING, (unsigned)socket, NULL)) < 0) {
			unplug(pid, device);
			return fail(ret, "set up queue %u of port %s (%s): %s", qi, name, device, rte_strerror(-ret));
		}
	}
	if ((ret = rte_eth_dev_start(pid)) < 0) {
		unplug(pid, device);
		return fail(ret, "start port %s (%s): %s", name, device, rte_strerror(-ret));
	}
	rte_eth_promiscuous_enable(pid); /* refused by vdevs without the notion: harmless */
	struct px_port *p = calloc(1, sizeof(*p));
	struct px_table *next = table_copy(current);
	if (!p || !next) {
		free(p);
		free(next);
		unplug(pid, device);
		return fail(-ENOMEM, "port %s", name);
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->device, sizeof(p->device), "%s", device);
	p->port_id = pid;
	p->nq = queues;
	p->guarded = strncmp(device, "net_memif", 9) == 0;
	p->network = network;
	p->gen = next_gen++;
	next->ports[next->n] = p;
	next->slot_of[pid] = (int16_t)next->n;
	next->n++;
	return publish(next);
}

int px_port_remove(const char *name)
{
	if (!current)
		return fail(-ENODEV, "the engine is not initialised");
	struct px_port *p = find(name);
	if (!p)
		return fail(-ENOENT, "no port %s", name);
	struct px_table *next = table_copy(NULL);
	if (!next)
		return fail(-ENOMEM, "port table");
	next->policy = current->policy;
	for (int i = 0; i < current->n; i++) {
		if (current->ports[i] == p)
			continue;
		next->ports[next->n] = current->ports[i];
		next->slot_of[current->ports[i]->port_id] = (int16_t)next->n;
		next->n++;
	}
	int ret = publish(next);
	if (ret < 0)
		return ret; /* the port stays allocated: the loop may still be using it */
	unplug(p->port_id, p->device);
	free(p);
	return 0;
}

int px_policy_set(const uint8_t *blob, size_t len)
{
	if (!current)
		return fail(-ENODEV, "the engine is not initialised");
	struct px_policy *policy = NULL;
	char why[200];
	int err = len ? px_policy_build(blob, len, &policy, why, sizeof(why)) : 0;
	if (err < 0)
		return fail(err, "%s", why);
	struct px_table *next = table_copy(current);
	if (!next) {
		px_policy_free(policy);
		return fail(-ENOMEM, "port table");
	}
	struct px_policy *old = current->policy;
	next->policy = policy;
	if ((err = publish(next)) < 0)
		return err; /* the old policy is leaked rather than freed under a loop that may still read it */
	px_policy_free(old);
	return 0;
}

int px_ports(struct px_port_info *out, int max)
{
	if (!current)
		return 0;
	for (int i = 0; i < current->n && i < max; i++) {
		const struct px_port *p = current->ports[i];
		struct rte_eth_link link;
		memset(&link, 0, sizeof(link));
		rte_eth_link_get_nowait(p->port_id, &link);
		snprintf(out[i].name, sizeof(out[i].name), "%s", p->name);
		out[i].port_id = p->port_id;
		out[i].network = p->network;
		out[i].queues = p->nq;
		out[i].link_up = link.link_status == RTE_ETH_LINK_UP;
		out[i].counters = p->c;
	}
	return current->n;
}

void px_stats(struct px_engine_stats *out)
{
	*out = stats;
	out->ports = current ? (uint32_t)current->n : 0;
	out->tsc_hz = rte_get_tsc_hz();
}

void px_shutdown(void)
{
	if (!current)
		return;
	__atomic_store_n(&running, 0, __ATOMIC_RELEASE);
	if (worker_lcore != RTE_MAX_LCORE)
		rte_eal_wait_lcore(worker_lcore);
	worker_lcore = RTE_MAX_LCORE;
	for (int i = 0; i < current->n; i++) {
		unplug(current->ports[i]->port_id, current->ports[i]->device);
		free(current->ports[i]);
	}
	current->n = 0;
}

/*
 * The N-API face of the engine (engine.h), for plexus-dataplane's Node thread. Every call is a control
 * operation that returns in microseconds to a few milliseconds (adding a port waits for the poll loop to
 * come round once); none ever waits on the datapath. Errors are thrown as JS Errors with the engine's message
 * and a `code` (the negative errno's name is not known here, so the number: `errno`).
 *
 *   init(args: string[], mbufs: number, maxSleepUs: number): void
 *   addPort(name: string, devargs: string, network: number, queues: number): void
 *   removePort(name: string): void
 *   ports(): {name, portId, network, linkUp, rxPackets, rxBytes, txPackets, txBytes, txDropped, flooded, faults}[]
 *   stats(): {loops, idleSleeps, learned, packets, busyCycles, tscHz, ports, sleepUs}
 *   setPolicy(blob: Buffer): void                  MultiNetworkPolicy (addon/policy.h); an empty buffer: none
 *   policyCounters(network: number): {forwarded, droppedEgress, droppedIngress, droppedSpoofed, cut, eventsLost}
 *   policyEvents(): {timeNs, network, len, src: Buffer, dst: Buffer, sport, dport, proto, verdict, reason, flags}[]
 *   shutdown(): void
 */
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "policy.h"

#define CHECK(env, call)                                                                                \
	do {                                                                                            \
		if ((call) != napi_ok) {                                                                \
			napi_throw_error((env), NULL, "N-API call failed: " #call);                     \
			return NULL;                                                                    \
		}                                                                                       \
	} while (0)

static napi_value throw_engine(napi_env env, int err)
{
	napi_value msg, error, code;
	napi_create_string_utf8(env, px_last_error(), NAPI_AUTO_LENGTH, &msg);
	napi_create_error(env, NULL, msg, &error);
	napi_create_int32(env, -err, &code);
	napi_set_named_property(env, error, "errno", code);
	napi_throw(env, error);
	return NULL;
}

/* A string argument copied into a fresh buffer (the caller frees it); NULL after throwing. */
static char *string_arg(napi_env env, napi_value v, const char *what)
{
	size_t len = 0;
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
		napi_throw_type_error(env, NULL, what);
		return NULL;
	}
	char *s = malloc(len + 1);
	if (!s) {
		napi_throw_error(env, NULL, "out of memory");
		return NULL;
	}
	napi_get_value_string_utf8(env, v, s, len + 1, &len);
	return s;
}

static napi_value init(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t n = 0, mbufs = 0, sleep_us = 0;
	if (argc < 3 || napi_get_array_length(env, argv[0], &n) != napi_ok || napi_get_value_uint32(env, argv[1], &mbufs) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &sleep_us) != napi_ok) {
		napi_throw_type_error(env, NULL, "init(args: string[], mbufs: number, maxSleepUs: number)");
		return NULL;
	}
	/* EAL keeps pointers into argv: the strings live for the process. */
	char **args = calloc(n + 2, sizeof(char *));
	if (!args) {
		napi_throw_error(env, NULL, "out of memory");
		return NULL;
	}
	args[0] = strdup("plexus-dataplane");
	for (uint32_t i = 0; i < n; i++) {
		napi_value item;
		CHECK(env, napi_get_element(env, argv[0], i, &item));
		if (!(args[i + 1] = string_arg(env, item, "init: every EAL argument must be a string")))
			return NULL;
	}
	int err = px_init((int)n + 1, args, mbufs, sleep_us);
	if (err < 0)
		return throw_engine(env, err);
	return NULL;
}

static napi_value add_port(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t network = 0, queues = 0;
	if (argc < 4 || napi_get_value_uint32(env, argv[2], &network) != napi_ok || napi_get_value_uint32(env, argv[3], &queues) != napi_ok || queues > UINT16_MAX) {
		napi_throw_type_error(env, NULL, "addPort(name: string, devargs: string, network: number, queues: number)");
		return NULL;
	}
	char *name = string_arg(env, argv[0], "addPort: name must be a string");
	if (!name)
		return NULL;
	char *devargs = string_arg(env, argv[1], "addPort: devargs must be a string");
	if (!devargs) {
		free(name);
		return NULL;
	}
	int err = px_port_add(name, devargs, network, (uint16_t)queues);
	free(name);
	free(devargs);
	return err < 0 ? throw_engine(env, err) : NULL;
}

static napi_value remove_port(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		napi_throw_type_error(env, NULL, "removePort(name: string)");
		return NULL;
	}
	char *name = string_arg(env, argv[0], "removePort: name must be a string");
	if (!name)
		return NULL;
	int err = px_port_remove(name);
	free(name);
	return err < 0 ? throw_engine(env, err) : NULL;
}

static void set_u64(napi_env env, napi_value obj, const char *key, uint64_t v)
{
	napi_value n;
	napi_create_double(env, (double)v, &n);
	napi_set_named_property(env, obj, key, n);
}

static napi_value ports(napi_env env, napi_callback_info info)
{
	(void)info;
	struct px_port_info list[PX_MAX_PORTS];
	int n = px_ports(list, PX_MAX_PORTS);
	napi_value arr;
	CHECK(env, napi_create_array_with_length(env, (size_t)n, &arr));
	for (int i = 0; i < n; i++) {
		napi_value o, s, b;
		CHECK(env, napi_create_object(env, &o));
		CHECK(env, napi_create_string_utf8(env, list[i].name, NAPI_AUTO_LENGTH, &s));
		CHECK(env, napi_set_named_property(env, o, "name", s));
		set_u64(env, o, "portId", list[i].port_id);
		set_u64(env, o, "network", list[i].network);
		set_u64(env, o, "queues", list[i].queues);
		CHECK(env, napi_get_boolean(env, list[i].link_up, &b));
		CHECK(env, napi_set_named_property(env, o, "linkUp", b));
		set_u64(env, o, "rxPackets", list[i].counters.rx_packets);
		set_u64(env, o, "rxBytes", list[i].counters.rx_bytes);
		set_u64(env, o, "txPackets", list[i].counters.tx_packets);
		set_u64(env, o, "txBytes", list[i].counters.tx_bytes);
		set_u64(env, o, "txDropped", list[i].counters.tx_dropped);
		set_u64(env, o, "flooded", list[i].counters.flooded);
		set_u64(env, o, "faults", list[i].counters.faults);
		set_u64(env, o, "policyDropped", list[i].counters.policy_dropped);
		CHECK(env, napi_set_element(env, arr, (uint32_t)i, o));
	}
	return arr;
}

static napi_value stats(napi_env env, napi_callback_info info)
{
	(void)info;
	struct px_engine_stats st;
	px_stats(&st);
	napi_value o;
	CHECK(env, napi_create_object(env, &o));
	set_u64(env, o, "loops", st.loops);
	set_u64(env, o, "idleSleeps", st.idle_sleeps);
	set_u64(env, o, "learned", st.learned);
	set_u64(env, o, "packets", st.packets);
	set_u64(env, o, "busyCycles", st.busy_cycles);
	set_u64(env, o, "tscHz", st.tsc_hz);
	set_u64(env, o, "ports", st.ports);
	set_u64(env, o, "sleepUs", st.sleep_us);
	return o;
}

static napi_value set_policy(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	void *data = NULL;
	size_t len = 0;
	if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
		napi_throw_type_error(env, NULL, "setPolicy(blob: Buffer)");
		return NULL;
	}
	int err = px_policy_set(data, len);
	return err < 0 ? throw_engine(env, err) : NULL;
}

static napi_value policy_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], o;
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t network = 0;
	if (argc < 1 || napi_get_value_uint32(env, argv[0], &network) != napi_ok) {
		napi_throw_type_error(env, NULL, "policyCounters(network: number)");
		return NULL;
	}
	struct px_policy_counters c;
	px_policy_counters_of(network, &c);
	CHECK(env, napi_create_object(env, &o));
	set_u64(env, o, "forwarded", c.forwarded);
	set_u64(env, o, "droppedEgress", c.dropped_egress);
	set_u64(env, o, "droppedIngress", c.dropped_ingress);
	set_u64(env, o, "droppedSpoofed", c.dropped_spoofed);
	set_u64(env, o, "cut", c.cut);
	set_u64(env, o, "eventsLost", c.events_lost);
	return o;
}

static napi_value policy_events(napi_env env, napi_callback_info info)
{
	(void)info;
	static struct px_flow_event ev[1024];
	int n = px_policy_events(ev, 1024);
	napi_value arr;
	CHECK(env, napi_create_array_with_length(env, (size_t)n, &arr));
	for (int i = 0; i < n; i++) {
		napi_value o, src, dst;
		CHECK(env, napi_create_object(env, &o));
		set_u64(env, o, "timeNs", ev[i].time_ns);
		set_u64(env, o, "network", ev[i].network);
		set_u64(env, o, "len", ev[i].len);
		CHECK(env, napi_create_buffer_copy(env, 16, ev[i].src, NULL, &src));
		CHECK(env, napi_create_buffer_copy(env, 16, ev[i].dst, NULL, &dst));
		CHECK(env, napi_set_named_property(env, o, "src", src));
		CHECK(env, napi_set_named_property(env, o, "dst", dst));
		set_u64(env, o, "sport", ev[i].sport);
		set_u64(env, o, "dport", ev[i].dport);
		set_u64(env, o, "proto", ev[i].proto);
		set_u64(env, o, "verdict", ev[i].verdict);
		set_u64(env, o, "reason", ev[i].reason);
		set_u64(env, o, "flags", ev[i].flags);
		CHECK(env, napi_set_element(env, arr, (uint32_t)i, o));
	}
	return arr;
}

static napi_value shutdown(napi_env env, napi_callback_info info)
{
	(void)env;
	(void)info;
	px_shutdown();
	return NULL;
}

static napi_value module_init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "init", NULL, init, NULL, NULL, NULL, napi_default, NULL },
		{ "addPort", NULL, add_port, NULL, NULL, NULL, napi_default, NULL },
		{ "removePort", NULL, remove_port, NULL, NULL, NULL, napi_default, NULL },
		{ "ports", NULL, ports, NULL, NULL, NULL, napi_default, NULL },
		{ "stats", NULL, stats, NULL, NULL, NULL, napi_default, NULL },
		{ "setPolicy", NULL, set_policy, NULL, NULL, NULL, napi_default, NULL },
		{ "policyCounters", NULL, policy_counters, NULL, NULL, NULL, napi_default, NULL },
		{ "policyEvents", NULL, policy_events, NULL, NULL, NULL, napi_default, NULL },
		{ "shutdown", NULL, shutdown, NULL, NULL, NULL, napi_default, NULL },
	};
	CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)

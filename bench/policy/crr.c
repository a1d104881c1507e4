// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * crr: TCP connect-request-response-close rate, the measure where a policy's rule count shows (netperf's
 * TCP_CRR, in a page, since netperf is not packaged here). Every connection is new, so every one is judged by
 * the policy: once by the eBPF program (then tracked), once by the iptables rules (then ESTABLISHED).
 *
 *   crr server ADDR PORT            accepts, answers one byte per connection, closes
 *   crr client ADDR PORT SECONDS    connects, sends one byte, reads the answer, closes (RST: no TIME_WAIT
 *                                   to run out of ports), as fast as it can; prints connections per second
 *
 * The client stops at the first failure (a denied connection times out after 2 s) and says so.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in address(const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		fprintf(stderr, "crr: not an IPv4 address: %s\n", ip);
		exit(2);
	}
	return sa;
}

static int serve(struct sockaddr_in sa)
{
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 4096) < 0) {
		perror("crr: bind/listen");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		char b;
		if (read(c, &b, 1) == 1)
			(void)!write(c, &b, 1);
		close(c);
	}
}

static int client(struct sockaddr_in sa, double seconds)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	struct timeval timeout = { .tv_sec = 2 };
	long done = 0;
	double start = now(), end = start + seconds;
	while (now() < end) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
		char b = 'x';
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(s, &b, 1) != 1 || read(s, &b, 1) != 1) {
			fprintf(stderr, "crr: connection %ld failed: %s\n", done + 1, strerror(errno));
			close(s);
			return 1;
		}
		setsockopt(s, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(s);
		done++;
	}
	printf("%.1f\n", done / (now() - start));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "server") == 0)
		return serve(address(argv[2], argv[3]));
	if (argc == 5 && strcmp(argv[1], "client") == 0)
		return client(address(argv[2], argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: crr server ADDR PORT | crr client ADDR PORT SECONDS\n");
	return 2;
}

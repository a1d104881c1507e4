/*
 * bin/plexus: the CNI binary the container runtime executes, fast path.
 *
 * Node.js needs about 30 ms just to start (measured here: `node -e 0`), which alone is three times the
 * whole per-pod overhead budget. So the binary the runtime executes is this forwarder: it passes the
 * invocation ({env, config}) to plexusd over its unix socket and prints the answer, and contains no CNI
 * logic at all. All validation happens in the daemon, in the same TypeScript as the Node shim.
 *
 * Whenever the fast path cannot answer (no CNI_COMMAND, VERSION, a config it cannot scan, no daemon, a
 * daemon that is not ready, a broken connection), it replaces itself with the Node shim `plexus-shim`
 * beside it, with the same argv, env and stdin: that shim validates, waits for readiness, queues DELs,
 * and answers VERSION. The two paths therefore always give the same answer for the same input.
 *
 * Protocol: HTTP/1.1 POST /v1/cni, body {"env":{CNI_*...},"config":"<stdin>"}, Connection: close.
 * The daemon answers with Content-Length; 200 means success (exit 0), anything else is a CNI error
 * result (exit 1), and 503 with "x-plexus-not-ready: 1" means "not ready yet" (fallback).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef DEFAULT_SOCKET /* a test builds its own copy with a socket of its own */
#define DEFAULT_SOCKET "/run/plexus/plexus.sock"
#endif
#define PLEXUS_MAX_INPUT (16u << 20)

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_grow(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		fputs("plexus: out of memory\n", stderr);
		exit(1);
	}
	b->data = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_grow(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Append s as a JSON string literal. Bytes >= 0x80 pass through (UTF-8). */
static void buf_json_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			buf_add(b, esc, 6);
		} else {
			buf_add(b, (const char *)&s[i], 1);
		}
	}
	buf_add(b, "\"", 1);
}

static int read_all(int fd, struct buf *b, size_t limit)
{
	for (;;) {
		buf_grow(b, 65536);
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b->len += (size_t)n;
		b->data[b->len] = '\0';
		if (b->len > limit)
			return -1;
	}
}

/*
 * Find "socketPath" in the config: at the top level, or inside the top-level object named `section` (for
 * plexus-ipam, the delegate's "ipam"). Returns 1 and copies it when found, 0 when absent, -1 when the text
 * is not something this small scanner understands (the Node shim then reports the exact decode error).
 * Escapes inside the value are not accepted: a socket path has none.
 */
static int scan_socket_path(const char *s, size_t n, const char *section, char *out, size_t outsz)
{
	int depth = 0, found = 0, in_section = 0, want = section ? 2 : 1;
	char last_key[16] = "";
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '{' || c == '[') {
			depth++;
			if (depth == 2 && c == '{' && section && strcmp(last_key, section) == 0)
				in_section = 1;
			last_key[0] = '\0';
			i++;
		} else if (c == '}' || c == ']') {
			if (depth == 2)
				in_section = 0;
			depth--;
			i++;
		} else if (c == '"') {
			size_t start = ++i;
			int escaped = 0;
			while (i < n && s[i] != '"') {
				if (s[i] == '\\') {
					escaped = 1;
					i++;
				}
				i++;
			}
			if (i >= n)
				return -1;
			size_t len = i - start;
			i++;
			while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
				i++;
			int is_key = i < n && s[i] == ':';
			if (!is_key)
				continue; /* a string value */
			if (depth == 1) {
				size_t k = len < sizeof(last_key) - 1 && !escaped ? len : 0;
				memcpy(last_key, s + start, k);
				last_key[k] = '\0';
			}
			if (depth != want || (section && !in_section) || escaped || len != 10 || memcmp(s + start, "socketPath", 10) != 0)
				continue;
			i++;
			while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
				i++;
			if (i >= n || s[i] != '"')
				return -1;
			size_t vstart = ++i;
			while (i < n && s[i] != '"' && s[i] != '\\')
				i++;
			if (i >= n || s[i] != '"' || i - vstart >= outsz || found)
				return -1; /* escapes, too long, or given twice: let the full parser judge */
			memcpy(out, s + vstart, i - vstart);
			out[i - vstart] = '\0';
			found = 1;
			i++;
		} else {
			i++;
		}
	}
	return depth == 0 ? found : -1;
}

/* Replace this process with the Node shim beside this binary, feeding it the same stdin. */
static void fall_back(char **argv, const struct buf *in)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		perror("plexus: readlink /proc/self/exe");
		exit(1);
	}
	self[n] = '\0';
	char shim[PATH_MAX];
	snprintf(shim, sizeof(shim), "%s/plexus-shim", dirname(self));
	int fd = memfd_create("plexus-stdin", MFD_CLOEXEC);
	if (fd < 0 || (in->len && write(fd, in->data, in->len) != (ssize_t)in->len) || lseek(fd, 0, SEEK_SET) != 0 ||
	    dup2(fd, 0) < 0) {
		perror("plexus: cannot pass stdin to the shim");
		exit(1);
	}
	/* The shim acts by the name it was invoked under (plexus, plexus-ipam, ...). */
	setenv("PLEXUS_INVOKED_AS", basename(argv[0]), 1);
	argv[0] = shim;
	execv(shim, argv);
	fprintf(stderr, "plexus: cannot execute %s: %s\n", shim, strerror(errno));
	exit(1);
}

static const char *const CNI_KEYS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

static void build_request(struct buf *req, const struct buf *in, const char *invoked_as)
{
	struct buf body = {0};
	buf_str(&body, "{\"env\":{");
	int first = 1;
	for (size_t k = 0; k < sizeof(CNI_KEYS) / sizeof(CNI_KEYS[0]); k++) {
		const char *v = getenv(CNI_KEYS[k]);
		if (!v)
			continue;
		if (!first)
			buf_str(&body, ",");
		first = 0;
		buf_json_string(&body, CNI_KEYS[k], strlen(CNI_KEYS[k]));
		buf_str(&body, ":");
		buf_json_string(&body, v, strlen(v));
	}
	buf_str(&body, "},\"invokedAs\":");
	buf_json_string(&body, invoked_as, strlen(invoked_as));
	buf_str(&body, ",\"config\":");
	buf_json_string(&body, in->data ? in->data : "", in->len);
	buf_str(&body, "}");
	char head[256];
	int hn = snprintf(head, sizeof(head),
			  "POST /v1/cni HTTP/1.1\r\nHost: plexus\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			  body.len);
	buf_add(req, head, (size_t)hn);
	buf_add(req, body.data, body.len);
	free(body.data);
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Parse "HTTP/1.1 <status> ..." and the headers; returns the body or NULL when malformed. */
static const char *parse_response(const struct buf *res, int *status, int *not_ready, size_t *body_len)
{
	if (res->len < 12 || strncmp(res->data, "HTTP/1.", 7) != 0)
		return NULL;
	*status = atoi(res->data + 9);
	const char *end = strstr(res->data, "\r\n\r\n");
	if (!end)
		return NULL;
	const char *body = end + 4;
	long length = -1;
	*not_ready = 0;
	for (const char *line = strstr(res->data, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
		if (strncasecmp(line, "content-length:", 15) == 0)
			length = strtol(line + 15, NULL, 10);
		else if (strncasecmp(line, "x-plexus-not-ready:", 19) == 0)
			*not_ready = 1;
	}
	size_t have = res->len - (size_t)(body - res->data);
	if (length < 0 || (size_t)length > have)
		return NULL; /* the daemon always sends Content-Length; a short body means a broken connection */
	*body_len = (size_t)length;
	return body;
}

int main(int argc, char **argv)
{
	(void)argc;
	struct buf in = {0};
	const char *cmd = getenv("CNI_COMMAND");
	if (read_all(0, &in, PLEXUS_MAX_INPUT) < 0 || !cmd || !*cmd || strcmp(cmd, "VERSION") == 0)
		fall_back(argv, &in);
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *name = basename(argv[0]);
	const char *section = strcmp(name, "plexus-ipam") == 0 ? "ipam" : NULL;
	int found = scan_socket_path(in.data ? in.data : "", in.len, section, sock_path, sizeof(sock_path));
	if (found < 0)
		fall_back(argv, &in);
	if (found == 0)
		strcpy(sock_path, DEFAULT_SOCKET);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		fall_back(argv, &in);

	struct buf req = {0}, res = {0};
	build_request(&req, &in, name);
	if (send_all(fd, req.data, req.len) < 0 || read_all(fd, &res, PLEXUS_MAX_INPUT) < 0)
		fall_back(argv, &in);
	close(fd);

	int status = 0, not_ready = 0;
	size_t body_len = 0;
	const char *body = parse_response(&res, &status, &not_ready, &body_len);
	if (!body || not_ready)
		fall_back(argv, &in);
	if (body_len > 0) {
		fwrite(body, 1, body_len, stdout);
		if (body[body_len - 1] != '\n')
			fputc('\n', stdout);
	}
	return status == 200 ? 0 : 1;
}

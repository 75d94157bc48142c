/*
 * lws-echo-server: a minimal libwebsockets echo server, a peer for
 * bench/echo.sh (no duplex code).
 *
 *   lws-echo-server [--host 127.0.0.1] [--port 0] [--burst 1]
 *
 * First stdout line: "lws: listening on ws://HOST:PORT" (port 0 lets the
 * kernel choose; the real port is printed).
 *
 * One context, one vhost, one protocol (served whatever subprotocol the
 * client asks, or none). Every message goes back to its sender with the
 * same type, text as text, binary as binary. A message is gathered whole
 * (any number of fragments and lws reads) before it is queued, so large and
 * fragmented messages are echoed as one. Sends are WRITEABLE-callback driven
 * from a small queue per connection: by default one lws_write per callback,
 * the usage the lws maintainers recommend (a partial write can only follow a
 * POLLOUT); --burst N writes up to N queued messages per callback, checking
 * lws_send_pipe_choked() before each after the first. When the queue holds
 * HIGH_WATER messages the connection stops being read
 * (lws_rx_flow_control) until it drains to LOW_WATER: memory stays bounded
 * whatever the client does. lws itself answers pings and does the close
 * handshake. Messages larger than MAX_MESSAGE are refused with 1009.
 */
#include <libwebsockets.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QLEN 64
#define HIGH_WATER 32
#define LOW_WATER 8
#define MAX_MESSAGE (16u * 1024 * 1024)

struct msg {
	unsigned char *buf; /* LWS_PRE bytes of headroom, then len bytes */
	size_t len;
	int binary;
};

struct pss {
	struct msg q[QLEN];
	unsigned head, count;
	int flow_off;
	unsigned char *rx; /* the message being gathered, LWS_PRE headroom */
	size_t rx_len, rx_cap;
	int rx_binary;
};

static volatile sig_atomic_t interrupted;
static struct lws_context *ctx;
static int burst = 1;

static void pss_free(struct pss *p)
{
	while (p->count) {
		free(p->q[p->head].buf);
		p->head = (p->head + 1) % QLEN;
		p->count--;
	}
	free(p->rx);
	p->rx = NULL;
	p->rx_len = p->rx_cap = 0;
}

static int rx_append(struct pss *p, const void *in, size_t len)
{
	if (p->rx_len + len > MAX_MESSAGE)
		return -1;
	if (!p->rx || p->rx_len + len > p->rx_cap) {
		size_t cap = p->rx_cap ? p->rx_cap : 256;
		while (cap < p->rx_len + len)
			cap *= 2;
		unsigned char *b = realloc(p->rx, LWS_PRE + cap);
		if (!b)
			return -1;
		p->rx = b;
		p->rx_cap = cap;
	}
	memcpy(p->rx + LWS_PRE + p->rx_len, in, len);
	p->rx_len += len;
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct pss *p = (struct pss *)user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(p, 0, sizeof *p);
		break;

	case LWS_CALLBACK_RECEIVE:
		if (lws_is_first_fragment(wsi))
			p->rx_binary = lws_frame_is_binary(wsi);
		if (rx_append(p, in, len) < 0) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
					 NULL, 0);
			return -1;
		}
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			break;
		/* a whole message: queue it */
		if (p->count == QLEN) {
			/* cannot happen with flow control honoured; refuse
			 * rather than grow without bound */
			lwsl_err("queue overflow, closing\n");
			return -1;
		}
		if (!p->rx && rx_append(p, "", 0) < 0) /* empty message */
			return -1;
		struct msg *m = &p->q[(p->head + p->count) % QLEN];
		m->buf = p->rx;
		m->len = p->rx_len;
		m->binary = p->rx_binary;
		p->count++;
		p->rx = NULL;
		p->rx_len = p->rx_cap = 0;
		if (p->count >= HIGH_WATER && !p->flow_off) {
			p->flow_off = 1;
			lws_rx_flow_control(wsi, 0);
		}
		lws_callback_on_writable(wsi);
		break;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		for (int k = 0; k < burst && p->count; k++) {
			if (k && lws_send_pipe_choked(wsi))
				break;
			struct msg *m = &p->q[p->head];
			int n = lws_write(wsi, m->buf + LWS_PRE, m->len,
					  m->binary ? LWS_WRITE_BINARY
						    : LWS_WRITE_TEXT);
			free(m->buf);
			m->buf = NULL;
			p->head = (p->head + 1) % QLEN;
			p->count--;
			if (n < (int)m->len)
				return -1;
		}
		if (p->flow_off && p->count <= LOW_WATER) {
			p->flow_off = 0;
			lws_rx_flow_control(wsi, 1);
		}
		if (p->count)
			lws_callback_on_writable(wsi);
		break;

	case LWS_CALLBACK_CLOSED:
		pss_free(p);
		break;

	default:
		break;
	}
	return 0;
}

static struct lws_protocols protocols[] = {
	{ "echo", callback, sizeof(struct pss), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
	if (ctx)
		lws_cancel_service(ctx);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--burst") && i + 1 < argc)
			burst = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: lws-echo-server [--host H] "
				"[--port P (0: any)] [--burst N]\n");
			return 2;
		}
	}
	if (burst < 1)
		burst = 1;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.count_threads = 1;
	info.pt_serv_buf_size = 65536; /* bytes per read() (default 4096) */
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws: lws_create_context failed\n");
		return 1;
	}
	struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
	int real = vh ? lws_get_vhost_listen_port(vh) : -1;
	if (real <= 0) {
		fprintf(stderr, "lws: cannot tell the listening port\n");
		lws_context_destroy(ctx);
		return 1;
	}
	printf("lws: listening on ws://%s:%d\n", host, real);
	fflush(stdout);

	while (!interrupted)
		if (lws_service(ctx, 0) < 0)
			break;
	lws_context_destroy(ctx);
	return 0;
}

/*
 * lws-echo-load: closed-loop WebSocket echo load generator on libwebsockets.
 *
 * An independent client (no duplex code): N connections, each keeping
 * DEPTH messages of SIZE bytes in flight (text, or binary with -b). Every echo received is
 * checked (length and content, in order per connection) and immediately
 * replaced by a new send. After a warm-up, echoes are counted over a fixed
 * window. Stdout gets "WINDOW_START" (flushed) when the window opens, and
 * one RESULT line when it closes:
 *
 *   RESULT msgs=... secs=... msg_per_s=... errors=... conns=... client_cpu=...
 *          mode=... type=text|binary size=... mb_per_s=...
 *
 * (mb_per_s: payload bytes echoed per second, one direction, in 10^6 B.)
 *
 * usage: lws-echo-load -p PORT [-h 127.0.0.1] [-c 100] [-d 16] [-s 32]
 *                      [-w 2] [-t 5] [-T 10 (connect timeout, s)] [-1] [-b] [-S]
 *
 * -S connects with wss:// (TLS through the OpenSSL libwebsockets is built
 * on), accepting a self-signed certificate and any host name: a bench
 * measures, it does not authenticate.
 *
 * -F FRAG (batched mode only) sends each message as a first frame and
 * continuation frames of at most FRAG payload bytes each, to check that a
 * server gathers fragmented messages whole.
 *
 * SIZE: 20 bytes to 1 MiB. -b sends binary frames and expects binary echoes
 * (text otherwise; a binary echo of a text message, or the reverse, is an
 * error). Echoes may arrive in any number of fragments and lws reads; they
 * are gathered whole before the check.
 *
 * Two send modes (libwebsockets does the connect, the handshake, the event
 * loop and all receive-side parsing in both):
 *   batched (default): in each WRITEABLE callback every send owed on that
 *     connection (up to 256 KiB of frames) is framed here (text or binary,
 *     FIN, or fragments with -F; masked as RFC 6455 asks of
 *     a client, mask keys from a cheap xorshift PRNG) and handed to lws in
 *     ONE lws_write(LWS_WRITE_RAW), so one send() carries several frames.
 *   -1 (one-by-one): one lws_write(LWS_WRITE_TEXT) per message, lws framing
 *     and masking (a read of /dev/urandom per frame for the mask key), each
 *     write after the first preceded by lws_send_pipe_choked() (a poll()).
 *     Costs about three syscalls per message, so it saturates sooner.
 */
#include <libwebsockets.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE (1024 * 1024)

struct conn {
	struct lws *wsi;
	int idx;
	int established;
	int dead;
	unsigned to_send;      /* sends owed (initial DEPTH, then one per echo) */
	uint32_t next_tx_seq;  /* sequence number of the next message sent */
	uint32_t next_rx_seq;  /* sequence number expected in the next echo */
	size_t rx_len;         /* bytes of the current message gathered so far */
	unsigned char *rx;     /* msg_size bytes */
};

static const char *host = "127.0.0.1";
static int port = 0, nconns = 100, depth = 16, msg_size = 32;
static double warmup_s = 2, window_s = 5, connect_timeout_s = 10;

static struct conn *conns;
static int n_established, n_dead;
static uint64_t rx_total, tx_total;
static uint64_t errors, err_mismatch, err_conn, err_closed, err_write;
static volatile sig_atomic_t interrupted;
static int one_by_one, binary, use_tls;
#define MAX_BATCH 64
#define BATCH_BYTES (256 * 1024) /* at most this much framed per write... */
static unsigned max_batch;      /* ...so this many messages (>= 1) */
static unsigned char *txbuf;    /* LWS_PRE + max_batch framed messages */
static unsigned char *expect;   /* msg_size bytes */
static int frag_size;           /* -F: payload bytes per frame (0: one) */
static unsigned char *scratch;  /* msg_size bytes, for -F */
static size_t framed_max;       /* bytes of one framed message */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng32(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The payload of message SEQ on connection IDX: printable, exactly SIZE
 * bytes, unique per (connection, sequence) so misrouted or reordered echoes
 * are caught. */
static void put_dec(unsigned char *out, uint32_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--) {
		out[i] = (unsigned char)('0' + v % 10);
		v /= 10;
	}
}

static unsigned char *letters;

static void make_payload(unsigned char *out, int idx, uint32_t seq)
{
	/* "c%05d s%010u " then letters: 19 bytes of header (SIZE >= 20) */
	out[0] = 'c';
	put_dec(out + 1, (uint32_t)idx, 5);
	out[6] = ' ';
	out[7] = 's';
	put_dec(out + 8, seq, 10);
	out[18] = ' ';
	/* out[i] = 'a' + (seq + i) % 26, i >= 19 */
	memcpy(out + 19, letters + seq % 26 + 19, (size_t)msg_size - 19);
}

/* letters[j] = 'a' + j % 26, for j < msg_size + 26 */

static void make_letters(void)
{
	letters = malloc((size_t)msg_size + 26);
	if (!letters) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (int j = 0; j < msg_size + 26; j++)
		letters[j] = (unsigned char)('a' + j % 26);
}

/* XOR N bytes at P with the 4-byte MASK, a word at a time */
static void apply_mask(unsigned char *p, size_t n, const unsigned char mask[4])
{
	uint64_t m8;
	unsigned char mm[8] = { mask[0], mask[1], mask[2], mask[3],
				mask[0], mask[1], mask[2], mask[3] };
	memcpy(&m8, mm, 8);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w ^= m8;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= mask[i & 3];
}

/* One frame header, masked as a client must: returns the mask key. */
static unsigned char *put_header(unsigned char *p, int opcode, int fin,
				 size_t len, unsigned char mask[4])
{
	*p++ = (unsigned char)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		*p++ = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		*p++ = 0x80 | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)(len & 0xff);
	} else {
		*p++ = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			*p++ = (unsigned char)((uint64_t)len >> (8 * i));
	}
	uint32_t m = rng32();
	mask[0] = (unsigned char)(m >> 24);
	mask[1] = (unsigned char)(m >> 16);
	mask[2] = (unsigned char)(m >> 8);
	mask[3] = (unsigned char)m;
	memcpy(p, mask, 4);
	return p + 4;
}

/* Message SEQ of connection IDX framed at P (one frame, or frames of at
 * most frag_size bytes with -F); returns the end. */
static unsigned char *put_message(unsigned char *p, int idx, uint32_t seq)
{
	int opcode = binary ? 0x2 : 0x1;
	unsigned char mask[4];
	if (!frag_size || frag_size >= msg_size) {
		p = put_header(p, opcode, 1, (size_t)msg_size, mask);
		make_payload(p, idx, seq);
		apply_mask(p, (size_t)msg_size, mask);
		return p + msg_size;
	}
	make_payload(scratch, idx, seq);
	for (int off = 0; off < msg_size; off += frag_size) {
		int n = msg_size - off < frag_size ? msg_size - off : frag_size;
		p = put_header(p, off ? 0x0 : opcode, off + n == msg_size,
			       (size_t)n, mask);
		memcpy(p, scratch + off, (size_t)n);
		apply_mask(p, (size_t)n, mask);
		p += n;
	}
	return p;
}

static void count_error(uint64_t *kind)
{
	(*kind)++;
	errors++;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct conn *c = (struct conn *)lws_get_opaque_user_data(wsi);
	unsigned char *buf = txbuf;
	(void)user;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fprintf(stderr, "conn %d: connection error: %s\n",
			c ? c->idx : -1, in ? (const char *)in : "(null)");
		if (c && !c->dead) {
			c->dead = 1;
			c->wsi = NULL;
			n_dead++;
			count_error(&err_conn);
		}
		break;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->established = 1;
		n_established++;
		c->to_send = (unsigned)depth;
		lws_callback_on_writable(wsi);
		break;

	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		if (!one_by_one) {
			unsigned char *p = buf + LWS_PRE;
			unsigned k = 0;
			while (c->to_send > 0 && k < max_batch) {
				p = put_message(p, c->idx, c->next_tx_seq);
				c->next_tx_seq++;
				c->to_send--;
				k++;
			}
			size_t total = (size_t)(p - (buf + LWS_PRE));
			int n = lws_write(wsi, buf + LWS_PRE, total,
					  LWS_WRITE_RAW);
			if (n < (int)total) {
				count_error(&err_write);
				return -1;
			}
			tx_total += k;
			if (c->to_send > 0)
				lws_callback_on_writable(wsi);
			break;
		}
		int first = 1;
		while (c->to_send > 0) {
			if (!first && lws_send_pipe_choked(wsi))
				break;
			first = 0;
			make_payload(buf + LWS_PRE, c->idx, c->next_tx_seq);
			int n = lws_write(wsi, buf + LWS_PRE, (size_t)msg_size,
					  binary ? LWS_WRITE_BINARY
						 : LWS_WRITE_TEXT);
			if (n < msg_size) {
				count_error(&err_write);
				return -1;
			}
			c->next_tx_seq++;
			c->to_send--;
			tx_total++;
		}
		if (c->to_send > 0)
			lws_callback_on_writable(wsi);
		break;
	}

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!lws_frame_is_binary(wsi) != !binary ||
		    c->rx_len + len > (size_t)msg_size) {
			count_error(&err_mismatch);
			if (err_mismatch <= 5)
				fprintf(stderr, "conn %d: echo %s (expected "
					"seq %u)\n", c->idx,
					!lws_frame_is_binary(wsi) != !binary
						? "of the wrong type"
						: "longer than sent",
					c->next_rx_seq);
			c->rx_len = 0;
			return -1;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			break;
		/* a whole message */
		make_payload(expect, c->idx, c->next_rx_seq);
		if (c->rx_len != (size_t)msg_size ||
		    memcmp(c->rx, expect, (size_t)msg_size) != 0) {
			count_error(&err_mismatch);
			if (err_mismatch <= 5)
				fprintf(stderr,
					"conn %d: echo mismatch (len %zu, "
					"expected seq %u)\n",
					c->idx, c->rx_len, c->next_rx_seq);
		}
		c->next_rx_seq++;
		c->rx_len = 0;
		rx_total++;
		c->to_send++;
		lws_callback_on_writable(wsi);
		break;

	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c && !c->dead) {
			c->dead = 1;
			c->wsi = NULL;
			n_dead++;
			if (!interrupted)
				count_error(&err_closed);
		}
		break;

	default:
		break;
	}
	return 0;
}

static struct lws_protocols protocols[] = {
	{ "echo-load", callback, 0, 0 /* set in main */, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* A periodic timer so the service loop wakes even if traffic stalls. */
static lws_sorted_usec_list_t tick_sul;
static struct lws_context *ctx;
static void tick(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(ctx, 0, sul, tick, 50 * LWS_US_PER_MS);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lws-echo-load -p PORT [-h HOST] [-c CONNS] [-d DEPTH] "
		"[-s SIZE] [-w WARMUP_S] [-t WINDOW_S] [-T CONNECT_TIMEOUT_S] "
		"[-1 (one lws_write per message)] [-b (binary)] "
		"[-F FRAG (send each message as frames of FRAG bytes)] "
		"[-S (wss://, self-signed certificate accepted)]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "h:p:c:d:s:w:t:T:1bF:S")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 'd': depth = atoi(optarg); break;
		case 's': msg_size = atoi(optarg); break;
		case 'w': warmup_s = atof(optarg); break;
		case 't': window_s = atof(optarg); break;
		case 'T': connect_timeout_s = atof(optarg); break;
		case '1': one_by_one = 1; break;
		case 'b': binary = 1; break;
		case 'F': frag_size = atoi(optarg); break;
		case 'S': use_tls = 1; break;
		default: usage();
		}
	}
	if (port <= 0 || nconns <= 0 || nconns > 99999 || depth <= 0 ||
	    msg_size < 20 || msg_size > MAX_SIZE || warmup_s < 0 ||
	    window_s <= 0)
		usage();
	if (frag_size < 0 || (frag_size && one_by_one))
		usage();
	{
		size_t frames = frag_size && frag_size < msg_size
			? ((size_t)msg_size + frag_size - 1) / frag_size : 1;
		framed_max = (size_t)msg_size + 14 * frames;
	}
	max_batch = (unsigned)(BATCH_BYTES / framed_max);
	if (max_batch < 1)
		max_batch = 1;
	if (max_batch > MAX_BATCH)
		max_batch = MAX_BATCH;
	txbuf = malloc(LWS_PRE + (size_t)max_batch * framed_max);
	expect = malloc((size_t)msg_size);
	scratch = malloc((size_t)msg_size);
	make_letters();
	if (!txbuf || !expect || !scratch) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	/* bytes per RECEIVE callback, and so per read() of the socket: the
	 * whole message up to 64 KiB, but never less than 64 KiB's worth of
	 * small messages (a buffer of one 32-byte message made every read
	 * return one message, and the client measured itself) */
	protocols[0].rx_buffer_size = 65536 + LWS_PRE;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR, NULL);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = (unsigned)(nconns + 16);
	info.timeout_secs = (unsigned)connect_timeout_s + 1;
	info.pt_serv_buf_size = 65536; /* bytes per read() (default 4096) */
	if (use_tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws_create_context failed\n");
		return 1;
	}

	conns = calloc((size_t)nconns, sizeof *conns);
	for (int i = 0; i < nconns; i++) {
		struct lws_client_connect_info ci;
		memset(&ci, 0, sizeof ci);
		conns[i].idx = i;
		conns[i].rx = malloc((size_t)msg_size);
		if (!conns[i].rx) {
			fprintf(stderr, "out of memory\n");
			return 1;
		}
		ci.context = ctx;
		ci.address = host;
		ci.port = port;
		ci.path = "/";
		ci.host = host;
		ci.origin = host;
		ci.protocol = NULL; /* no subprotocol requested */
		if (use_tls)
			ci.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
				LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
		ci.local_protocol_name = protocols[0].name;
		ci.opaque_user_data = &conns[i];
		ci.pwsi = &conns[i].wsi;
		if (!lws_client_connect_via_info(&ci) && !conns[i].dead) {
			fprintf(stderr, "conn %d: connect failed\n", i);
			conns[i].dead = 1;
			n_dead++;
			count_error(&err_conn);
		}
	}
	tick(&tick_sul);

	/* connect phase */
	double t0 = now();
	while (!interrupted && n_established + n_dead < nconns) {
		if (now() - t0 > connect_timeout_s) {
			fprintf(stderr, "connect timeout: %d/%d established\n",
				n_established, nconns);
			break;
		}
		lws_service(ctx, 0);
	}
	if (n_established == 0) {
		printf("RESULT msgs=0 secs=0 msg_per_s=0 errors=%llu conns=0 "
		       "client_cpu=0\n", (unsigned long long)(errors + 1));
		lws_context_destroy(ctx);
		return 1;
	}
	double t_connect = now() - t0;

	/* warm-up */
	double tw = now();
	while (!interrupted && now() - tw < warmup_s)
		lws_service(ctx, 0);

	/* measured window */
	/* a marker for a harness sampling other processes over the window */
	printf("WINDOW_START\n");
	fflush(stdout);
	uint64_t rx0 = rx_total, err0 = errors;
	double cpu0 = cpu_seconds();
	double ts = now(), te = ts;
	while (!interrupted && (te = now()) - ts < window_s)
		lws_service(ctx, 0);
	uint64_t rx1 = rx_total;
	double cpu1 = cpu_seconds();
	double secs = te - ts;
	int live = n_established - n_dead;
	if (live < 0)
		live = 0;

	printf("RESULT msgs=%llu secs=%.3f msg_per_s=%.0f errors=%llu "
	       "conns=%d client_cpu=%.1f mode=%s type=%s size=%d "
	       "mb_per_s=%.2f\n",
	       (unsigned long long)(rx1 - rx0), secs, (rx1 - rx0) / secs,
	       (unsigned long long)errors, live,
	       100.0 * (cpu1 - cpu0) / secs,
	       one_by_one ? "one-by-one" : "batched",
	       binary ? "binary" : "text", msg_size,
	       (double)(rx1 - rx0) * msg_size / secs / 1e6);
	fprintf(stderr,
		"detail: connect %.3fs, established %d/%d, sent %llu, "
		"received %llu, errors in window %llu (mismatch %llu, "
		"conn %llu, closed %llu, write %llu)\n",
		t_connect, n_established, nconns,
		(unsigned long long)tx_total, (unsigned long long)rx_total,
		(unsigned long long)(errors - err0),
		(unsigned long long)err_mismatch, (unsigned long long)err_conn,
		(unsigned long long)err_closed, (unsigned long long)err_write);
	fflush(stdout);

	interrupted = 1; /* closes from here on are ours, not errors */
	lws_context_destroy(ctx);
	for (int i = 0; i < nconns; i++)
		free(conns[i].rx);
	free(conns);
	free(txbuf);
	free(expect);
	free(scratch);
	free(letters);
	return 0;
}

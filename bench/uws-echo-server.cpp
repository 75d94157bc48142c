/*
 * uws-echo-server: a minimal uWebSockets (C++, on uSockets) peer for
 * bench/echo.sh and bench/scenarios.sh (no duplex code).
 *
 *   uws-echo-server [--host 127.0.0.1] [--port 0]
 *
 * First stdout line: "uws: listening on ws://HOST:PORT" (port 0 lets the
 * kernel choose; the real port is printed).
 *
 * Two routes, the protocol of lua/duplex/bench_app.lua:
 *   /broadcast  every connection subscribes to the topic "bench"; a message
 *               from one is published to all the others (ws->publish: uWS
 *               frames it once and leaves the sender out), same opcode
 *   any other   echo: every message goes back to its sender, same opcode
 *
 * uWS gathers a message whole (fragments included) before the message
 * handler, and answers pings and the close handshake itself. Settings, all
 * chosen so that no limit of uWS's acts inside a bench run:
 *   compression off (uWS's default, and duplex's);
 *   maxPayloadLength 16 MiB (uWS's default, 16 KiB, would refuse scenario
 *     C's 64 KiB messages);
 *   maxBackpressure 64 MiB, closeOnBackpressureLimit off: over its limit uWS
 *     does not stop reading, it DROPS the message (send returns DROPPED), so
 *     the limit is set far above what a closed-loop client can queue, and a
 *     drop is counted and reported on stderr rather than lost silently;
 *   idleTimeout 120 s and automatic pings: uWS's defaults, longer than any
 *     run (a socket idle that long is closed; none is in a bench).
 * SIGTERM / SIGINT end the process (the default action): the bench kills it.
 */
#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct PerSocket {};  // no state per connection

unsigned long dropped;  // messages uWS refused over maxBackpressure

template <class Behavior> Behavior settings() {
	Behavior b;
	b.compression = uWS::DISABLED;
	b.maxPayloadLength = 16 * 1024 * 1024;
	b.maxBackpressure = 64 * 1024 * 1024;
	b.closeOnBackpressureLimit = false;
	b.idleTimeout = 120;
	b.sendPingsAutomatically = true;
	b.dropped = [](auto *, std::string_view message, uWS::OpCode) {
		// rare by construction; a line each so a run with drops shows it
		fprintf(stderr, "uws: dropped a %zu B message over maxBackpressure (%lu so far)\n",
			message.size(), ++dropped);
	};
	return b;
}

}  // namespace

int main(int argc, char **argv) {
	std::string host = "127.0.0.1";
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host") && i + 1 < argc) {
			host = argv[++i];
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: uws-echo-server [--host H] [--port P]\n");
			return 2;
		}
	}

	using Behavior = uWS::App::WebSocketBehavior<PerSocket>;
	Behavior bcast = settings<Behavior>();
	bcast.open = [](auto *ws) { ws->subscribe("bench"); };
	bcast.message = [](auto *ws, std::string_view message, uWS::OpCode op) {
		ws->publish("bench", message, op);
	};
	Behavior echo = settings<Behavior>();
	echo.message = [](auto *ws, std::string_view message, uWS::OpCode op) {
		ws->send(message, op);
	};

	bool listening = false;
	uWS::App()
		.ws<PerSocket>("/broadcast", std::move(bcast))
		.ws<PerSocket>("/*", std::move(echo))
		.listen(host, port, [&](us_listen_socket_t *ls) {
			if (!ls) return;
			listening = true;
			int real = us_socket_local_port(0, (us_socket_t *) ls);
			printf("uws: listening on ws://%s:%d\n", host.c_str(), real);
			fflush(stdout);
		})
		.run();
	if (!listening) {
		fprintf(stderr, "uws: cannot listen on %s:%d\n", host.c_str(), port);
		return 1;
	}
	return 0;
}

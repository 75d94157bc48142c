/* duplex.js: the browser client of a duplex app, served by every app at
 * /duplex.js (server option client_js). One file, no dependencies, no
 * build step: <script src="/duplex.js"></script> defines `duplex`.
 *
 *   const c = duplex.connect("/chat?name=ada", {  // or a function giving it, asked at each attempt
 *     message(data, c) {},                 // a message from the server
 *     state(state, detail, c) {},          // "connecting", "open", "reconnecting", "closed"
 *   }, { queue: 100, backoff: { min: 500, max: 10000 }, protocols: [] });
 *   c.send("hello");                       // true: sent or queued; false: queue full or closed
 *   c.subscribe("news", {                  // a topic, if the app's subscribe handler consents
 *     message(data, position) {},          // a publication, in order
 *     recovered(info) {},                  // after a reconnect: info.missed came again
 *     lost(reason) {},                     // what was missed cannot be had: reload the state
 *     refused(reason) {},                  // the app said no
 *   });
 *   c.unsubscribe("news");
 *   c.close(1000, "bye");                  // closed for good
 *
 * A WebSocket that reconnects by itself: after a drop it tries
 * again after a delay drawn at random between backoff.min and a ceiling
 * that doubles from min up to backoff.max at each failed attempt (full
 * jitter), the ceiling back to min once a connection stayed open
 * `stable` ms; at once when the window comes back `online` (and not at
 * all while navigator.onLine is false). Sends made while it is not open
 * wait in order, up to `queue` of them, and leave when it opens. It stops
 * for good on c.close(), on a close code 4000-4999 from the server (the
 * app's way to say "do not come back"), and when the upgrade is refused:
 * a WebSocket that fails before opening twice in a row while the server
 * answers HTTP (a HEAD of /duplex.js on the same host) is taken as
 * refused; when that probe fails too the server is unreachable and the
 * client keeps trying.
 *
 * It offers the subprotocol duplex.1 (beside `protocols`). Spoken, text
 * messages are the app's as they are; binary ones carry a tag byte: 0x00
 * the app's, 0x01 a control (JSON: hello, sub, recovered), 0x02 a
 * heartbeat, 0x03 a topic's publication (u16 topic length, topic, u8
 * position length, position, u8 flags (bit 0: binary), data). The client
 * keeps each topic's last position and, after a reconnect, subscribes
 * again from it: what was missed comes in order before new ones, or lost()
 * says it cannot. After the server's hello, a socket that brings nothing
 * (not even a heartbeat) for twice its ping interval and a grace is
 * dropped as dead.
 *
 * When no WebSocket gets through (the page has no WebSocket, or one fails
 * before opening while the server answers HTTP), it falls back, for the
 * rest of its life, to a session of Server-Sent Events down and POSTs up
 * on the same route (SSESocket below), with the same behaviour: the app
 * cannot tell but for ws.transport. Only when that fails too is the
 * upgrade taken as refused. */
(function (root) {
  "use strict";

  var STATES = ["connecting", "open", "reconnecting", "closed"];
  var PROTOCOL = "duplex.1";
  var enc, dec;             // made when first needed

  function text(u) {
    return (dec = dec || new TextDecoder()).decode(u);
  }

  // path_or_url -> a ws:// or wss:// URL: a relative path or an http(s)
  // URL resolves against the page, its scheme following the page's.
  function wsURL(target) {
    var base = root.location ? root.location.href : undefined;
    var u = new URL(String(target), base);
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    return u.href;
  }

  // The HTTP origin of a ws:// URL: where the refusal probe goes.
  function httpOrigin(url) {
    var u = new URL(url);
    return (u.protocol === "wss:" ? "https://" : "http://") + u.host;
  }

  // ---- the fallback transport ----

  function b64bytes(s) {
    var bin = atob(s), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }

  // One client frame (masked with a zero key: the server requires the
  // mask bit, and a zero key leaves the bytes as they are).
  function frame(op, u) {
    var n = u.length, h = n < 126 ? 6 : n < 65536 ? 8 : 14;
    var f = new Uint8Array(h + n), v = new DataView(f.buffer);
    f[0] = 0x80 | op;
    if (n < 126) f[1] = 0x80 | n;
    else if (n < 65536) { f[1] = 0x80 | 126; v.setUint16(2, n); }
    else { f[1] = 0x80 | 127; v.setUint32(2, Math.floor(n / 4294967296)); v.setUint32(6, n >>> 0); }
    f.set(u, h);
    return f;
  }

  function bytesOf(data) {
    return data instanceof ArrayBuffer ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  // What a WebSocket is to connect(), over an EventSource for what comes
  // down and POSTs of WebSocket frames for what goes up (one POST at a
  // time, numbered, so they are taken in order and once however they are
  // retried). Each event's first character says what it carries: o the
  // session, t text, T text in base64, b binary in base64, p a ping, q a
  // pong, c the close.
  function SSESocket(url, protocols) {
    var self = this, u = new URL(url);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.searchParams.set("duplex_protocols", protocols.join(","));
    var post = u.origin + u.pathname, session = null, seq = 0, max = 0;
    var out = [], posting = false, done = false, es;
    self.readyState = 0;
    self.protocol = "";
    self.binaryType = "arraybuffer";

    function finish(code, reason, clean) {
      if (done) return;
      done = true;
      self.readyState = 3;
      es.close();
      if (self.onclose) self.onclose({ code: code, reason: reason, wasClean: clean });
    }

    // Sends what waits, a batch per POST (at most one message of max with
    // its header, or one message alone when it is larger: the server
    // closes 1009 then, as over a WebSocket).
    function pump() {
      if (posting || !session || !out.length) return;
      if (out[0] instanceof Blob) {
        posting = true;
        return out[0].arrayBuffer().then(function (b) {
          posting = false;
          out[0] = frame(2, new Uint8Array(b));
          pump();
        }, function () { posting = false; finish(1006, "unreadable Blob", false); });
      }
      var batch = [], len = 0;
      while (out.length && !(out[0] instanceof Blob) && (!batch.length || len + out[0].length <= max + 14)) {
        len += out[0].length;
        batch.push(out.shift());
      }
      var body = new Uint8Array(len), at = 0;
      batch.forEach(function (f) { body.set(f, at); at += f.length; });
      send(body, seq++, 0);
    }

    function send(body, n, tries) {
      posting = true;
      fetch(post + "?duplex_session=" + session + "&seq=" + n, {
        method: "POST", body: body, cache: "no-store",
        headers: { "Content-Type": "text/plain" },   // a simple request: no preflight to another origin
      }).then(function (res) {
        posting = false;
        if (res.status === 204) return pump();
        if (res.status === 404 || res.status === 413 || res.status === 400) {
          // Gone, or closed by what this body held: its close event says
          // so when it can; else the session is lost.
          return setTimeout(function () { finish(1006, "session " + res.status, false); }, 1000);
        }
        retry(body, n, tries);
      }, function () {
        posting = false;
        retry(body, n, tries);
      });
    }

    // A POST that failed on the way is sent again as it was: taken once.
    function retry(body, n, tries) {
      if (done) return;
      if (tries >= 4) return finish(1006, "POST failed", false);
      setTimeout(function () { if (!done) send(body, n, tries + 1); }, 250 * (tries + 1));
    }

    function queue(f) {
      if (done) return;
      out.push(f);
      pump();
    }

    es = new EventSource(u.href);
    es.onmessage = function (ev) {
      if (done) return;
      var d = ev.data, k = d.charAt(0), body = d.slice(1), m;
      if (k === "t") return self.onmessage && self.onmessage({ data: body });
      if (k === "T") return self.onmessage && self.onmessage({ data: text(b64bytes(body)) });
      if (k === "b") return self.onmessage && self.onmessage({ data: b64bytes(body).buffer });
      if (k === "p") return queue(frame(10, b64bytes(body)));
      if (k === "o") {
        m = JSON.parse(body);
        session = m.session;
        max = m.max || 65536;
        self.protocol = m.protocol || "";
        self.readyState = 1;
        if (self.onopen) self.onopen({});
        return;
      }
      if (k === "c") {
        var c = b64bytes(body);
        finish(c.length >= 2 ? (c[0] << 8) | c[1] : 1005, c.length > 2 ? text(c.subarray(2)) : "", true);
      }
    };
    es.onerror = function () { finish(1006, "", false); };

    self.send = function (data) {
      if (self.readyState !== 1) return;
      if (typeof data === "string") queue(frame(1, (enc = enc || new TextEncoder()).encode(data)));
      else if (data instanceof Blob) queue(data);
      else queue(frame(2, bytesOf(data)));
    };

    // The close goes up as a frame; the stream ends when the server has it
    // (or at once when there is no session to tell).
    self.close = function (code, reason) {
      if (done) return;
      if (self.readyState !== 1) return finish(code || 1005, reason || "", false);
      var r = (enc = enc || new TextEncoder()).encode(reason || ""), p = new Uint8Array(code ? 2 + r.length : 0);
      if (code) { p[0] = code >> 8; p[1] = code & 255; p.set(r, 2); }
      self.readyState = 2;
      out.push(frame(8, p));
      pump();
      setTimeout(function () { finish(code || 1005, reason || "", true); }, 2000);
    };
  }

  function connect(target, handlers, options) {
    handlers = handlers || {};
    options = options || {};
    var backoff = options.backoff || {};
    var cfg = {
      url: wsURL(typeof target === "function" ? target() : target),
      queue: options.queue === undefined ? 100 : options.queue,
      min: backoff.min === undefined ? 500 : backoff.min,
      max: backoff.max === undefined ? 10000 : backoff.max,
      stable: options.stable === undefined ? 5000 : options.stable,
      protocols: (options.protocols || []).concat(PROTOCOL),
      binaryType: options.binaryType || "arraybuffer",
      grace: options.grace === undefined ? 2000 : options.grace,
    };
    if (cfg.max < cfg.min) cfg.max = cfg.min;

    var ws = null;          // the WebSocket of this attempt, or null
    var timer = null;       // the pending reconnect, or null
    var queue = [];         // sends waiting for an open socket
    var failures = 0;       // attempts since the last stable connection
    var attempt = 0;        // attempts made in all
    var openedAt = 0;       // when the current socket opened (0: it did not)
    var refusedOnce = false; // the previous attempt failed before opening, the server answering HTTP
    var waitingOnline = false;
    var topics = {};        // topic -> { h: its handlers, pos: its last position or null }
    var fallback = typeof WebSocket !== "function"; // events and POSTs instead of a WebSocket
    var duplex1 = false;    // the current socket speaks duplex.1
    var dead = null;        // the dead-connection timer, and its span (ms)
    var deadMs = 0, lastRx = 0;

    var c = {
      state: "connecting",
      url: cfg.url,
      send: send,
      close: close,
      subscribe: subscribe,
      unsubscribe: unsubscribe,
    };

    // A page's handler: what it throws is reported (as uncaught, later),
    // and stops neither the client nor the messages after it.
    function call(fn, a, b) {
      if (fn) try { fn(a, b, c); } catch (e) { setTimeout(function () { throw e; }); }
    }

    // A control (0x01, JSON) on the open socket.
    function control(m) {
      var b = (enc = enc || new TextEncoder()).encode(" " + JSON.stringify(m));
      b[0] = 1;
      if (ws && duplex1 && ws.readyState === 1) ws.send(b);
    }

    function subscribe(topic, h) {
      if (c.state === "closed") return false;
      topics[topic] = { h: h || {}, pos: topics[topic] ? topics[topic].pos : null };
      if (ws && ws.readyState === 1) ask(topic);
      return true;
    }

    // Subscribes topic on the open socket, from its last position; a
    // server that does not speak duplex.1 cannot: refused.
    function ask(topic) {
      var t = topics[topic];
      if (duplex1) return control({ t: "sub", topic: topic, since: t.pos });
      delete topics[topic];
      call(t.h.refused || t.h.lost, "unsupported");
    }

    function unsubscribe(topic) {
      if (!topics[topic]) return false;
      delete topics[topic];
      control({ t: "unsub", topic: topic });
      return true;
    }

    // No frame for deadMs: the connection is dead, whatever the socket says.
    function touch() {
      var left = lastRx + deadMs - Date.now();
      dead = left > 0 ? setTimeout(touch, left) : (drop("dead"), null);
    }

    // A message of the duplex.1 socket (ArrayBuffer d).
    function tagged(d) {
      var u = new Uint8Array(d), tag = u[0], m, t;
      if (tag === 0) return app(d.slice(1));
      if (tag === 1) {
        m = JSON.parse(text(u.subarray(1)));
        t = topics[m.topic];
        if (m.t === "hello") {
          deadMs = m.ping > 0 ? m.ping * 2000 + cfg.grace : 0;
          if (deadMs && !dead) touch();
        } else if (t && m.t === "sub" && !m.ok) {
          delete topics[m.topic];
          call(t.h.refused || t.h.lost, m.reason);
        } else if (t && m.t === "recovered") {
          if (m.ok) return call(t.h.recovered, m);
          t.pos = m.position || null;    // the page reloads its state as of now
          call(t.h.lost, m.reason);
        }
      } else if (tag === 3) {
        var n = (u[1] << 8) | u[2], p = 4 + n, q = p + u[3 + n];
        t = topics[text(u.subarray(3, 3 + n))];
        if (!t) return;
        var pos = text(u.subarray(p, q)) || null;
        if (pos) t.pos = pos;
        var data = u[q] & 1 ? blob(d.slice(q + 1)) : text(u.subarray(q + 1));
        call(t.h.message, data, pos);
      }
    }

    function blob(d) {
      return cfg.binaryType === "blob" ? new Blob([d]) : d;
    }

    function app(data) {
      call(handlers.message, typeof data === "string" ? data : blob(data), c);
    }

    // What goes on the wire for data: the app's binary message tagged 0x00 on duplex.1.
    function wire(data) {
      if (!duplex1 || typeof data === "string") return data;
      var b = data instanceof ArrayBuffer ? new Uint8Array(data)
        : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
      if (!b) return new Blob([new Uint8Array(1), data]);
      var out = new Uint8Array(b.length + 1);
      out.set(b, 1);
      return out;
    }

    function report(state, detail) {
      c.state = state;
      if (handlers.state) {
        try { handlers.state(state, detail, c); } catch (e) { setTimeout(function () { throw e; }); }
      }
    }

    function send(data) {
      if (c.state === "closed") return false;
      if (ws && c.state === "open" && ws.readyState === 1) {
        ws.send(wire(data));
        return true;
      }
      if (queue.length >= cfg.queue) return false;
      queue.push(data);
      return true;
    }

    function close(code, reason) {
      if (c.state === "closed") return;
      stop();
      var s = ws;
      ws = null;
      if (s) {
        detach(s);
        try { s.close(code || 1000, reason || ""); } catch (e) { s.close(); }
      }
      report("closed", { code: code || 1000, reason: reason || "", by: "client" });
    }

    function stop() {
      if (timer) clearTimeout(timer);
      if (dead) clearTimeout(dead);
      timer = dead = null;
      queue = [];
      waitingOnline = false;
      if (root.removeEventListener) {
        root.removeEventListener("online", onOnline);
        root.removeEventListener("offline", onOffline);
      }
    }

    function detach(s) {
      s.onopen = s.onmessage = s.onclose = s.onerror = null;
    }

    // open() picks the transport: a WebSocket, or once none got through,
    // the fallback behind the same onopen/onmessage/onclose.
    function open() {
      timer = null;
      if (c.state === "closed") return;
      if (root.navigator && root.navigator.onLine === false) {
        waitingOnline = true;        // the online event brings us back
        return;
      }
      attempt++;
      if (typeof target === "function") c.url = cfg.url = wsURL(target());   // asked again at each attempt
      var s;
      try {
        s = fallback ? new SSESocket(cfg.url, cfg.protocols) : new WebSocket(cfg.url, cfg.protocols);
      } catch (e) {                   // a bad URL or protocol: nothing to retry
        stop();
        report("closed", { code: 1006, reason: String(e && e.message || e), by: "client" });
        return;
      }
      ws = s;
      openedAt = 0;
      s.binaryType = "arraybuffer";
      duplex1 = false;
      deadMs = 0;
      s.onopen = function () {
        openedAt = Date.now();
        refusedOnce = false;
        duplex1 = s.protocol === PROTOCOL;
        // Every topic again, from its position, before the queue (the
        // server answers in order); the queue leaves first, so a send
        // made by the state handler comes after it.
        for (var t in topics) ask(t);
        while (queue.length && ws === s && s.readyState === 1) s.send(wire(queue.shift()));
        if (ws === s) report("open", { attempt: attempt, protocol: s.protocol, url: cfg.url,
                                       transport: fallback ? "sse" : "websocket" });
      };
      s.onmessage = function (ev) {
        if (ws !== s) return;
        lastRx = Date.now();
        if (duplex1 && typeof ev.data !== "string") tagged(ev.data);
        else app(ev.data);
      };
      s.onclose = function (ev) {
        detach(s);
        if (ws !== s) return;
        if (dead) clearTimeout(dead);
        dead = null;
        ws = null;
        dropped(ev.code, ev.reason, ev.wasClean, openedAt);
      };
    }

    // The socket ended (code, reason) without the page asking.
    function dropped(code, reason, wasClean, opened) {
      if (c.state === "closed") return;
      if (code >= 4000 && code <= 4999) {
        stop();
        report("closed", { code: code, reason: reason, by: "server" });
        return;
      }
      if (opened) {
        if (Date.now() - opened >= cfg.stable) failures = 0;
        retry({ code: code, reason: reason, wasClean: wasClean });
        return;
      }
      // Failed before opening: the server refused the upgrade, or cannot
      // be reached. A HEAD of /duplex.js tells them apart. A server that
      // answers HTTP twice while no WebSocket gets through gets the
      // fallback; when that fails twice as well, the upgrade is refused.
      probe(function (answers, status) {
        if (c.state === "closed" || ws) return;
        if (answers && refusedOnce && !fallback && typeof EventSource === "function") {
          fallback = true;           // the server is there and no WebSocket got through: events and POSTs
          refusedOnce = false;
          retry({ code: code, reason: reason, probe: status, fallback: true }, 0);
        } else if (answers && refusedOnce) {
          stop();
          report("closed", { code: code, reason: "refused", refused: true, status: status, by: "server" });
        } else if (answers) {
          refusedOnce = true;        // once more at once: the server may just have come up
          retry({ code: code, reason: reason, probe: status }, 0);
        } else {
          refusedOnce = false;
          retry({ code: code, reason: "unreachable" });
        }
      });
    }

    function probe(done) {
      if (typeof fetch !== "function") return done(false);
      fetch(httpOrigin(cfg.url) + "/duplex.js", { method: "HEAD", cache: "no-store", mode: "no-cors" })
        .then(function (res) {
          // 503: the server is full (max_connections) and answers so to
          // upgrades too: that passes, try again later.
          done(res.status !== 503, res.status);
        }, function () { done(false); });
    }

    // The next attempt after a delay (full jitter between min and a
    // ceiling doubling per failure up to max), or after `delay` ms.
    function retry(detail, delay) {
      failures++;
      if (delay === undefined) {
        var ceiling = Math.min(cfg.max, cfg.min * Math.pow(2, failures));
        delay = Math.round(cfg.min + Math.random() * (ceiling - cfg.min));
      }
      detail.attempt = attempt + 1;
      detail.delay = delay;
      if (root.navigator && root.navigator.onLine === false) detail.offline = true;
      timer = setTimeout(open, delay);     // before the report: a close() in it clears it
      report("reconnecting", detail);
    }

    // Back online: whatever the backoff said, try now.
    function onOnline() {
      if (c.state === "closed" || ws) return;
      if (timer || waitingOnline) {
        if (timer) clearTimeout(timer);
        waitingOnline = false;
        refusedOnce = false;
        if (c.state !== "connecting") report("reconnecting", { attempt: attempt + 1, delay: 0, online: true });
        open();
      }
    }

    // Offline: the socket cannot carry anything and may not notice for
    // minutes; drop it and wait for the online event.
    function onOffline() {
      drop("offline");
    }

    function drop(why) {
      if (dead) clearTimeout(dead);
      dead = null;
      if (c.state === "closed" || !ws) return;
      var s = ws;
      ws = null;
      detach(s);
      try { s.close(); } catch (e) { /* closing already */ }
      dropped(1006, why, false, openedAt);
    }

    if (root.addEventListener) {
      root.addEventListener("online", onOnline);
      root.addEventListener("offline", onOffline);
    }
    report("connecting", { attempt: 1, url: cfg.url });
    open();
    return c;
  }

  var duplex = { connect: connect, states: STATES };
  root.duplex = duplex;
  if (typeof module === "object" && module.exports) module.exports = duplex;
})(typeof self !== "undefined" ? self : this);

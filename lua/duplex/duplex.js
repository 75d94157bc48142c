/* duplex.js: the browser client of a duplex app, served by every app at
 * /duplex.js (server option client_js). One file, no dependencies, no
 * build step: <script src="/duplex.js"></script> defines `duplex`.
 *
 *   const c = duplex.connect("/chat?name=ada", {
 *     message(data, c) {},                 // a message from the server
 *     state(state, detail, c) {},          // "connecting", "open", "reconnecting", "closed"
 *   }, { queue: 100, backoff: { min: 500, max: 10000 }, protocols: [] });
 *   c.send("hello");                       // true: sent or queued; false: queue full or closed
 *   c.close(1000, "bye");                  // closed for good
 *
 * This slice: a WebSocket that reconnects by itself. After a drop it tries
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
 * Coming later (marked EXTENSION below, the API is made to take them
 * without breaking): topics from the page (c.subscribe(topic, handler),
 * c.unsubscribe(topic), with the app's consent) and resume from each
 * topic's last position after a reconnect; dead-connection detection from
 * the server's heartbeats; and a fallback transport (Server-Sent Events
 * down, POST up) when no WebSocket gets through. */
(function (root) {
  "use strict";

  var STATES = ["connecting", "open", "reconnecting", "closed"];

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

  function connect(target, handlers, options) {
    handlers = handlers || {};
    options = options || {};
    var backoff = options.backoff || {};
    var cfg = {
      url: wsURL(target),
      queue: options.queue === undefined ? 100 : options.queue,
      min: backoff.min === undefined ? 500 : backoff.min,
      max: backoff.max === undefined ? 10000 : backoff.max,
      stable: options.stable === undefined ? 5000 : options.stable,
      protocols: options.protocols || [],
      binaryType: options.binaryType || "arraybuffer",
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

    var c = {
      state: "connecting",
      url: cfg.url,
      send: send,
      close: close,
      // EXTENSION topics: subscribe(topic, { message(data, position), lost(reason) }),
      // unsubscribe(topic). A map topic -> { handler, position } kept across
      // reconnects; on open, each topic is subscribed again with `since`
      // its last position, and the server's replay comes before new messages
      // (or a "lost" event tells the page to reload its state). Messages of
      // no topic keep going to handlers.message.
    };

    function report(state, detail) {
      c.state = state;
      if (handlers.state) {
        try { handlers.state(state, detail, c); } catch (e) { setTimeout(function () { throw e; }); }
      }
    }

    function send(data) {
      if (c.state === "closed") return false;
      if (ws && c.state === "open" && ws.readyState === 1) {
        ws.send(data);
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
      timer = null;
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

    // EXTENSION fallback: open() picks the transport. Today a WebSocket;
    // later, when WebSockets cannot get through, an EventSource for what
    // comes down and fetch POSTs for what goes up, behind the same
    // onopen/onmessage/onclose.
    function open() {
      timer = null;
      if (c.state === "closed") return;
      if (root.navigator && root.navigator.onLine === false) {
        waitingOnline = true;        // the online event brings us back
        return;
      }
      attempt++;
      var s;
      try {
        s = new WebSocket(cfg.url, cfg.protocols);
      } catch (e) {                   // a bad URL or protocol: nothing to retry
        stop();
        report("closed", { code: 1006, reason: String(e && e.message || e), by: "client" });
        return;
      }
      ws = s;
      openedAt = 0;
      s.binaryType = cfg.binaryType;
      s.onopen = function () {
        openedAt = Date.now();
        refusedOnce = false;
        // EXTENSION topics: subscribe every topic again here, with its
        // position, before the queue (the server answers in order).
        // EXTENSION heartbeats: arm the dead-connection timer here (no traffic
        // for longer than the server's ping interval and a grace: drop s).
        // The queue leaves first, so a send made by the state handler
        // comes after it.
        while (queue.length && ws === s && s.readyState === 1) s.send(queue.shift());
        if (ws === s) report("open", { attempt: attempt, protocol: s.protocol, url: cfg.url });
      };
      s.onmessage = function (ev) {
        // EXTENSION heartbeats: any message (and the server's heartbeat)
        // re-arms the dead-connection timer.
        // EXTENSION topics: a topic's message goes to its handler and
        // advances its position.
        if (handlers.message) handlers.message(ev.data, c);
      };
      s.onclose = function (ev) {
        detach(s);
        if (ws !== s) return;
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
      // be reached. A HEAD of /duplex.js tells them apart.
      probe(function (answers, status) {
        if (c.state === "closed" || ws) return;
        if (answers && refusedOnce) {
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
      report("reconnecting", detail);
      timer = setTimeout(open, delay);
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
      if (c.state === "closed" || !ws) return;
      var s = ws;
      ws = null;
      detach(s);
      try { s.close(); } catch (e) { /* closing already */ }
      dropped(1006, "offline", false, openedAt);
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

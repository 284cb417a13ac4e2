/*
 * graceful-sse client monitor (plain JavaScript, no build step). https://pypi.org/project/graceful-sse/
 *
 * htmx 2: the SSE extension asks `htmx.createEventSource(url)` for each stream it opens; we answer
 * with a GracefulEventSource, an object with the EventSource interface that owns the real
 * connection. The extension's listeners (sse-swap, sse-close) stay attached across reconnections,
 * and its console.error-on-every-error handler is never called: we decide about reconnecting.
 * htmx 4: hx-sse reconnects by itself (with jitter); we follow its events to show the state, and
 * take over what it would get wrong: a refused first request (403/503) is not swapped into the
 * element; 403 stops, 503 waits Retry-After (first request: we open it again; hx-sse's own
 * reconnection: we hold its next attempt and release it); data-sse-max-attempts bounds its attempts.
 *
 * States (shown by the indicator named in data-sse-status, and fired as `sse:state` with
 * {state, previous, reason}):
 *   connecting, live, reconnecting, restarting, stopped, offline, given-up.
 *   `shutdown` event -> stopped: no request to the server until the user presses Reconnect.
 *   `restart` event  -> restarting: the browser reconnects after the server's random retry, sending
 *                       Last-Event-ID; if that fails, as below.
 *   a dropped stream -> reconnecting: the browser's own first retry (after the server's retry:,
 *                       with Last-Event-ID), then capped exponential backoff with full jitter,
 *                       then given-up (with Reconnect) after data-sse-max-attempts failures.
 *   refused          -> EventSource cannot read a status, so when the browser fails the connection
 *                       (an answer that was not a stream) we ask once with HEAD: 503 -> reconnecting,
 *                       no sooner than its Retry-After (plus the usual jitter); 403 -> stopped,
 *                       reason "forbidden" (shown as "Not allowed"), nothing until Reconnect.
 *   offline          -> no attempts until the browser is online again, then one soon.
 *   hidden page      -> an open stream stays open; a retry that falls due waits until visible.
 *   pagehide (bfcache) closes the connection; pageshow reopens it.
 * Our own reconnections carry the last event id as ?lastEventId= (a new EventSource cannot set
 * headers); graceful-sse's EventStream reads either.
 *
 * data-sse-shared on the stream element shares one connection between the tabs of an origin: a
 * leader tab (elected with the Web Locks API) holds it and relays events and states over a
 * BroadcastChannel; when it closes, the next tab takes over and resumes from the last event id.
 *
 * Options (attributes of the stream element): data-sse-status (indicator id, "sse-status"),
 * data-sse-max-attempts (10), data-sse-backoff-base (1000 ms), data-sse-backoff-cap (30000 ms),
 * data-sse-shared, data-sse-labels (JSON: state -> text).
 */
(function () {
  "use strict";
  if (window.gracefulSSE) return;

  var DEFAULT_LABELS = {
    connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
    restarting: "Server restarting…", stopped: "Server stopped", offline: "Offline",
    "given-up": "Disconnected", forbidden: "Not allowed"
  };
  var NEEDS_ACTION = { stopped: true, "given-up": true };
  var CONNECT_SELECTOR = "[sse-connect],[data-sse-connect],[hx-sse\\:connect],[hx-sse-connect],[data-hx-sse\\:connect]";
  var streams = [];

  /* ---- the page ------------------------------------------------------------------------------ */

  function absolute(url) { return new URL(url, location.href).toString(); }

  function connectUrl(elt) {
    var names = ["sse-connect", "data-sse-connect", "hx-sse:connect", "hx-sse-connect", "data-hx-sse:connect"];
    for (var i = 0; i < names.length; i++) if (elt.hasAttribute(names[i])) return elt.getAttribute(names[i]);
    return null;
  }

  function findElement(url) {
    var wanted = absolute(url).split("?")[0];
    var all = document.querySelectorAll(CONNECT_SELECTOR);
    for (var i = 0; i < all.length; i++) {
      if (absolute(connectUrl(all[i])).split("?")[0] === wanted) return all[i];
    }
    return null;
  }

  function intAttr(elt, name, fallback) {
    var value = parseInt(elt && elt.getAttribute(name), 10);
    return isNaN(value) ? fallback : value;
  }

  function labelsFor(elt) {
    try { return Object.assign({}, DEFAULT_LABELS, JSON.parse(elt.getAttribute("data-sse-labels") || "{}")); }
    catch (e) { return DEFAULT_LABELS; }
  }

  function indicatorFor(elt) {
    return document.getElementById((elt && elt.getAttribute("data-sse-status")) || "sse-status");
  }

  function renderStatus(elt, state, reason) {
    var indicator = indicatorFor(elt);
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    if (reason) indicator.setAttribute("data-reason", reason); else indicator.removeAttribute("data-reason");
    var label = indicator.querySelector(".sse-label");
    var labels = labelsFor(elt);
    if (label) label.textContent = labels[reason] || labels[state] || state;
    var action = indicator.querySelector("[data-sse-reconnect]");
    if (NEEDS_ACTION[state] && !action) {
      action = document.createElement("a");
      action.className = "sse-reconnect";
      action.setAttribute("href", "");
      action.setAttribute("data-sse-reconnect", "");
      action.textContent = "Reconnect";
      indicator.appendChild(action);
    } else if (!NEEDS_ACTION[state] && action) {
      action.remove();
    }
  }

  function announce(elt, state, previous, reason) {
    renderStatus(elt, state, reason);
    var detail = { state: state, previous: previous, reason: reason || "" };
    if (elt) elt.dispatchEvent(new CustomEvent("sse:state", { bubbles: true, detail: detail }));
  }

  function optionsOf(elt) {
    return {
      maxAttempts: intAttr(elt, "data-sse-max-attempts", 10),
      base: intAttr(elt, "data-sse-backoff-base", 1000),
      cap: intAttr(elt, "data-sse-backoff-cap", 30000)
    };
  }

  /* Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(n-1))]. */
  function fullJitter(options, attempt) {
    return Math.random() * Math.min(options.cap, options.base * Math.pow(2, Math.max(0, attempt - 1)));
  }

  /* One HEAD request for the status a stream's answer had (EventStream answers HEAD as it would
     GET, opening nothing); null when the server cannot be reached. */
  function askStatus(url, credentials) {
    return fetch(url, { method: "HEAD", cache: "no-store", credentials: credentials })
      .catch(function () { return null; });
  }

  /* Retry-After in ms: delta-seconds or an HTTP date; 0 when absent or unreadable. */
  function retryAfterMs(response) {
    var value = response.headers.get("Retry-After") || "";
    var seconds = Number(value);
    if (value && !isNaN(seconds)) return Math.max(0, seconds * 1000);
    var date = Date.parse(value);
    return isNaN(date) ? 0 : Math.max(0, date - Date.now());
  }

  function withLastEventId(url, id) {
    var u = new URL(url, location.href);
    if (id) u.searchParams.set("lastEventId", id); else u.searchParams.delete("lastEventId");
    return u.toString();
  }

  /* A stopped or given-up element is reopened as a new element: htmx processes it afresh. */
  function reopenElement(elt) {
    var clone = elt.cloneNode(true);
    elt.replaceWith(clone);
    if (window.htmx) window.htmx.process(clone);
    return clone;
  }

  /* ---- sharing one connection between tabs ---------------------------------------------------- */

  var leaderships = {};

  /* One per URL and tab: the tab that holds the lock is the leader for as long as it lives. */
  function leadership(url) {
    var key = "graceful-sse " + absolute(url).split("?")[0];
    var existing = leaderships[key];
    if (existing) return existing;
    var self = { isLeader: false, channel: new BroadcastChannel(key), owner: null };
    navigator.locks.request(key, function () {
      self.isLeader = true;
      if (self.owner) self.owner._becomeLeader();
      return new Promise(function () {}); // held until the tab goes away
    });
    self.channel.onmessage = function (message) { if (self.owner) self.owner._fromChannel(message.data); };
    leaderships[key] = self;
    return self;
  }

  function canShare() {
    return typeof BroadcastChannel === "function" && navigator.locks && typeof navigator.locks.request === "function";
  }

  /* ---- htmx 2: one stream ---------------------------------------------------------------------- */

  function GracefulEventSource(url, init) {
    this._target = new EventTarget();
    this.url = absolute(url);
    this.withCredentials = !!(init && init.withCredentials);
    this.readyState = 0;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null; // the extension's; never called (see the header)
    this._types = { message: true, shutdown: true, restart: true };
    this._real = null;
    this._lastEventId = "";
    this._attempts = 0;
    this._timer = null;
    this._pendingWhileHidden = false;
    this._state = null;
    this._reason = "";
    this._probing = null;
    this._restartNoticed = false;
    this._elt = findElement(url);
    this._options = optionsOf(this._elt);
    this._shared = null;
    streams.push(this);
    this._setState("connecting");
    if (this._elt && this._elt.hasAttribute("data-sse-shared") && canShare()) {
      this._shared = leadership(this.url);
      this._shared.owner = this;
      if (this._shared.isLeader) this._becomeLeader();
      else this._post({ kind: "hello" });
      return;
    }
    this._start();
  }
  GracefulEventSource.CONNECTING = 0;
  GracefulEventSource.OPEN = 1;
  GracefulEventSource.CLOSED = 2;

  GracefulEventSource.prototype.addEventListener = function (type, fn, options) {
    this._target.addEventListener(type, fn, options);
    if (!this._types[type]) {
      this._types[type] = true;
      if (this._real) this._listen(this._real, type);
    }
  };
  GracefulEventSource.prototype.removeEventListener = function (type, fn, options) {
    this._target.removeEventListener(type, fn, options);
  };
  GracefulEventSource.prototype.dispatchEvent = function (event) { return this._target.dispatchEvent(event); };

  /* Closing from outside (sse-close, a swap that removes the element) is final for this object. */
  GracefulEventSource.prototype.close = function () {
    this.readyState = 2;
    this._closeReal();
    this._clearTimer();
    if (this._shared && this._shared.owner === this) this._shared.owner = null;
    var self = this;
    streams = streams.filter(function (s) { return s !== self; });
  };

  GracefulEventSource.prototype._leads = function () { return !this._shared || this._shared.isLeader; };

  GracefulEventSource.prototype._start = function () {
    if (navigator.onLine === false) this._setState("offline");
    else this._open(withLastEventId(this.url, this._lastEventId));
  };

  GracefulEventSource.prototype._becomeLeader = function () {
    if (this.readyState === 2 || NEEDS_ACTION[this._state]) return; // a stopped tab stays quiet
    this._start();
  };

  GracefulEventSource.prototype._open = function (url) {
    var self = this;
    this._closeReal();
    this.readyState = 0;
    var real = new EventSource(url, { withCredentials: this.withCredentials });
    this._real = real;
    real.onopen = function () { if (real === self._real) self._opened(); };
    real.onerror = function () { if (real === self._real) self._failed(real); };
    Object.keys(this._types).forEach(function (type) { self._listen(real, type); });
  };

  GracefulEventSource.prototype._listen = function (real, type) {
    var self = this;
    real.addEventListener(type, function (event) {
      if (real !== self._real) return;
      self._post({ kind: "event", type: type, data: event.data, lastEventId: event.lastEventId });
      self._deliver(type, event.data, event.lastEventId);
    });
  };

  GracefulEventSource.prototype._opened = function () {
    this.readyState = 1;
    this._attempts = 0;
    this._restartNoticed = false;
    this._setState("live");
    var event = new Event("open");
    if (this.onopen) this.onopen(event);
    this._target.dispatchEvent(event);
  };

  GracefulEventSource.prototype._deliver = function (type, data, lastEventId) {
    if (lastEventId) this._lastEventId = lastEventId;
    if (type === "shutdown") this._stopped();
    if (type === "restart") { this._restartNoticed = true; this._setState("restarting"); }
    var copy = new MessageEvent(type, { data: data, lastEventId: lastEventId || "", origin: location.origin });
    if (type === "message" && this.onmessage) this.onmessage(copy);
    this._target.dispatchEvent(copy);
  };

  GracefulEventSource.prototype._stopped = function (reason) {
    // The server is gone for good, or will not serve us: never ask it again until the user says so.
    this._closeReal();
    this._clearTimer();
    this.readyState = 2;
    this._setState("stopped", reason);
  };

  GracefulEventSource.prototype._failed = function (real) {
    if (this._state === "stopped") return;
    if (!findElement(this.url)) { this.close(); return; } // the element went away without htmx noticing
    if (navigator.onLine === false) { this._offline(); return; }
    this.readyState = 0;
    if (real.readyState === EventSource.CLOSED) { this._probe(); return; } // answered, but not with a stream
    if (real.readyState === EventSource.CONNECTING && this._attempts === 0) {
      // The browser's own retry: after the server's retry: (random on a restart), with Last-Event-ID.
      this._attempts = 1;
      this._setState(this._restartNoticed ? "restarting" : "reconnecting");
      return;
    }
    this._retry(0);
  };

  /* One HEAD request for the status the EventSource could not show us. */
  GracefulEventSource.prototype._probe = function () {
    var self = this;
    this._closeReal();
    var probe = this._probing = {};
    askStatus(this.url, this.withCredentials ? "include" : "same-origin")
      .then(function (response) {
        if (self._probing !== probe) return; // closed or reconnected meanwhile
        self._probing = null;
        var status = response ? response.status : 0;
        if (status === 403) self._stopped("forbidden");
        else self._retry(status === 503 ? retryAfterMs(response) : 0);
      });
  };

  /* Another attempt after at least `minimum` ms, or give up after max attempts. */
  GracefulEventSource.prototype._retry = function (minimum) {
    this._closeReal();
    this._attempts += 1;
    if (this._attempts > this._options.maxAttempts) {
      this.readyState = 2;
      this._setState("given-up");
      return;
    }
    this._setState(this._restartNoticed ? "restarting" : "reconnecting");
    this._schedule(minimum + this._backoff()); // the jitter also spreads clients refused together
  };

  GracefulEventSource.prototype._backoff = function () { return fullJitter(this._options, this._attempts); };

  GracefulEventSource.prototype._schedule = function (delay) {
    var self = this;
    this._clearTimer();
    this._timer = setTimeout(function () {
      self._timer = null;
      if (document.visibilityState === "hidden") { self._pendingWhileHidden = true; return; }
      self._start();
    }, delay);
  };

  GracefulEventSource.prototype._offline = function () {
    this._closeReal();
    this._clearTimer();
    this.readyState = 0;
    this._setState("offline");
  };

  /* Reconnect now (the Reconnect button, coming back online or from the bfcache). */
  GracefulEventSource.prototype.reconnect = function (delay) {
    this._attempts = 0;
    this._restartNoticed = false;
    this.readyState = 0;
    this._setState("connecting");
    if (!this._leads()) { this._post({ kind: "reopen" }); return; }
    if (delay) this._schedule(delay); else this._start();
  };

  GracefulEventSource.prototype._closeReal = function () {
    this._probing = null;
    if (this._real) { var real = this._real; this._real = null; real.close(); }
  };
  GracefulEventSource.prototype._clearTimer = function () {
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._pendingWhileHidden = false;
  };

  GracefulEventSource.prototype._setState = function (state, reason) {
    var previous = this._state;
    reason = reason || "";
    if (previous === state && this._reason === reason) return;
    this._state = state;
    this._reason = reason;
    var elt = findElement(this.url);
    if (elt) this._elt = elt;
    if (this._shared && this._shared.isLeader) this._post({ kind: "state", state: state, reason: reason });
    announce(this._elt, state, previous, reason);
  };

  GracefulEventSource.prototype._post = function (message) {
    if (!this._shared) return;
    if (message.kind === "event" || message.kind === "state") { if (!this._shared.isLeader) return; }
    this._shared.channel.postMessage(message);
  };

  /* Messages from the other tabs of this origin. */
  GracefulEventSource.prototype._fromChannel = function (message) {
    var leads = this._shared.isLeader;
    if (message.kind === "event" && !leads) this._deliver(message.type, message.data, message.lastEventId);
    else if (message.kind === "state" && !leads) this._followState(message.state, message.reason);
    else if (message.kind === "hello" && leads && this._state) {
      this._post({ kind: "state", state: this._state, reason: this._reason });
    }
    else if (message.kind === "reopen") {
      if (this.readyState === 2 || NEEDS_ACTION[this._state]) reopenFor(this);
      else if (leads) this.reconnect(0);
    }
  };

  /* A state the leader relays. Its `shutdown` reaches us as an event, and stops us there; a stop
     with a reason (403) comes only as a state. */
  GracefulEventSource.prototype._followState = function (state, reason) {
    if (state !== "stopped") this._setState(state);
    else if (reason) this._stopped(reason);
  };

  Object.defineProperty(GracefulEventSource.prototype, "state", { get: function () { return this._state; } });

  function reopenFor(stream) {
    var elt = findElement(stream.url);
    stream.close();
    if (elt) reopenElement(elt);
  }

  /* ---- htmx 4: follow hx-sse's events ---------------------------------------------------------- */

  function isHtmx4() { return !!(window.htmx && String(window.htmx.version || "").charAt(0) === "4"); }

  var htmx4State = new WeakMap();
  var htmx4Refused = new WeakMap(); // element -> true: cancel hx-sse's next reconnection (403)
  var htmx4Attempts = new WeakMap(); // element -> refused first requests in a row

  function setHtmx4State(elt, state, reason) {
    var previous = htmx4State.get(elt);
    if (previous && previous.state === state && previous.reason === (reason || "")) return;
    htmx4State.set(elt, { state: state, reason: reason || "" });
    announce(elt, state, previous && previous.state, reason);
  }

  function htmx4StateOf(elt) { var s = htmx4State.get(elt); return s && s.state; }

  /* The stream's first request was refused. htmx would swap the answer into the element like any
     other and never ask again; instead: 403 stops, 503 asks again no sooner than Retry-After. */
  function htmx4FirstRefused(elt, response) {
    if (response.status === 403) { setHtmx4State(elt, "stopped", "forbidden"); return; }
    var options = optionsOf(elt);
    var attempt = (htmx4Attempts.get(elt) || 0) + 1;
    if (attempt > options.maxAttempts) { setHtmx4State(elt, "given-up"); return; }
    setHtmx4State(elt, "reconnecting");
    setTimeout(function () {
      if (!elt.isConnected || NEEDS_ACTION[htmx4StateOf(elt)]) return;
      var clone = reopenElement(elt);
      htmx4Attempts.set(clone, attempt);
      setHtmx4State(clone, "reconnecting");
    }, retryAfterMs(response) + fullJitter(options, attempt));
  }

  /* hx-sse's own reconnection was refused. It tells us only the status, and computes its next
     delay right after telling us: that delay becomes a day, we ask once with HEAD for Retry-After,
     and release the waiting attempt through hx-sse's own delay canceller when it is due. */
  function htmx4ReconnectRefused(elt, connection, status) {
    if (status === 403) {
      htmx4Refused.set(elt, true);
      setHtmx4State(elt, "stopped", "forbidden");
      return;
    }
    setHtmx4State(elt, "reconnecting");
    var config = connection.config;
    var saved = {
      reconnectDelay: config.reconnectDelay, reconnectMaxDelay: config.reconnectMaxDelay,
      reconnectJitter: config.reconnectJitter
    };
    Object.assign(config, { reconnectDelay: 86400000, reconnectMaxDelay: 86400000, reconnectJitter: 0 });
    askStatus(connection.url, "same-origin")
      .then(function (response) {
        Object.assign(config, saved);
        // A stop leaves the attempt waiting: it ends when the element goes away (Reconnect).
        if (response && response.status === 403) { setHtmx4State(elt, "stopped", "forbidden"); return; }
        var minimum = response && response.status === 503 ? retryAfterMs(response) : 0;
        setTimeout(function () {
          if (connection.delayCanceller) connection.delayCanceller();
        }, minimum + fullJitter(optionsOf(elt), connection.attempt));
      });
  }

  /* Called by hx-sse before each attempt (its delay already computed): the place to cancel it. */
  function htmx4BeforeConnection(elt, connection) {
    if (connection.attempt === 0) return;
    var refused = htmx4Refused.get(elt);
    htmx4Refused.delete(elt);
    if (refused || NEEDS_ACTION[htmx4StateOf(elt)] || connection.attempt > optionsOf(elt).maxAttempts) {
      connection.cancelled = true;
    }
  }

  function isStreamElement(elt) { return !!(elt && elt.matches && elt.matches(CONNECT_SELECTOR)); }

  function followHtmx4() {
    document.addEventListener("htmx:before:response", function (e) {
      var ctx = e.detail && e.detail.ctx;
      if (!ctx || !isStreamElement(e.target) || ctx.sourceElement !== e.target) return;
      var status = ctx.response && ctx.response.status;
      if (status !== 403 && status !== 503) return;
      e.preventDefault(); // not swapped into the stream's element
      htmx4FirstRefused(e.target, ctx.response);
    });
    document.addEventListener("htmx:sse:before:connection", function (e) {
      if (e.detail && e.detail.connection) htmx4BeforeConnection(e.target, e.detail.connection);
    });
    document.addEventListener("htmx:sse:after:connection", function (e) {
      htmx4Attempts.delete(e.target);
      setHtmx4State(e.target, "live");
    });
    document.addEventListener("htmx:sse:error", function (e) {
      var status = e.detail && e.detail.status;
      if ((status === 403 || status === 503) && e.detail.connection) {
        htmx4ReconnectRefused(e.target, e.detail.connection, status);
        return;
      }
      var state = htmx4StateOf(e.target);
      if (!NEEDS_ACTION[state]) {
        setHtmx4State(e.target, navigator.onLine === false ? "offline" : state === "restarting" ? "restarting" : "reconnecting");
      }
    });
    document.addEventListener("restart", function (e) { if (isStreamElement(e.target)) setHtmx4State(e.target, "restarting"); });
    document.addEventListener("shutdown", function (e) { if (isStreamElement(e.target)) setHtmx4State(e.target, "stopped"); });
    document.addEventListener("htmx:sse:close", function (e) {
      var reason = e.detail && e.detail.reason;
      if (!NEEDS_ACTION[htmx4StateOf(e.target)] && reason === "ended") setHtmx4State(e.target, "given-up");
    });
    document.querySelectorAll(CONNECT_SELECTOR).forEach(function (elt) { setHtmx4State(elt, "connecting"); });
  }

  /* ---- user actions and browser events --------------------------------------------------------- */

  function streamForIndicator(indicator) {
    for (var i = 0; i < streams.length; i++) {
      var elt = findElement(streams[i].url);
      if (indicator && indicatorFor(elt) === indicator) return streams[i];
    }
    return null;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-sse-reconnect]");
    if (!button) return;
    event.preventDefault();
    var indicator = button.closest(".sse-status");
    var stream = streamForIndicator(indicator);
    if (stream && stream.readyState !== 2) { stream.reconnect(0); return; }
    if (stream) { var shared = stream._shared; reopenFor(stream); if (shared) shared.channel.postMessage({ kind: "reopen" }); return; }
    var all = document.querySelectorAll(CONNECT_SELECTOR);
    for (var i = 0; i < all.length; i++) {
      if (!indicator || indicatorFor(all[i]) === indicator) {
        if (isHtmx4()) setHtmx4State(reopenElement(all[i]), "connecting"); else reopenElement(all[i]);
      }
    }
  });

  window.addEventListener("offline", function () {
    streams.forEach(function (s) { if (s.readyState !== 2 && s._leads()) s._offline(); });
  });
  window.addEventListener("online", function () {
    streams.forEach(function (s) { if (s._state === "offline") s.reconnect(Math.random() * 1000); });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") return;
    streams.forEach(function (s) { if (s._pendingWhileHidden) { s._pendingWhileHidden = false; s._start(); } });
  });
  window.addEventListener("pagehide", function (event) {
    if (!event.persisted) return;
    streams.forEach(function (s) { if (s.readyState !== 2) { s._closeReal(); s._clearTimer(); } });
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    streams.forEach(function (s) { if (s.readyState !== 2 && s._leads()) s.reconnect(0); });
  });

  window.gracefulSSE = {
    EventSource: GracefulEventSource,
    streams: function () { return streams.slice(); },
    labels: DEFAULT_LABELS
  };
  if (isHtmx4()) followHtmx4();
  else if (window.htmx) window.htmx.createEventSource = function (url, init) { return new GracefulEventSource(url, init); };
})();

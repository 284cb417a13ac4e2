/*
 * The reconnection state machine of a GracefulEventSource (htmx.js follows htmx 4's hx-sse through
 * the same states).
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
 * headers); graceful-sse's EventStream reads either. For htmx every connection's URL has ?htmx=1.
 *
 * In a tab that follows another tab's connection (tabs.js) the leader's events and states drive
 * the same machine; such a tab makes no attempts of its own.
 */
(function (parts) {
  "use strict";
  if (!parts) return; // loaded already, or page.js did not run first

  var { GracefulEventSource, CONNECTING, OPEN, CLOSED, announce, findElement, reopenElement, farewellMessage } = parts;

  /* ---- backoff and the HEAD probe (htmx.js uses them too) ----------------------------------- */

  /**
   * Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(n-1))].
   * @param {{base: number, cap: number}} options in ms
   * @param {number} attempt the failed attempts so far, from 1
   * @returns {number} ms
   */
  function fullJitter(options, attempt) {
    return Math.random() * Math.min(options.cap, options.base * Math.pow(2, Math.max(0, attempt - 1)));
  }

  /**
   * One HEAD request for the status a stream's answer had (EventStream answers HEAD as it would
   * GET, opening nothing).
   * @param {string} url
   * @param {string} credentials fetch's credentials mode
   * @returns {Promise<?Response>} null when the server cannot be reached
   */
  function askStatus(url, credentials) {
    return fetch(url, { method: "HEAD", cache: "no-store", credentials: credentials })
      .catch(function () { return null; });
  }

  /**
   * @param {Response} response
   * @returns {number} its Retry-After in ms (delta-seconds or an HTTP date); 0 when absent or unreadable
   */
  function retryAfterMs(response) {
    var value = response.headers.get("Retry-After") || "";
    var seconds = Number(value);
    if (value && !isNaN(seconds)) return Math.max(0, seconds * 1000);
    var date = Date.parse(value);
    return isNaN(date) ? 0 : Math.max(0, date - Date.now());
  }

  /**
   * The URL a connection opens: the stream's own (its query kept), with ?htmx=1 for htmx (an
   * EventSource cannot send htmx 4's HX-Request header, and the server sends its status fragments,
   * HTML with hx-swap-oob, only to htmx clients) and ?lastEventId= when resuming.
   * @param {string} url
   * @param {string} id the last event id seen ("" for none)
   * @param {boolean} forHtmx
   * @returns {string}
   */
  function streamUrl(url, id, forHtmx) {
    var u = new URL(url, location.href);
    if (forHtmx && !u.searchParams.has("htmx")) u.searchParams.set("htmx", "1");
    if (id) u.searchParams.set("lastEventId", id); else u.searchParams.delete("lastEventId");
    return u.toString();
  }

  var proto = GracefulEventSource.prototype;

  /* ---- the state, and what changes it -------------------------------------------------------- */

  /**
   * Enter a state: relay it to the tabs we lead, show it and fire `sse:state` (once per change).
   * @param {string} state
   * @param {string} [reason]
   * @param {string} [message] the app's reason for ending the stream, shown by the indicator
   */
  proto._setState = function (state, reason, message) {
    var previous = this._state;
    reason = reason || "";
    if (previous === state && this._reason === reason) return;
    this._state = state;
    this._reason = reason;
    var elt = findElement(this.url);
    if (elt) this._elt = elt;
    this._post({ kind: "state", state: state, reason: reason });
    announce(this._elt, state, previous, reason, message);
  };

  /** Open the connection, resuming after the last event id; offline: wait to be online. */
  proto._start = function () {
    if (navigator.onLine === false) this._setState("offline");
    else this._open(streamUrl(this.url, this._lastEventId, this._forHtmx));
  };

  /** The real connection opened: live, with a fresh count of attempts. */
  proto._opened = function () {
    this.readyState = OPEN;
    this._attempts = 0;
    this._restartNoticed = false;
    this._setState("live");
    this._dispatchOpen();
  };

  /**
   * An event of the stream, from our connection or the leader tab's: note its id, take its
   * farewell (`shutdown`: stopped; `restart`: restarting), then give it to the listeners.
   * @param {string} type
   * @param {string} data
   * @param {string} [lastEventId]
   */
  proto._deliver = function (type, data, lastEventId) {
    if (lastEventId) this._lastEventId = lastEventId;
    if (type === "shutdown") this._stopped("", farewellMessage(data));
    if (type === "restart") { this._restartNoticed = true; this._setState("restarting"); }
    this._dispatchMessage(type, data, lastEventId);
  };

  /**
   * The server is gone for good, or will not serve us: never ask it again until the user says so.
   * @param {string} [reason] "forbidden" after a 403
   * @param {string} [message] the app's reason (a `shutdown` from Hub.end)
   */
  proto._stopped = function (reason, message) {
    this._closeReal();
    this._clearTimer();
    this.readyState = CLOSED;
    this._setState("stopped", reason, message);
  };

  /**
   * The real connection failed: the browser's own first retry, a HEAD probe when the answer was
   * not a stream, or our next attempt.
   * @param {EventSource} real
   */
  proto._failed = function (real) {
    if (this._state === "stopped") return;
    if (!findElement(this.url)) { this.close(); return; } // the element went away without htmx noticing
    if (navigator.onLine === false) { this._offline(); return; }
    this.readyState = CONNECTING;
    if (real.readyState === EventSource.CLOSED) { this._probe(); return; } // answered, but not with a stream
    if (real.readyState === EventSource.CONNECTING && this._attempts === 0) {
      // The browser's own retry: after the server's retry: (random on a restart), with Last-Event-ID.
      this._attempts = 1;
      this._setState(this._restartNoticed ? "restarting" : "reconnecting");
      return;
    }
    this._retry(0);
  };

  /** One HEAD request for the status the EventSource could not show us: 403 stops, 503 waits. */
  proto._probe = function () {
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

  /**
   * Another attempt after at least `minimum` ms, or give up after max attempts.
   * @param {number} minimum ms (a 503's Retry-After)
   */
  proto._retry = function (minimum) {
    this._closeReal();
    this._attempts += 1;
    if (this._attempts > this._options.maxAttempts) {
      this.readyState = CLOSED;
      this._setState("given-up");
      return;
    }
    this._setState(this._restartNoticed ? "restarting" : "reconnecting");
    this._schedule(minimum + this._backoff()); // the jitter also spreads clients refused together
  };

  /** @returns {number} the backoff before the next attempt, in ms */
  proto._backoff = function () { return fullJitter(this._options, this._attempts); };

  /**
   * Start again after `delay` ms; if the page is hidden then, once it is visible (resumeIfDue).
   * @param {number} delay ms
   */
  proto._schedule = function (delay) {
    var self = this;
    this._clearTimer();
    this._timer = setTimeout(function () {
      self._timer = null;
      if (document.visibilityState === "hidden") { self._pendingWhileHidden = true; return; }
      self._start();
    }, delay);
  };

  /** Cancel a scheduled attempt, and one waiting for the page to be visible. */
  proto._clearTimer = function () {
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._pendingWhileHidden = false;
  };

  /** Offline: no connection and no attempts until the browser is online again. */
  proto._offline = function () {
    this._closeReal();
    this._clearTimer();
    this.readyState = CONNECTING;
    this._setState("offline");
  };

  /* ---- what the user and the browser ask for (start.js) --------------------------------------- */

  /**
   * Reconnect now or after `delay` ms (the Reconnect button, coming back online or from the
   * bfcache), with a fresh count of attempts. A tab that follows asks the leader tab instead.
   * @param {number} [delay] ms
   */
  proto.reconnect = function (delay) {
    this._attempts = 0;
    this._restartNoticed = false;
    this.readyState = CONNECTING;
    this._setState("connecting");
    if (!this._leads()) { this._post({ kind: "reopen" }); return; }
    if (delay) this._schedule(delay); else this._start();
  };

  /** Reopen this tab's stream element as a new one (htmx opens a new stream); this one closes. */
  proto._reopenHere = function () {
    var elt = findElement(this.url);
    this.close();
    if (elt) reopenElement(elt);
  };

  /**
   * Reconnect a closed stream (stopped or given up; it cannot open again): its element is
   * reopened as a new one, here and in the tabs that share it.
   */
  proto.reopen = function () {
    this._reopenHere();
    this._post({ kind: "reopen" });
  };

  /** The browser went offline: an open stream that this tab leads stops trying. */
  proto.goOffline = function () {
    if (this.readyState !== CLOSED && this._leads()) this._offline();
  };

  /** The browser is online again: an offline stream reconnects within a second (spread out). */
  proto.goOnline = function () {
    if (this._state === "offline") this.reconnect(Math.random() * 1000);
  };

  /** The page is visible again: an attempt that fell due while it was hidden is made now. */
  proto.resumeIfDue = function () {
    if (!this._pendingWhileHidden) return;
    this._pendingWhileHidden = false;
    this._start();
  };

  /** The page goes into the back/forward cache: an open stream drops its connection and timer. */
  proto.suspend = function () {
    if (this.readyState === CLOSED) return;
    this._closeReal();
    this._clearTimer();
  };

  /** The page is back from the back/forward cache: an open stream that this tab leads reconnects. */
  proto.resume = function () {
    if (this.readyState !== CLOSED && this._leads()) this.reconnect(0);
  };

  parts.fullJitter = fullJitter;
  parts.askStatus = askStatus;
  parts.retryAfterMs = retryAfterMs;
})(window.gracefulSSEParts);

/*
 * The htmx glue.
 *
 * htmx 2: the SSE extension asks `htmx.createEventSource(url)` for each stream it opens; we answer
 * with a GracefulEventSource (event-source.js), an object with the EventSource interface that owns
 * the real connection and reconnects as states.js describes.
 * htmx 4: hx-sse reconnects by itself (with jitter); we follow its events to show the state, and
 * take over what it would get wrong: a refused first request (403/503) is not swapped into the
 * element; 403 stops, 503 waits Retry-After (first request: we open it again; hx-sse's own
 * reconnection: we hold its next attempt and release it); data-sse-max-attempts bounds its attempts.
 */
(function (parts) {
  "use strict";
  if (!parts) return; // loaded already, or page.js did not run first

  var {
    GracefulEventSource, NEEDS_ACTION, CONNECT_SELECTOR, announce, isStreamElement, optionsOf,
    reopenElement, fullJitter, askStatus, retryAfterMs, farewellMessage
  } = parts;

  /** @returns {boolean} whether the page's htmx is htmx 4 */
  function isHtmx4() { return !!(window.htmx && String(window.htmx.version || "").charAt(0) === "4"); }

  /* ---- htmx 2 ------------------------------------------------------------------------------- */

  /** Give htmx 2's SSE extension a GracefulEventSource for each stream it opens. */
  function hookHtmx2() {
    window.htmx.createEventSource = function (url, init) { return new GracefulEventSource(url, init); };
  }

  /* ---- htmx 4: follow hx-sse's events ------------------------------------------------------- */

  var htmx4State = new WeakMap(); // element -> {state, reason}
  var htmx4Refused = new WeakMap(); // element -> true: cancel hx-sse's next reconnection (403)
  var htmx4Attempts = new WeakMap(); // element -> refused first requests in a row

  /**
   * Enter a state for an htmx 4 stream element: show it and fire `sse:state` (once per change).
   * @param {Element} elt
   * @param {string} state
   * @param {string} [reason]
   * @param {string} [message] the app's reason for ending the stream (page.js renderStatus)
   */
  function setHtmx4State(elt, state, reason, message) {
    var previous = htmx4State.get(elt);
    if (previous && previous.state === state && previous.reason === (reason || "")) return;
    htmx4State.set(elt, { state: state, reason: reason || "" });
    announce(elt, state, previous && previous.state, reason, message);
  }

  /**
   * @param {Element} elt
   * @returns {(string|undefined)} the element's state, if it has one yet
   */
  function htmx4StateOf(elt) { var s = htmx4State.get(elt); return s && s.state; }

  /**
   * The stream's first request was refused. htmx would swap the answer into the element like any
   * other and never ask again; instead: 403 stops, 503 asks again no sooner than Retry-After.
   * @param {Element} elt
   * @param {Response} response
   */
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

  /**
   * hx-sse's own reconnection was refused. It tells us only the status, and computes its next
   * delay right after telling us: that delay becomes a day, we ask once with HEAD for Retry-After,
   * and release the waiting attempt through hx-sse's own delay canceller when it is due.
   * @param {Element} elt
   * @param {Object} connection hx-sse's (config, url, attempt, delayCanceller)
   * @param {number} status 403 or 503
   */
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

  /**
   * Called by hx-sse before each attempt (its delay already computed): the place to cancel it.
   * @param {Element} elt
   * @param {Object} connection hx-sse's (attempt, cancelled)
   */
  function htmx4BeforeConnection(elt, connection) {
    if (connection.attempt === 0) return;
    var refused = htmx4Refused.get(elt);
    htmx4Refused.delete(elt);
    if (refused || NEEDS_ACTION[htmx4StateOf(elt)] || connection.attempt > optionsOf(elt).maxAttempts) {
      connection.cancelled = true;
    }
  }

  /** Follow hx-sse's events (and the stream's farewells) on every stream element of the page. */
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
    document.addEventListener("shutdown", function (e) {
      if (isStreamElement(e.target)) setHtmx4State(e.target, "stopped", "", farewellMessage((e.detail && e.detail.data) || ""));
    });
    document.addEventListener("htmx:sse:close", function (e) {
      var reason = e.detail && e.detail.reason;
      if (!NEEDS_ACTION[htmx4StateOf(e.target)] && reason === "ended") setHtmx4State(e.target, "given-up");
    });
    document.querySelectorAll(CONNECT_SELECTOR).forEach(function (elt) { setHtmx4State(elt, "connecting"); });
  }

  /* ---- for start.js ------------------------------------------------------------------------- */

  /** Hook into the page's htmx: follow htmx 4, or give htmx 2 our EventSource (no htmx: nothing). */
  function install() {
    if (isHtmx4()) followHtmx4();
    else if (window.htmx) hookHtmx2();
  }

  /**
   * Reconnect a stream element that has no open GracefulEventSource (htmx 4's, or one that htmx 2's
   * extension closed): reopen it as a new element; with htmx 4 it shows "connecting" at once.
   * @param {Element} elt
   */
  function reopenStreamElement(elt) {
    if (isHtmx4()) setHtmx4State(reopenElement(elt), "connecting"); else reopenElement(elt);
  }

  parts.installHtmx = install;
  parts.reopenStreamElement = reopenStreamElement;
})(window.gracefulSSEParts);

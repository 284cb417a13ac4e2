/*
 * GracefulEventSource: what htmx 2's SSE extension gets when it asks `htmx.createEventSource(url)`
 * for a stream (htmx.js installs the hook). It has the EventSource interface (readyState, url,
 * withCredentials, onopen, onmessage, onerror, add/removeEventListener, dispatchEvent, close) and
 * owns the real EventSource behind it, which it opens, closes and opens again as its state
 * machine (states.js) decides. The extension's listeners (sse-swap, sse-close) stay attached
 * across reconnections, and its console.error-on-every-error handler is never called: we decide
 * about reconnecting. A tab that shares another tab's connection (tabs.js) opens none of its own.
 *
 * This file: the object, its interface, and the real connection. The other methods of the
 * prototype are added by states.js and tabs.js.
 */
(function (parts) {
  "use strict";
  if (!parts) return; // loaded already, or page.js did not run first

  var { absolute, findElement, optionsOf } = parts;

  /** readyState values, as EventSource's. */
  var CONNECTING = 0;
  var OPEN = 1;
  var CLOSED = 2;

  /** The page's GracefulEventSources that are not closed, oldest first (close() removes one). */
  var streams = [];

  /**
   * An EventSource for one stream element, which reconnects as states.js describes.
   * @constructor
   * @param {string} url the stream's URL
   * @param {{withCredentials: (boolean|undefined), htmx: (boolean|undefined)}} [init] as EventSource's;
   *     `htmx`: for htmx 2's extension (htmx.js), so the URL asks the server for its status fragments
   */
  function GracefulEventSource(url, init) {
    // The EventSource interface:
    this._target = new EventTarget();
    this.url = absolute(url);
    this.withCredentials = !!(init && init.withCredentials);
    this._forHtmx = !!(init && init.htmx);
    this._whenClosed = null; // htmx 4's shared stream (htmx.js): told when this object closes
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null; // the extension's; never called (see the top of this file)
    this._types = { message: true, shutdown: true, restart: true }; // event types we listen to
    this._real = null; // the real EventSource, when one is open
    // The state machine's (states.js):
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
    // Tab sharing's (tabs.js):
    this._shared = null;
    streams.push(this);
    this._setState("connecting");
    if (!this._joinTabs()) this._start();
  }
  GracefulEventSource.CONNECTING = CONNECTING;
  GracefulEventSource.OPEN = OPEN;
  GracefulEventSource.CLOSED = CLOSED;

  /**
   * As EventSource's. A type we do not listen to yet is listened to from now on.
   * @param {string} type
   * @param {Function} fn
   * @param {(Object|boolean)} [options]
   */
  GracefulEventSource.prototype.addEventListener = function (type, fn, options) {
    this._target.addEventListener(type, fn, options);
    if (!this._types[type]) {
      this._types[type] = true;
      if (this._real) this._listen(this._real, type);
    }
  };

  /**
   * As EventSource's.
   * @param {string} type
   * @param {Function} fn
   * @param {(Object|boolean)} [options]
   */
  GracefulEventSource.prototype.removeEventListener = function (type, fn, options) {
    this._target.removeEventListener(type, fn, options);
  };

  /**
   * As EventSource's.
   * @param {Event} event
   * @returns {boolean}
   */
  GracefulEventSource.prototype.dispatchEvent = function (event) { return this._target.dispatchEvent(event); };

  /** Closing from outside (sse-close, a swap that removes the element) is final for this object. */
  GracefulEventSource.prototype.close = function () {
    this.readyState = CLOSED;
    this._closeReal();
    this._clearTimer();
    this._leaveTabs();
    var self = this;
    streams = streams.filter(function (s) { return s !== self; });
    if (this._whenClosed) this._whenClosed();
  };

  /** The current state ("connecting", "live", ...; see states.js). */
  Object.defineProperty(GracefulEventSource.prototype, "state", { get: function () { return this._state; } });

  /* ---- the real connection ------------------------------------------------------------------ */

  /**
   * Open a real EventSource (closing any other): its opening, failures and events come to the
   * state machine, from this one only.
   * @param {string} url with ?htmx=1 for htmx, and ?lastEventId= when resuming (states.js)
   */
  GracefulEventSource.prototype._open = function (url) {
    var self = this;
    this._closeReal();
    this.readyState = CONNECTING;
    var real = new EventSource(url, { withCredentials: this.withCredentials });
    this._real = real;
    real.onopen = function () { if (real === self._real) self._opened(); };
    real.onerror = function () { if (real === self._real) self._failed(real); };
    Object.keys(this._types).forEach(function (type) { self._listen(real, type); });
  };

  /**
   * Pass the real connection's events of one type on: to the tabs that share it, and here.
   * @param {EventSource} real
   * @param {string} type
   */
  GracefulEventSource.prototype._listen = function (real, type) {
    var self = this;
    real.addEventListener(type, function (event) {
      if (real !== self._real) return;
      self._post({ kind: "event", type: type, data: event.data, lastEventId: event.lastEventId });
      self._deliver(type, event.data, event.lastEventId);
    });
  };

  /** Close the real connection, if one is open, and forget a HEAD probe under way. */
  GracefulEventSource.prototype._closeReal = function () {
    this._probing = null;
    if (this._real) { var real = this._real; this._real = null; real.close(); }
  };

  /** Tell the listeners that the stream is open (onopen, then "open" listeners). */
  GracefulEventSource.prototype._dispatchOpen = function () {
    var event = new Event("open");
    if (this.onopen) this.onopen(event);
    this._target.dispatchEvent(event);
  };

  /**
   * Give the listeners an event of the stream, as a new MessageEvent (the event came from the
   * real EventSource, or from the leader tab as data).
   * @param {string} type
   * @param {string} data
   * @param {string} [lastEventId]
   */
  GracefulEventSource.prototype._dispatchMessage = function (type, data, lastEventId) {
    var copy = new MessageEvent(type, { data: data, lastEventId: lastEventId || "", origin: location.origin });
    if (type === "message" && this.onmessage) this.onmessage(copy);
    this._target.dispatchEvent(copy);
  };

  parts.CONNECTING = CONNECTING;
  parts.OPEN = OPEN;
  parts.CLOSED = CLOSED;
  parts.GracefulEventSource = GracefulEventSource;
  /** @returns {GracefulEventSource[]} the page's open streams (the list itself, not a copy) */
  parts.streams = function () { return streams; };
})(window.gracefulSSEParts);

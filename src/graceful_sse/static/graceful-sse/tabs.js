/*
 * Tab sharing: data-sse-shared on the stream element shares one connection between the tabs of an
 * origin. A leader tab (elected with the Web Locks API) holds it and relays events and states over
 * a BroadcastChannel; when it closes, the next tab takes over and resumes from the last event id.
 *
 * Every tab has its own GracefulEventSource; only the leader's opens a connection. The messages on
 * the channel (one channel and one lock per stream URL):
 *   {kind: "event", type, data, lastEventId}  the leader: an event of the stream
 *   {kind: "state", state, reason}            the leader: its state
 *   {kind: "hello"}                           a new follower: the leader answers with its state
 *   {kind: "reopen"}                          Reconnect pressed in a tab: all reconnect or reopen
 * Without the two APIs, or without data-sse-shared, a stream is this tab's alone.
 * With htmx 2 the extension's EventSource is the GracefulEventSource; with htmx 4, hx-sse reads the
 * GracefulEventSource's events from a Response the monitor makes for it (htmx.js, sharedResponse).
 */
(function (parts) {
  "use strict";
  if (!parts) return; // loaded already, or page.js did not run first

  var proto = parts.GracefulEventSource.prototype;
  var { NEEDS_ACTION, CLOSED, absolute } = parts;

  /** Leaderships by lock and channel name, one per stream URL. */
  var leaderships = {};

  /**
   * One per URL and tab: the tab that holds the lock is the leader for as long as it lives.
   * `owner` is the tab's GracefulEventSource for the URL (the newest one; null once closed).
   * @param {string} url
   * @returns {{isLeader: boolean, channel: BroadcastChannel, owner: ?GracefulEventSource}}
   */
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

  /** @returns {boolean} whether this browser has what sharing needs (BroadcastChannel, Web Locks) */
  function canShare() {
    return typeof BroadcastChannel === "function" && navigator.locks && typeof navigator.locks.request === "function";
  }

  /**
   * Join the other tabs if the element asks to share: lead (open the connection) or follow.
   * @returns {boolean} false when this stream is not shared (the caller starts it)
   */
  proto._joinTabs = function () {
    if (!(this._elt && this._elt.hasAttribute("data-sse-shared") && canShare())) return false;
    this._shared = leadership(this.url);
    this._shared.owner = this;
    if (this._shared.isLeader) this._becomeLeader();
    else this._post({ kind: "hello" });
    return true;
  };

  /** This stream closed: the tab's leadership no longer passes anything to it. */
  proto._leaveTabs = function () {
    if (this._shared && this._shared.owner === this) this._shared.owner = null;
  };

  /** @returns {boolean} whether this tab makes the attempts (not shared, or the leader) */
  proto._leads = function () { return !this._shared || this._shared.isLeader; };

  /** This tab got the lock: it opens the connection, unless it is closed or waits for the user. */
  proto._becomeLeader = function () {
    if (this.readyState === CLOSED || NEEDS_ACTION[this._state]) return; // a stopped tab stays quiet
    this._start();
  };

  /**
   * Post a message to the other tabs; events and states only from the leader. No-op unless shared.
   * @param {Object} message see the top of this file
   */
  proto._post = function (message) {
    if (!this._shared) return;
    if (message.kind === "event" || message.kind === "state") { if (!this._shared.isLeader) return; }
    this._shared.channel.postMessage(message);
  };

  /**
   * A message from the other tabs of this origin.
   * @param {Object} message see the top of this file
   */
  proto._fromChannel = function (message) {
    var leads = this._shared.isLeader;
    if (message.kind === "event" && !leads) this._deliver(message.type, message.data, message.lastEventId);
    else if (message.kind === "state" && !leads) this._followState(message.state, message.reason);
    else if (message.kind === "hello" && leads && this._state) {
      this._post({ kind: "state", state: this._state, reason: this._reason });
    }
    else if (message.kind === "reopen") {
      if (this.readyState === CLOSED || NEEDS_ACTION[this._state]) this._reopenHere();
      else if (leads) this.reconnect(0);
    }
  };

  /**
   * A state the leader relays. Its `shutdown` reaches us as an event, and stops us there; a stop
   * with a reason (403) comes only as a state.
   * @param {string} state
   * @param {string} reason
   */
  proto._followState = function (state, reason) {
    if (state !== "stopped") this._setState(state);
    else if (reason) this._stopped(reason);
  };
})(window.gracefulSSEParts);

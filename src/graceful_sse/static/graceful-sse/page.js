/*
 * graceful-sse client monitor (plain JavaScript, no build step). https://pypi.org/project/graceful-sse/
 *
 * Six plain scripts, loaded in this order (SSEScripts emits the tags, in assets.MONITOR's order):
 *   page.js          what every part needs: a stream's element, its options, its status indicator
 *   event-source.js  GracefulEventSource, the EventSource that htmx 2's SSE extension is given
 *   states.js        its reconnection state machine (the states are described there)
 *   tabs.js          one connection shared by the tabs of an origin (data-sse-shared)
 *   htmx.js          the htmx glue: htmx 2's createEventSource hook, following htmx 4's hx-sse
 *                    (and feeding it a shared stream)
 *   start.js         the Reconnect button, the browser's events, window.gracefulSSE
 * While they load they share their parts through window.gracefulSSEParts; start.js removes it and
 * publishes window.gracefulSSE. Loaded a second time, the scripts do nothing.
 *
 * Options (attributes of the stream element): data-sse-status (indicator id, "sse-status"),
 * data-sse-max-attempts (10), data-sse-backoff-base (1000 ms), data-sse-backoff-cap (30000 ms),
 * data-sse-shared, data-sse-events (htmx 4, shared: the named events to pass on besides message),
 * data-sse-labels (JSON: state -> text).
 */
(function () {
  "use strict";
  if (window.gracefulSSE) return; // loaded already

  /** What the monitor's scripts share while they load; start.js removes it. */
  var parts = (window.gracefulSSEParts = {});

  /** The indicator's text for each state, and for the reason "forbidden" (a 403). */
  var DEFAULT_LABELS = {
    connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…",
    restarting: "Server restarting…", stopped: "Server stopped", offline: "Offline",
    "given-up": "Disconnected", forbidden: "Not allowed"
  };
  /** The states that wait for the user: nothing happens until Reconnect is pressed. */
  var NEEDS_ACTION = { stopped: true, "given-up": true };
  var CONNECT_NAMES = [
    "sse-connect", "data-sse-connect", "hx-sse:connect", "hx-sse-connect", "data-hx-sse:connect", "data-hx-sse-connect"
  ];
  /**
   * Stream elements, htmx 2's (sse-connect) and htmx 4's (hx-sse:connect, or hx-sse-connect with
   * the metaCharacter "-" that FastHTML's htmx4=True sets), with or without data-.
   */
  var CONNECT_SELECTOR = "[sse-connect],[data-sse-connect],[hx-sse\\:connect],[hx-sse-connect]," +
    "[data-hx-sse\\:connect],[data-hx-sse-connect]";

  /* ---- stream elements --------------------------------------------------------------------- */

  /**
   * @param {string} url relative to the page or absolute
   * @returns {string} the absolute URL
   */
  function absolute(url) { return new URL(url, location.href).toString(); }

  /**
   * @param {Element} elt a stream element
   * @returns {?string} the stream's URL, as written in whichever connect attribute it has
   */
  function connectUrl(elt) {
    for (var i = 0; i < CONNECT_NAMES.length; i++) {
      if (elt.hasAttribute(CONNECT_NAMES[i])) return elt.getAttribute(CONNECT_NAMES[i]);
    }
    return null;
  }

  /**
   * The page's stream element for a URL (its query string aside), looked up afresh each time:
   * htmx swaps and Reconnect replace elements.
   * @param {string} url
   * @returns {?Element}
   */
  function findElement(url) {
    var wanted = absolute(url).split("?")[0];
    var all = document.querySelectorAll(CONNECT_SELECTOR);
    for (var i = 0; i < all.length; i++) {
      if (absolute(connectUrl(all[i])).split("?")[0] === wanted) return all[i];
    }
    return null;
  }

  /**
   * @param {?Element} elt
   * @returns {boolean} whether `elt` is a stream element
   */
  function isStreamElement(elt) { return !!(elt && elt.matches && elt.matches(CONNECT_SELECTOR)); }

  /**
   * A stopped or given-up element is reopened as a new element: htmx processes it afresh.
   * @param {Element} elt
   * @returns {Element} the new element, in the old one's place
   */
  function reopenElement(elt) {
    var clone = elt.cloneNode(true);
    elt.replaceWith(clone);
    if (window.htmx) window.htmx.process(clone);
    return clone;
  }

  /* ---- options ------------------------------------------------------------------------------ */

  /**
   * @param {?Element} elt
   * @param {string} name
   * @param {number} fallback when `elt` has no such attribute, or not a number
   * @returns {number}
   */
  function intAttr(elt, name, fallback) {
    var value = parseInt(elt && elt.getAttribute(name), 10);
    return isNaN(value) ? fallback : value;
  }

  /**
   * @param {?Element} elt a stream element
   * @returns {{maxAttempts: number, base: number, cap: number}} its give-up limit and backoff (ms)
   */
  function optionsOf(elt) {
    return {
      maxAttempts: intAttr(elt, "data-sse-max-attempts", 10),
      base: intAttr(elt, "data-sse-backoff-base", 1000),
      cap: intAttr(elt, "data-sse-backoff-cap", 30000)
    };
  }

  /**
   * @param {Element} elt a stream element
   * @returns {Object<string, string>} the default labels with its data-sse-labels over them
   */
  function labelsFor(elt) {
    try { return Object.assign({}, DEFAULT_LABELS, JSON.parse(elt.getAttribute("data-sse-labels") || "{}")); }
    catch (e) { return DEFAULT_LABELS; }
  }

  /* ---- the status indicator ----------------------------------------------------------------- */

  /**
   * @param {?Element} elt a stream element
   * @returns {?Element} the indicator its data-sse-status names (default: #sse-status)
   */
  function indicatorFor(elt) {
    return document.getElementById((elt && elt.getAttribute("data-sse-status")) || "sse-status");
  }

  /**
   * Show a state in the stream's indicator: data-state, data-reason, the label, and a Reconnect
   * link while the state needs the user.
   * @param {?Element} elt a stream element
   * @param {string} state
   * @param {string} [reason] e.g. "forbidden"
   * @param {string} [message] the app's own words (a farewell's reason), shown instead of the label
   */
  function renderStatus(elt, state, reason, message) {
    var indicator = indicatorFor(elt);
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    if (reason) indicator.setAttribute("data-reason", reason); else indicator.removeAttribute("data-reason");
    var label = indicator.querySelector(".sse-label");
    var labels = labelsFor(elt);
    if (label) label.textContent = message || labels[reason] || labels[state] || state;
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

  /**
   * Show a new state and fire `sse:state` ({state, previous, reason}) on the stream element.
   * @param {?Element} elt a stream element
   * @param {string} state
   * @param {?string} previous the state before, if any
   * @param {string} [reason]
   * @param {string} [message] see renderStatus
   */
  function announce(elt, state, previous, reason, message) {
    renderStatus(elt, state, reason, message);
    var detail = { state: state, previous: previous, reason: reason || "", message: message || "" };
    if (elt) elt.dispatchEvent(new CustomEvent("sse:state", { bubbles: true, detail: detail }));
  }

  /**
   * @param {string} data a farewell's data (JSON)
   * @returns {string} the reason the app ended the stream with (Hub.end), or ""
   */
  function farewellMessage(data) {
    try { var reason = JSON.parse(data).reason; return typeof reason === "string" ? reason : ""; }
    catch (e) { return ""; }
  }

  parts.DEFAULT_LABELS = DEFAULT_LABELS;
  parts.farewellMessage = farewellMessage;
  parts.NEEDS_ACTION = NEEDS_ACTION;
  parts.CONNECT_SELECTOR = CONNECT_SELECTOR;
  parts.absolute = absolute;
  parts.findElement = findElement;
  parts.isStreamElement = isStreamElement;
  parts.reopenElement = reopenElement;
  parts.optionsOf = optionsOf;
  parts.indicatorFor = indicatorFor;
  parts.announce = announce;
})();

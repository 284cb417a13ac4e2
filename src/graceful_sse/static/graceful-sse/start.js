/*
 * The monitor's last script: the Reconnect button, what the browser tells us (offline, online,
 * visible again, into and out of the back/forward cache), window.gracefulSSE, and the htmx hook.
 */
(function (parts) {
  "use strict";
  if (!parts) return; // loaded already, or page.js did not run first

  var { CLOSED, CONNECT_SELECTOR, findElement, indicatorFor, streams } = parts;

  /**
   * @param {?Element} indicator a status indicator
   * @returns {?GracefulEventSource} the open stream it shows, if any
   */
  function streamForIndicator(indicator) {
    var all = streams();
    for (var i = 0; i < all.length; i++) {
      var elt = findElement(all[i].url);
      if (indicator && indicatorFor(elt) === indicator) return all[i];
    }
    return null;
  }

  /* The Reconnect button: reconnect the indicator's stream, or reopen a closed one's element. */
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-sse-reconnect]");
    if (!button) return;
    event.preventDefault();
    var indicator = button.closest(".sse-status");
    var stream = streamForIndicator(indicator);
    if (stream && stream.readyState !== CLOSED) { stream.reconnect(0); return; }
    if (stream) { stream.reopen(); return; }
    var all = document.querySelectorAll(CONNECT_SELECTOR);
    for (var i = 0; i < all.length; i++) {
      if (!indicator || indicatorFor(all[i]) === indicator) parts.reopenStreamElement(all[i]);
    }
  });

  /* The browser's events, passed to every open stream (each decides what they mean for it). */
  window.addEventListener("offline", function () {
    streams().forEach(function (s) { s.goOffline(); });
  });
  window.addEventListener("online", function () {
    streams().forEach(function (s) { s.goOnline(); });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") return;
    streams().forEach(function (s) { s.resumeIfDue(); });
  });
  window.addEventListener("pagehide", function (event) {
    if (!event.persisted) return;
    streams().forEach(function (s) { s.suspend(); });
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    streams().forEach(function (s) { s.resume(); });
  });

  delete window.gracefulSSEParts;
  window.gracefulSSE = {
    EventSource: parts.GracefulEventSource,
    streams: function () { return streams().slice(); },
    labels: parts.DEFAULT_LABELS
  };
  parts.installHtmx();
})(window.gracefulSSEParts);

/*
 * The demo page's own script: what the page shows while its stream is not live, and sending.
 *
 * The graceful-sse monitor fires a bubbling `sse:state` event ({state, previous, reason}) on the
 * stream element at every change; the page follows it. Listeners sit on the document because the
 * monitor's Reconnect replaces the stream element (and the form inside it) with a copy.
 */
(function () {
  "use strict";

  /** What the note under the form says while the stream is not live (and why sending waits). */
  var NOTES = {
    stopped: "The server has stopped; reload the page when it is back.",
    "given-up": "The server cannot be reached; reload the page when it is back.",
    restarting: "The server is restarting; you can send again once it is back.",
    reconnecting: "Reconnecting; you can send again once the page is live.",
    offline: "You are offline; you can send again once the page is live."
  };
  /** The states after which nothing comes back on its own: the whole form is disabled. */
  var ENDED = { stopped: true, "given-up": true };
  /** A post with no answer in this time is given up (the message key makes a resend safe). */
  var SEND_TIMEOUT_MS = 10000;
  /** A send pressed before the stream is first live (only Reconnect or a slow start allow it). */
  var WAITING = "Not sent: the page is still connecting; send again once it is live.";

  var state = "connecting";
  /** Why the last send failed ("" once one succeeds): kept through state changes. */
  var failure = "";

  function byId(id) { return document.getElementById(id); }

  /** The note under the form: the last failure, then what the stream's state means for sending. */
  function renderNote() {
    var el = byId("send-note");
    if (!el) return;
    var text = [failure, NOTES[state] || ""].filter(Boolean).join(" ");
    el.textContent = text;
    el.hidden = !text;
    el.setAttribute("data-kind", failure ? "error" : "state");
  }

  /** The stats card, the form and the note for the stream's current state. */
  function render(previous) {
    var card = byId("server-card");
    var form = byId("send");
    // The figures rendered with the page are fresh; after that, only a live stream keeps them so.
    var stale = state !== "live" && !(state === "connecting" && !previous);
    if (card) card.toggleAttribute("data-stale", stale);
    if (form) {
      form.elements.fields.disabled = !!ENDED[state];
      form.elements.send.disabled = state !== "live";
    }
    renderNote();
  }

  function failed(text) {
    failure = text;
    renderNote();
  }

  document.addEventListener("sse:state", function (event) {
    state = event.detail.state;
    if (state === "live" && failure === WAITING) failure = "";
    render(event.detail.previous);
  });

  function newKey() {
    // crypto.randomUUID needs a secure context (https or localhost).
    return crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(36).slice(2);
  }

  /**
   * Post the form with fetch: every outcome is told in the page (a failed request is not a
   * console error of the page's own). The key stays the same until a message is accepted, so
   * sending again after a failure or a lost answer never shows a message twice.
   * @param {HTMLFormElement} form
   */
  function send(form) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, SEND_TIMEOUT_MS);
    var body = new URLSearchParams(new FormData(form));
    form.setAttribute("aria-busy", "true");
    fetch(form.action, { method: "POST", body: body, signal: controller.signal })
      .then(function (response) {
        if (response.ok) {
          form.elements.text.value = "";
          form.elements.key.value = newKey();
          failed("");
          return null;
        }
        return response.text().then(function (text) {
          failed(text || "The server refused the message (" + response.status + ").");
        });
      })
      .catch(function () {
        failed(controller.signal.aborted
          ? "No answer from the server: the message may have been sent; sending it again will not repeat it."
          : "The server could not be reached: the message was not sent.");
      })
      .finally(function () {
        clearTimeout(timer);
        form.removeAttribute("aria-busy");
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "send") return;
    event.preventDefault();
    if (form.hasAttribute("aria-busy")) return; // the last one is still on its way
    if (state === "live") send(form);
    else if (!NOTES[state]) failed(WAITING);
  });
})();

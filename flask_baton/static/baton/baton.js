/* flask_baton dashboard: small progressive enhancements on top of HTMX.
 * The pages work without it; with it, times show in local time, running
 * durations tick, the live indicator follows the websocket, open <details>
 * and ticked boxes stay so when their row is replaced, refused actions say
 * why, and the index's bulk buttons confirm naming how many workflows. */
(function () {
  "use strict";

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatDuration(seconds) {
    seconds = Math.max(seconds, 0);
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    var minutes = Math.floor(seconds / 60), secs = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + " m " + pad(secs) + " s";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + pad(minutes % 60) + " m";
    return Math.floor(hours / 24) + " d " + pad(hours % 24) + " h";
  }

  function localise(root) {
    (root || document).querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var time = pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds());
      if (el.dataset.fmt === "hm" || el.dataset.fmt === "dhm") {  // a time under a chart
        el.textContent = (el.dataset.fmt === "dhm" ? pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + " " : "")
          + pad(when.getHours()) + ":" + pad(when.getMinutes());
      } else if (el.dataset.fmt === "datetime") {
        var today = new Date();
        var sameDay = when.toDateString() === today.toDateString();
        el.textContent = sameDay ? "today " + time
          : when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + " " + time;
      } else {
        el.textContent = time;
      }
      el.title = when.toString();
      el.setAttribute("data-local", "");
    });
  }

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = formatDuration(now - parseFloat(el.dataset.since));
    });
  }

  function setLive(state) { document.body.setAttribute("data-live", state); }

  function showNotice(kind, text) {
    var box = document.getElementById("notice");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "notice notice-" + kind;
    p.textContent = text;
    box.replaceChildren(p);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localise();
    tick();
    setInterval(tick, 1000);
    if (document.querySelector("[ws-connect]")) setLive("connecting");
  });
  document.addEventListener("htmx:wsConnecting", function () { setLive("connecting"); });
  document.addEventListener("htmx:wsOpen", function () { setLive("open"); });
  document.addEventListener("htmx:wsClose", function () { setLive("closed"); });
  document.addEventListener("htmx:wsAfterMessage", function () { localise(); tick(); });
  document.addEventListener("htmx:afterSettle", function () { localise(); tick(); });
  document.addEventListener("htmx:oobAfterSwap", function () { localise(); tick(); });

  // Keep the error / result a reader opened, and the workflows they ticked,
  // when the live feed replaces their row.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target, fragment = event.detail.fragment;
    if (!target || !fragment || !target.querySelectorAll) return;
    target.querySelectorAll("details[open][data-keep]").forEach(function (open) {
      var twin = fragment.querySelector('details[data-keep="' + open.dataset.keep + '"]');
      if (twin) twin.setAttribute("open", "");
    });
    target.querySelectorAll("input[data-keep]:checked").forEach(function (ticked) {
      var twin = fragment.querySelector('input[data-keep="' + ticked.dataset.keep + '"]');
      if (twin) twin.checked = true;
    });
  });

  // The index's selection: a box per row, one for the whole page, a count.
  var BOXES = "#wf-rows input.pick", TICKED = BOXES + ":checked";

  function countTicked() {
    var label = document.getElementById("picked"), all = document.getElementById("pick-all");
    if (!label) return;
    var ticked = document.querySelectorAll(TICKED).length, boxes = document.querySelectorAll(BOXES).length;
    label.textContent = ticked ? ticked + " selected" : "None selected";
    if (all) {
      all.checked = ticked > 0 && ticked === boxes;
      all.indeterminate = ticked > 0 && ticked < boxes;
    }
  }

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.id === "pick-all") {
      document.querySelectorAll(BOXES).forEach(function (each) { each.checked = box.checked; });
    }
    if (box.id === "pick-all" || (box.classList && box.classList.contains("pick"))) countTicked();
  });
  document.addEventListener("DOMContentLoaded", countTicked);  // the browser may restore ticks on reload
  document.addEventListener("htmx:oobAfterSwap", countTicked);

  // A bulk button asks first, naming how many workflows; with none ticked it only says so.
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.elt.getAttribute("data-bulk");
    if (!question) return;
    event.preventDefault();
    var ticked = document.querySelectorAll(TICKED).length;
    if (!ticked) {
      showNotice("error", "Select one or more workflows first.");
      return;
    }
    var what = ticked + (ticked === 1 ? " workflow" : " workflows");
    if (window.confirm(question.replace("{n}", what))) event.detail.issueRequest(true);
  });

  // Once a bulk action is done, its selection is spent.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful || !event.detail.elt.hasAttribute("data-bulk")) return;
    document.querySelectorAll(TICKED).forEach(function (box) { box.checked = false; });
    countTicked();
  });

  // The same when a polled part is swapped (a step's page): each <details> keeps how the reader left it.
  var leftAs = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    leftAs = {};
    if (!target || !target.querySelectorAll) return;
    target.querySelectorAll("details[data-keep]").forEach(function (el) { leftAs[el.dataset.keep] = el.open; });
  });
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("details[data-keep]").forEach(function (el) {
      if (Object.prototype.hasOwnProperty.call(leftAs, el.dataset.keep)) el.open = leftAs[el.dataset.keep];
    });
    leftAs = {};
  });

  // A refused action (403, 400 CSRF, ...) answers in plain text: show it.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    showNotice("error", (xhr && xhr.responseText) || "The request failed.");
  });
  document.addEventListener("htmx:sendError", function () {
    showNotice("error", "The server could not be reached.");
  });
})();

/* flask_baton dashboard, the workflow page: the graph fits its box, zooms and
 * pans (wheel, pinch, drag, the + / − / Fit buttons, the keyboard); a click on
 * a node, a state, a page or the name filter asks the live socket for that
 * view (the server renders it, HTMX swaps it in, the URL follows). Without
 * this script every one of those is a plain link or form to the page with
 * another query, and the graph scrolls. */
(function () {
  "use strict";

  var root = document.querySelector(".live-root[data-part-url]");
  if (!root || !window.htmx) return;
  var box = root.querySelector(".dag-view");
  var MIN_SCALE = 0.02, MAX_SCALE = 4, STEP = 1.25, NUDGE = 60;

  // -- which view the page shows ---------------------------------------------------
  // The live socket renders what the page's query asks for. Another view is
  // asked of the socket (its answer comes in order after everything it sent
  // for the view before); while the socket is not open, of the server over HTTP.

  function shown() {
    var marker = document.getElementById("wf-view");
    return marker ? marker.dataset : { view: "?", version: "", q: "" };
  }

  // The ws extension opens (and reopens) its socket through this: ask for what the page shows now.
  htmx.createWebSocket = function (url) {
    var target = new URL(url, location.href), now = shown();
    var query = new URLSearchParams(now.view.slice(1));
    query.set("v", now.version);
    target.search = query.toString();
    var socket = new WebSocket(target.toString(), []);
    socket.binaryType = htmx.config.wsBinaryType;
    return socket;
  };

  var socket = null, open = false, asked = 0, scrollWhenShown = 0;
  document.addEventListener("htmx:wsOpen", function (event) { socket = event.detail.socketWrapper; open = true; });
  document.addEventListener("htmx:wsClose", function () { open = false; });

  var anchor = null; // the node (or frame) clicked, kept where it was on screen when the graph is redrawn

  function arrived() {
    var input = root.querySelector(".steps-tools input[name=q]"), now = shown();
    if (input && document.activeElement !== input) input.value = now.q;
    if (scrollWhenShown && String(scrollWhenShown) === now.request) {
      scrollWhenShown = 0;
      var tools = root.querySelector(".steps-tools"), top = tools.getBoundingClientRect().top;
      if (top < 0 || top > window.innerHeight * 0.6) tools.scrollIntoView({ block: "start" });
    }
  }

  function go(query, scroll, push) {
    asked += 1;
    if (scroll) scrollWhenShown = asked;
    if (push) history.pushState({ baton: true }, "", location.pathname + (query === "?" ? "" : query));
    var message = JSON.stringify({ view: query, request: asked });
    if (socket && open) {
      socket.send(message);
    } else {
      htmx.ajax("GET", root.dataset.partUrl + query, { source: root, swap: "none" }).then(function () {
        if (socket && open) socket.send(message); // it opened meanwhile, on the view before
      });
    }
  }

  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.target && event.target.id === "wf-view") arrived();
  });

  // A running step's streamed text keeps its end in sight as it grows, unless the reader scrolled up.
  function streamBox(event) {
    var target = event.detail && event.detail.target;
    return target && target.classList && target.classList.contains("stream") ? target : null;
  }
  var following = true;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var stream = streamBox(event);
    if (stream) following = stream.scrollHeight - stream.scrollTop - stream.clientHeight < 8;
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var stream = streamBox(event);
    if (stream && following) stream.scrollTop = stream.scrollHeight;
  });
  history.replaceState({ baton: true }, "");
  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.baton) go(location.search || "?", false, false);
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-explore]") : null;
    if (!link || !root.contains(link) || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    var key = link.getAttribute("data-anchor");
    var target = key && (document.getElementById("n-" + key) || document.getElementById("x-" + key));
    if (target && box) {
      var at = target.getBoundingClientRect(), inside = box.getBoundingClientRect();
      anchor = { key: key, x: at.left - inside.left, y: at.top - inside.top };
    }
    go(link.getAttribute("href"), link.hasAttribute("data-scroll"), true);
  });

  var form = root.querySelector("form.steps-tools");
  if (form) {
    var typing = null;
    var search = function () {
      var query = new URLSearchParams();
      new FormData(form).forEach(function (value, name) { if (value) query.set(name, value); });
      go("?" + query.toString(), false, true);
    };
    form.addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(search, 250); });
    form.addEventListener("submit", function (event) { event.preventDefault(); clearTimeout(typing); search(); });
  }

  // -- zoom and pan ----------------------------------------------------------------

  if (!box) return;
  var zoom = { k: 1, x: 0, y: 0, fitted: true };

  function viewport() { return box.querySelector("g.viewport"); }

  function apply() {
    var g = viewport();
    if (g) g.setAttribute("transform", "translate(" + zoom.x + "," + zoom.y + ") scale(" + zoom.k + ")");
  }

  function fitScale() {
    var g = viewport();
    if (!g) return 1;
    return Math.min(box.clientWidth / +g.dataset.width, box.clientHeight / +g.dataset.height, 1);
  }

  function fit() {
    var g = viewport();
    if (!g) return;
    var k = fitScale();
    zoom = { k: k, x: (box.clientWidth - g.dataset.width * k) / 2, y: (box.clientHeight - g.dataset.height * k) / 2, fitted: true };
    apply();
  }

  function zoomAt(factor, x, y) {
    var k = Math.min(Math.max(zoom.k * factor, Math.min(MIN_SCALE, fitScale())), MAX_SCALE);
    zoom.x = x - (x - zoom.x) * k / zoom.k;
    zoom.y = y - (y - zoom.y) * k / zoom.k;
    zoom.k = k;
    zoom.fitted = false;
    apply();
  }

  function pan(dx, dy) {
    zoom.x += dx;
    zoom.y += dy;
    zoom.fitted = false;
    apply();
  }

  function middle() { return { x: box.clientWidth / 2, y: box.clientHeight / 2 }; }

  function placed(key) {
    var node = document.getElementById("n-" + key), frame = document.querySelector("#x-" + key + " > rect");
    var el = node || frame;
    return el ? { x: +el.getAttribute("x"), y: +el.getAttribute("y") } : null;
  }

  // A freshly drawn graph: sized by its box, not by itself; fitted, or where the reader left it.
  function prepare() {
    var svg = box.querySelector("svg.dag-svg[viewBox]");
    if (!svg) return;
    svg.removeAttribute("viewBox");
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    var spot = anchor && placed(anchor.key);
    if (spot) {
      zoom.x = anchor.x - spot.x * zoom.k;
      zoom.y = anchor.y - spot.y * zoom.k;
      zoom.fitted = false;
      apply();
    } else if (zoom.fitted) {
      fit();
    } else {
      apply();
    }
    anchor = null;
  }

  box.classList.add("zoomable");
  var buttons = root.querySelector(".zoom");
  if (buttons) buttons.hidden = false;
  prepare();
  document.addEventListener("htmx:oobAfterSwap", prepare);
  window.addEventListener("resize", function () { if (zoom.fitted) fit(); });

  root.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-zoom]") : null;
    if (!button) return;
    var c = middle(), what = button.getAttribute("data-zoom");
    if (what === "fit") fit(); else zoomAt(what === "in" ? STEP : 1 / STEP, c.x, c.y);
  });

  box.addEventListener("keydown", function (event) {
    var c = middle();
    switch (event.key) {
      case "+": case "=": zoomAt(STEP, c.x, c.y); break;
      case "-": case "_": zoomAt(1 / STEP, c.x, c.y); break;
      case "0": fit(); break;
      case "ArrowLeft": pan(NUDGE, 0); break;
      case "ArrowRight": pan(-NUDGE, 0); break;
      case "ArrowUp": pan(0, NUDGE); break;
      case "ArrowDown": pan(0, -NUDGE); break;
      default: return;
    }
    event.preventDefault();
  });

  // Wheel (and a trackpad's pinch, which comes as a wheel with ctrlKey) zooms at the pointer; shift+wheel pans.
  box.addEventListener("wheel", function (event) {
    event.preventDefault();
    var at = box.getBoundingClientRect();
    var delta = event.deltaY * (event.deltaMode === 1 ? 16 : 1);
    if (event.shiftKey && !event.ctrlKey) pan(-(event.deltaX || delta), 0);
    else zoomAt(Math.exp(-delta * (event.ctrlKey ? 0.01 : 0.002)), event.clientX - at.left, event.clientY - at.top);
  }, { passive: false });

  // Drag pans; two fingers pinch. A drag that ends on a node does not click it.
  var pointers = new Map(), travel = 0, dragged = false;
  box.addEventListener("pointerdown", function (event) {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 1) { travel = 0; dragged = false; }
  });
  box.addEventListener("pointermove", function (event) {
    var before = pointers.get(event.pointerId);
    if (!before) return;
    var now = { x: event.clientX, y: event.clientY };
    if (pointers.size === 1) {
      travel += Math.abs(now.x - before.x) + Math.abs(now.y - before.y);
      if (travel > 4) {
        if (!dragged) box.setPointerCapture(event.pointerId);
        dragged = true;
        pan(now.x - before.x, now.y - before.y);
      }
    } else if (pointers.size === 2) {
      var other = null;
      pointers.forEach(function (spot, id) { if (id !== event.pointerId) other = spot; });
      var at = box.getBoundingClientRect();
      var was = Math.hypot(before.x - other.x, before.y - other.y) || 1;
      dragged = true;
      zoomAt(Math.hypot(now.x - other.x, now.y - other.y) / was, (now.x + other.x) / 2 - at.left, (now.y + other.y) / 2 - at.top);
    }
    pointers.set(event.pointerId, now);
  });
  function release(event) { pointers.delete(event.pointerId); }
  box.addEventListener("pointerup", release);
  box.addEventListener("pointercancel", release);
  box.addEventListener("click", function (event) {
    if (!dragged) return;
    dragged = false;
    event.preventDefault();
    event.stopPropagation();
  }, true);
})();

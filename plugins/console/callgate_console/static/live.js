// callgate console, live view: new callbacks from the server-sent events stream, without a reload.
// Every value from a callback is set with textContent (never innerHTML): markup in a caller id stays text.
"use strict";
(function () {
  var latest = document.querySelector("#latest-callbacks tbody");
  var calls = document.querySelector("#live-calls tbody");
  var state = document.getElementById("stream-state");
  var limit = parseInt(document.getElementById("latest-callbacks").dataset.limit, 10) || 50;
  var CELLS = [["cb-time", "time"], ["cb-generation", "generation"], ["cb-event", "event"], ["cb-caller", "caller"],
               ["cb-callee", "callee"], ["cb-status", "status"], ["cb-decision", "decision"], ["cb-plugin", "plugin"]];
  var CALL_CELLS = [["call-started", "time"], ["call-generation", "generation"], ["call-caller", "caller"],
                    ["call-callee", "callee"], ["call-decision", "decision"], ["call-plugin", "plugin"]];

  function show(name, label) {
    state.textContent = label || name;
    state.dataset.state = name;
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function cell(className, value, url) {
    var td = document.createElement("td");
    td.className = className;
    if (url) {
      var a = document.createElement("a");
      a.className = "call-link";
      a.href = url;            // built by the server: /console/calls/ + the URL-encoded call key
      a.textContent = text(value);
      td.appendChild(a);
    } else {
      td.textContent = text(value);
    }
    return td;
  }

  function row(cb, cells) {
    var tr = document.createElement("tr");
    if (cb.call_key) { tr.dataset.callKey = cb.call_key; }
    cells.forEach(function (c, i) { tr.appendChild(cell(c[0], cb[c[1]], i === 0 ? cb.url : null)); });
    return tr;
  }

  // The row of the call a callback belongs to: a v2 call by its session (its legs have callIds of their own), a v1
  // call by its key.
  function findCall(cb) {
    var rows = calls.querySelectorAll("tr[data-call-key]");
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (r.dataset.callKey === cb.call_key || (cb.session && r.dataset.session === cb.session)) { return r; }
    }
    return null;
  }

  // Each call's legs seen and legs ended, whatever order the stream brings its callbacks in: with several instances
  // or workers a hangup may come before the incoming callback it ends (the store numbers callbacks as each process
  // writes its batch).  A call is in progress while an incoming callback was seen and a leg seen has not ended, as
  // the server counts it.  The newest calls only (MAX_TRACKED): an older one has long left the page's 50 rows.
  var MAX_TRACKED = 2000;
  var tracked = new Map();

  function track(cb) {
    var group = cb.session || cb.call_key;
    var call = tracked.get(group);
    if (!call) {
      call = {legs: new Set(), ended: new Set()};
      tracked.set(group, call);
      if (tracked.size > MAX_TRACKED) { tracked.delete(tracked.keys().next().value); }
    }
    call.legs.add(cb.call_key);
    if (cb.kind === "ended") { call.ended.add(cb.call_key); }
    return call;
  }

  function stillOn(call) {
    var on = false;
    call.legs.forEach(function (leg) { if (!call.ended.has(leg)) { on = true; } });
    return on;
  }

  function keys(text) {
    try { return JSON.parse(text || "[]"); } catch (e) { return []; }
  }

  // The calls the server listed as in progress, with their legs still on and those ended (a leg's callback after its
  // hangup, a recording's notice, does not bring it back).
  function seed() {
    Array.prototype.forEach.call(calls.querySelectorAll("tr[data-call-key]"), function (r) {
      var open = keys(r.dataset.openLegs), ended = keys(r.dataset.endedLegs);
      var call = {legs: new Set(open.concat(ended)), ended: new Set(ended)};
      if (open.length === 0) { call.legs.add(r.dataset.callKey); }
      tracked.set(r.dataset.session || r.dataset.callKey, call);
    });
  }
  seed();

  // The stream skipped callbacks (a burst beyond what it sends per poll): a hangup may be among them, so the calls in
  // progress are read again from the server's page, two seconds later (one read for a whole burst).  The page is
  // parsed as an inert document (nothing in it runs) and its table's rows adopted as they are.
  var resyncing = false;
  function resync() {
    if (resyncing) { return; }
    resyncing = true;
    setTimeout(function () {
      fetch(window.location.pathname, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          resyncing = false;
          var fresh = html && new DOMParser().parseFromString(html, "text/html").querySelector("#live-calls tbody");
          if (!fresh) { return; }
          var adopted = document.importNode(fresh, true);
          calls.parentNode.replaceChild(adopted, calls);
          calls = adopted;
          tracked.clear();
          seed();
        })
        .catch(function () { resyncing = false; });
    }, 2000);
  }

  // Latest callbacks, newest first by the time they were received (ids break ties).
  function placeLatest(tr, cb) {
    var rows = latest.rows;
    for (var i = 0; i < rows.length; i++) {
      var at = parseFloat(rows[i].dataset.receivedAt);
      if (at < cb.received_at || (at === cb.received_at && Number(rows[i].dataset.callbackId) < Number(cb.id))) {
        latest.insertBefore(tr, rows[i]);
        return;
      }
    }
    latest.appendChild(tr);
  }

  function add(cb) {
    if (latest.querySelector('tr[data-callback-id="' + Number(cb.id) + '"]')) { return; }
    var tr = row(cb, CELLS);
    tr.dataset.callbackId = String(Number(cb.id));
    tr.dataset.receivedAt = String(cb.received_at);
    tr.className = "fresh decision-" + (cb.decision || "none");
    placeLatest(tr, cb);
    while (latest.rows.length > limit) { latest.deleteRow(latest.rows.length - 1); }
    if (!cb.call_key) { return; }
    var call = track(cb);
    var shown = findCall(cb);
    if (!stillOn(call)) {
      if (shown) { shown.remove(); }
    } else if (!shown && cb.kind === "incoming") {
      shown = row(cb, CALL_CELLS);
      shown.className = "fresh";
      shown.dataset.session = cb.session || "";
      calls.insertBefore(shown, calls.firstChild);
    }
  }

  function connect() {
    var source = new EventSource("/console/stream");
    source.addEventListener("open", function () { show("live"); });
    source.addEventListener("ready", function () { show("live"); });
    source.addEventListener("skipped", resync);
    source.addEventListener("callback", function (event) {
      try { add(JSON.parse(event.data)); } catch (e) { /* a malformed event is skipped */ }
    });
    source.addEventListener("unavailable", function () { show("unavailable", "store unavailable"); });
    source.addEventListener("expired", function () {    // the session ended: the page asks for a login
      source.close();
      window.location.reload();
    });
    source.addEventListener("error", function () {
      show("reconnecting");
      if (source.readyState === EventSource.CLOSED) {   // e.g. a 401 after the session expired
        setTimeout(function () { window.location.reload(); }, 5000);
      }
    });
  }
  connect();
})();

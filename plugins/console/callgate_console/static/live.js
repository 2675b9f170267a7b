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

  function openLegs(tr) {
    try { return JSON.parse(tr.dataset.openLegs || "[]"); } catch (e) { return []; }
  }

  function add(cb) {
    if (latest.querySelector('tr[data-callback-id="' + Number(cb.id) + '"]')) { return; }
    var tr = row(cb, CELLS);
    tr.dataset.callbackId = String(Number(cb.id));
    tr.className = "fresh decision-" + (cb.decision || "none");
    latest.insertBefore(tr, latest.firstChild);
    while (latest.rows.length > limit) { latest.deleteRow(latest.rows.length - 1); }
    if (!cb.call_key) { return; }
    // A call is in progress until each of its legs seen has ended (as the server counts it).
    var call = findCall(cb);
    if (!call) {
      if (cb.kind !== "incoming") { return; }
      call = row(cb, CALL_CELLS);
      call.className = "fresh";
      call.dataset.session = cb.session || "";
      call.dataset.openLegs = "[]";
      calls.insertBefore(call, calls.firstChild);
    }
    var legs = openLegs(call).filter(function (leg) { return leg !== cb.call_key; });
    if (cb.kind !== "ended") { legs.push(cb.call_key); }
    if (legs.length === 0) { call.remove(); } else { call.dataset.openLegs = JSON.stringify(legs); }
  }

  function connect() {
    var source = new EventSource("/console/stream");
    source.addEventListener("open", function () { show("live"); });
    source.addEventListener("ready", function () { show("live"); });
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

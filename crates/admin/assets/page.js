// depproxy status page: keeps the figures moving without a reload. Polls the admin API with the
// session cookie (the CSRF token goes along in X-CSRF-Token): fills every second, group sizes and
// a running purge job every two. Everything works without this script; it only saves reloads.
"use strict";
(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!meta || !window.fetch) return;
  var csrf = meta.content;
  var live = document.getElementById("live");
  var gone = false;

  function get(path) {
    return fetch(path, {
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    }).then(function (response) {
      if (response.status === 401 && !gone) {
        gone = true; // the session ended: the page shows the login form
        window.location.assign("/");
      }
      if (!response.ok) throw new Error(path + ": " + response.status);
      return response.json();
    });
  }

  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if (value < 1024) return value + " B";
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return value.toFixed(1) + " " + units[unit];
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function time(ms) {
    if (ms == null) return "–";
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  // The same shape as render.rs `fill_row`.
  function fillRow(fill) {
    var row = el("tr", "fill");
    var what = el("td");
    what.appendChild(el("code", null, fill.object || ""));
    what.appendChild(el("br"));
    what.appendChild(el("span", "muted", (fill.kind || "") + " from " + (fill.upstream || "") +
      (fill.node ? " on " + fill.node : "")));
    row.appendChild(what);
    var cell = el("td", "progress");
    var bar = el("progress");
    var done = fill.bytes_done || 0;
    var amount = bytes(done);
    if (fill.bytes_total != null) {
      var total = Math.max(fill.bytes_total, 1);
      bar.max = total;
      bar.value = Math.min(done, total);
      bar.textContent = (100 * done / total).toFixed(1) + " %";
      amount += " of " + bytes(fill.bytes_total);
    }
    cell.appendChild(bar);
    cell.appendChild(el("span", "small", amount + " · " + bytes(fill.rate || 0) + "/s"));
    row.appendChild(cell);
    row.appendChild(el("td", null, fill.phase || ""));
    row.appendChild(el("td", "num", String(fill.clients || 0)));
    row.appendChild(el("td", "small", time(fill.started_at)));
    return row;
  }

  function showFills(fills) {
    var body = document.getElementById("fill-rows");
    if (!body) return;
    var rows = [];
    if (fills.length === 0) {
      var empty = el("tr", "empty");
      var cell = el("td", "muted", "No fill running.");
      cell.colSpan = 5;
      empty.appendChild(cell);
      rows.push(empty);
    }
    fills.forEach(function (fill) { rows.push(fillRow(fill)); });
    body.replaceChildren.apply(body, rows);
  }

  // A size cell and its meter (either may be absent).
  function showSize(cell, meter, size) {
    if (cell) {
      cell.textContent = bytes(size);
      cell.dataset.bytes = size;
    }
    if (meter) meter.value = Math.min(size, meter.max);
  }

  function showGroups(stats) {
    showSize(document.getElementById("store-bytes"), document.getElementById("store-meter"),
      stats.physical_bytes);
    (stats.groups || []).forEach(function (group) {
      document.querySelectorAll("#groups tr[data-group]").forEach(function (row) {
        if (row.dataset.group !== group.group) return;
        showSize(row.querySelector(".bytes"), row.querySelector("meter"), group.bytes);
        var artifacts = row.querySelector(".artifacts");
        if (artifacts) artifacts.textContent = group.artifacts;
        var documents = row.querySelector(".documents");
        if (documents) documents.textContent = group.documents;
      });
    });
  }

  function jobText(job) {
    var text = job.state || "unknown";
    if (job.done != null && job.total != null) text += " (" + job.done + " of " + job.total + ")";
    return text;
  }

  var job = document.getElementById("job");
  var jobRunning = job && /^running/.test(job.textContent);

  function stamp(ok) {
    if (live) live.textContent = ok ? "live, updated " + time(Date.now()) : "live updates failing; reload the page";
  }

  function tick(every, work) {
    function run() {
      if (gone) return;
      if (document.hidden) { setTimeout(run, every); return; }
      work().then(function () { stamp(true); }, function () { stamp(false); })
        .then(function () { setTimeout(run, every); });
    }
    setTimeout(run, every);
  }

  tick(1000, function () { return get("/api/v1/fills").then(showFills); });
  tick(2000, function () {
    var work = [get("/api/v1/groups").then(showGroups)];
    if (jobRunning) {
      work.push(get("/api/v1/jobs/" + encodeURIComponent(job.dataset.job)).then(function (answer) {
        job.textContent = jobText(answer);
        jobRunning = answer.state === "running";
      }));
    }
    return Promise.all(work);
  });
})();

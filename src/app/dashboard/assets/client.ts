/**
 * The dashboard's browser script, served as `/dashboard/assets/dashboard.js` (a file, so the
 * Content-Security-Policy needs no `unsafe-inline`). Plain ES2017, no framework: it polls the
 * live view, draws the spend chart with Chart.js (served by the app) and re-draws it when a
 * filter changes, without reloading the page. It writes text with `textContent` only.
 */
export const CLIENT_JS = String.raw`(function () {
  "use strict";
  var body = document.body;
  var pollMs = Number(body.getAttribute("data-poll-ms")) || 5000;
  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#6A3D9A"];

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (attrs) for (var name in attrs) if (Object.prototype.hasOwnProperty.call(attrs, name)) node.setAttribute(name, attrs[name]);
    return node;
  }
  function cell(tr, content, tag) {
    var td = el(tag || "td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content === null || content === undefined ? "" : String(content);
    tr.appendChild(td);
    return td;
  }
  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function tickElapsed() {
    var cells = document.querySelectorAll("[data-started]");
    for (var i = 0; i < cells.length; i++) cells[i].textContent = duration(Date.now() - Number(cells[i].getAttribute("data-started")));
  }
  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } }).then(function (r) {
      if (r.status === 401) { window.location.assign("/dashboard/login"); return null; }
      return r.ok ? r.json() : null;
    });
  }

  // Live work
  var liveBody = document.getElementById("live-rows");
  var liveStatus = document.getElementById("live-status");
  function renderLive(data) {
    var rows = document.createDocumentFragment();
    if (data.tasks.length === 0) {
      var empty = el("tr");
      cell(empty, "No task in progress.").setAttribute("colspan", "7");
      rows.appendChild(empty);
    }
    data.tasks.forEach(function (t) {
      var tr = el("tr", null, { "data-task-id": String(t.id) });
      var link = el("a", "#" + t.issueNumber + (t.issueTitle ? " " + t.issueTitle : ""), { href: "/dashboard/tasks/" + t.id });
      cell(tr, link, "th").setAttribute("scope", "row");
      cell(tr, t.repository);
      cell(tr, t.prUrl && /^https?:\/\//.test(t.prUrl) ? el("a", "#" + t.prNumber, { href: t.prUrl, rel: "noreferrer" }) : t.prNumber ? "#" + t.prNumber : "—");
      cell(tr, el("span", t.state, { "class": "state state-" + t.state }));
      cell(tr, duration(Date.now() - t.startedAt)).setAttribute("data-started", String(t.startedAt));
      cell(tr, t.spent).className = "num";
      cell(tr, t.job);
      rows.appendChild(tr);
    });
    liveBody.replaceChildren(rows);
    if (liveStatus) liveStatus.textContent = data.tasks.length + " task(s) in progress · updated " + new Date().toLocaleTimeString();
  }
  function pollLive() {
    getJson("/dashboard/api/live.json").then(function (d) { if (d) renderLive(d); }, function () {}).then(function () { setTimeout(pollLive, pollMs); });
  }
  if (liveBody) setTimeout(pollLive, pollMs);
  setInterval(tickElapsed, 1000);

  // Spend over time
  var form = document.getElementById("spend-filter");
  var canvas = document.getElementById("spend-chart");
  var chart = null;
  function drawChart(view) {
    if (!canvas || typeof window.Chart !== "function") return;
    var datasets = view.series.map(function (s, i) {
      return { label: s.key, data: s.usd, backgroundColor: PALETTE[i % PALETTE.length], borderColor: PALETTE[i % PALETTE.length], borderWidth: 1 };
    });
    if (chart) {
      chart.data.labels = view.labels;
      chart.data.datasets = datasets;
      chart.update();
      return;
    }
    chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: view.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "USD" }, ticks: { callback: function (v) { return "$" + v; } } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }
  function renderSpend(view) {
    drawChart(view);
    var tbody = document.getElementById("spend-rows");
    if (tbody) {
      var rows = document.createDocumentFragment();
      if (view.rows.length === 0) {
        var empty = el("tr");
        cell(empty, "No LLM calls in this period.").setAttribute("colspan", "5");
        rows.appendChild(empty);
      }
      view.rows.forEach(function (r) {
        var tr = el("tr");
        cell(tr, r.bucket, "th").setAttribute("scope", "row");
        cell(tr, r.key);
        cell(tr, r.calls).className = "num";
        cell(tr, r.inputTokens + " / " + r.outputTokens).className = "num";
        cell(tr, r.cost).className = "num";
        rows.appendChild(tr);
      });
      tbody.replaceChildren(rows);
    }
    var fields = { "total-cost": view.totals.cost, "total-calls": view.totals.calls, "total-cache": view.totals.cacheShare, "total-per-pr": view.totals.perMergedPr };
    for (var id in fields) { var node = document.getElementById(id); if (node) node.textContent = String(fields[id]); }
    var csv = document.getElementById("csv-link");
    if (csv) csv.setAttribute("href", view.csvUrl);
  }
  function currentQuery() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value !== "") params.set(key, String(value)); });
    return params.toString();
  }
  function loadSpend() {
    var qs = currentQuery();
    form.setAttribute("aria-busy", "true");
    getJson("/dashboard/api/spend.json?" + qs).then(function (view) {
      form.removeAttribute("aria-busy");
      if (!view) return;
      renderSpend(view);
      history.replaceState(null, "", "/dashboard?" + qs + "#spend");
      var status = document.getElementById("spend-status");
      if (status) status.textContent = "Chart updated: " + view.totals.cost + " in " + view.totals.calls + " calls.";
    }, function () { form.removeAttribute("aria-busy"); });
  }
  if (form) {
    form.addEventListener("change", loadSpend);
    form.addEventListener("submit", function (event) { event.preventDefault(); loadSpend(); });
    var initial = document.getElementById("spend-data");
    if (initial) drawChart(JSON.parse(initial.textContent || "{}"));
  }
})();
`;

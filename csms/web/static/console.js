/* CSMS operator console: live fleet table (server-sent events), charts (uPlot), small helpers.
 * Every value from the server is written with textContent, never innerHTML: station ids and
 * vendor strings are data, not markup. */
(function () {
  "use strict";

  const UTC = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "-" : Number(x).toFixed(digits);
  }

  function ts(iso) {
    if (!iso) return "-";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().slice(0, 19).replace("T", " ") + "Z";
  }

  function setClock(epochS) {
    const clock = document.getElementById("csms-now");
    if (clock && epochS) clock.textContent = ts(new Date(epochS * 1000).toISOString());
  }

  // ------------------------------------------------------------------ fleet
  function initFleet() {
    const table = document.getElementById("fleet");
    if (!table) return;
    const tbody = table.tBodies[0];
    const rows = new Map(); // id -> {data, tr}
    const prefix = document.querySelector("a.brand").getAttribute("href").replace(/\/$/, "");
    let sortKey = "id";
    let sortDir = 1;
    const q = document.getElementById("q");
    const filter = document.getElementById("filter");
    const live = document.getElementById("live");

    for (const tr of Array.from(tbody.rows)) rows.set(tr.dataset.id, { data: null, tr: tr });

    function fill(tr, r) {
      tr.dataset.id = r.id;
      tr.dataset.state = r.connected ? "online" : "offline";
      tr.dataset.faulted = r.faulted ? "1" : "0";
      tr.dataset.discharging = r.discharging ? "1" : "0";
      tr.replaceChildren();
      const idCell = el("td", "id");
      const a = el("a", null, r.id);
      a.href = prefix + "/stations/" + encodeURIComponent(r.id);
      idCell.append(a);
      const state = el("td", "state");
      state.append(el("span", "pill " + (r.connected ? "ok" : "off"), r.connected ? "online" : "offline"));
      const model = el("td", "model", r.model || "-");
      model.append(" ", el("small", null, r.vendor || ""));
      const evses = el("td", "evses");
      for (const e of r.evses) evses.append(el("span", "evse s-" + String(e.status).toLowerCase(), e.id + ": " + e.status));
      tr.append(
        idCell,
        state,
        el("td", "version", r.version || "-"),
        model,
        evses,
        el("td", "power num", fmt(r.power_kw, 1)),
        el("td", "soc num", r.soc === null ? "-" : fmt(r.soc, 0)),
        el("td", "seen", ts(r.last_seen)),
      );
    }

    function visible(r) {
      const f = filter.value;
      if (f === "online" && !r.connected) return false;
      if (f === "offline" && r.connected) return false;
      if (f === "faulted" && !r.faulted) return false;
      if (f === "discharging" && !r.discharging) return false;
      const term = q.value.trim().toLowerCase();
      if (!term) return true;
      const hay = [r.id, r.model, r.vendor, r.version, r.connected ? "online" : "offline"]
        .concat(r.evses.map((e) => e.status))
        .join(" ")
        .toLowerCase();
      return hay.includes(term);
    }

    function key(r) {
      const v = r[sortKey];
      return v === null || v === undefined ? (sortDir > 0 ? Infinity : -Infinity) : v;
    }

    function order() {
      const list = Array.from(rows.values()).filter((x) => x.data);
      list.sort((a, b) => {
        const ka = key(a.data), kb = key(b.data);
        if (ka < kb) return -sortDir;
        if (ka > kb) return sortDir;
        return a.data.id < b.data.id ? -1 : 1;
      });
      const frag = document.createDocumentFragment();
      for (const x of list) frag.append(x.tr);
      tbody.append(frag);
    }

    function refresh() {
      let shown = 0, online = 0, kw = 0;
      for (const x of rows.values()) {
        if (!x.data) continue;
        const vis = visible(x.data);
        x.tr.hidden = !vis;
        if (vis) shown++;
        if (x.data.connected) online++;
        kw += x.data.power_kw || 0;
      }
      document.getElementById("n-shown").textContent = shown;
      document.getElementById("n-online").textContent = online;
      document.getElementById("n-total").textContent = rows.size;
      document.getElementById("fleet-kw").textContent = fmt(kw, 1);
    }

    function apply(list, full, serverAt) {
      let added = false;
      const seen = new Set();
      for (const r of list) {
        seen.add(r.id);
        let x = rows.get(r.id);
        if (!x) {
          x = { data: null, tr: document.createElement("tr") };
          rows.set(r.id, x);
          tbody.append(x.tr);
          added = true;
        }
        x.data = r;
        const sig = JSON.stringify(r);
        if (x.sig !== sig) { x.sig = sig; fill(x.tr, r); } // unchanged rows keep their DOM
      }
      if (full) {
        for (const [id, x] of rows) if (!seen.has(id)) { x.tr.remove(); rows.delete(id); }
      }
      if (added || full || sortKey !== "id") order();
      refresh();
      document.dispatchEvent(new CustomEvent("fleet:applied", { detail: { rows: list, at: Date.now(), sent: serverAt * 1000 } }));
    }

    function connect() {
      const es = new EventSource(prefix + "/fleet/stream");
      es.addEventListener("open", () => { live.dataset.state = "live"; live.textContent = "live"; });
      es.addEventListener("snapshot", (ev) => { const d = JSON.parse(ev.data); setClock(d.now); apply(d.rows, true, d.at); });
      es.addEventListener("rows", (ev) => { const d = JSON.parse(ev.data); setClock(d.now); apply(d.rows, false, d.at); });
      es.addEventListener("error", () => { live.dataset.state = "reconnecting"; live.textContent = "reconnecting…"; });
    }

    q.addEventListener("input", refresh);
    filter.addEventListener("change", refresh);
    for (const th of table.tHead.rows[0].cells) {
      if (!th.dataset.sort) continue;
      th.addEventListener("click", () => {
        const k = th.dataset.sort;
        sortDir = k === sortKey ? -sortDir : 1;
        sortKey = k;
        for (const o of table.tHead.rows[0].cells) o.classList.remove("sorted", "desc");
        th.classList.add("sorted");
        if (sortDir < 0) th.classList.add("desc");
        order();
      });
    }
    connect();
  }

  // ------------------------------------------------------------------ charts
  function chartWidth(box) {
    return Math.max(320, box.clientWidth || 800);
  }

  function meterChart() {
    const section = document.querySelector("section.station");
    const box = document.getElementById("meter-chart");
    if (!section || !box) return;
    let plot = null;
    async function load() {
      const resp = await fetch(section.dataset.meterUrl, { credentials: "same-origin" });
      if (!resp.ok) return;
      const d = await resp.json();
      const data = [d.t, d.power_kw, d.soc];
      if (!plot) {
        plot = new uPlot(
          {
            width: chartWidth(box), height: 260, tzDate: UTC,
            scales: { soc: { range: [0, 100] } },
            series: [
              {},
              { label: "power kW", stroke: "#2563eb", width: 2, spanGaps: true },
              { label: "SoC %", stroke: "#16a34a", width: 2, scale: "soc", spanGaps: true },
            ],
            axes: [{}, { label: "kW" }, { scale: "soc", side: 1, label: "SoC %", grid: { show: false } }],
          },
          data,
          box,
        );
      } else {
        plot.setData(data);
      }
      box.dataset.points = String(d.t.length);
    }
    load();
    setInterval(load, 10000);
  }

  function eventChart(box, series, xrange) {
    return new uPlot(
      {
        width: chartWidth(box), height: 300, tzDate: UTC,
        scales: {
          x: { time: true, range: (u, min, max) => xrange(min, max) },
          y: { range: (u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 0) * 1.1)] },
        },
        series: [{}].concat(series),
        axes: [{}, { label: "kW" }],
      },
      [[]].concat(series.map(() => [])),
      box,
    );
  }

  function liveEvent() {
    const section = document.querySelector("section.event");
    if (!section) return;
    if (section.dataset.final === "yes") {
      const box = document.getElementById("report-chart");
      const raw = document.getElementById("report-data");
      if (!box || !raw) return;
      const d = JSON.parse(raw.textContent);
      const step = uPlot.paths.stepped({ align: 1 });
      const plot = eventChart(box, [
        { label: "target kW", stroke: "#dc2626", width: 2, paths: step, points: { show: false } },
        { label: "delivered kW", stroke: "#2563eb", width: 2, paths: step, points: { show: false } },
        { label: "feasible kW", stroke: "#9ca3af", width: 1, dash: [4, 4], paths: step, points: { show: false } },
      ], () => [d.start, d.end]);
      plot.setData([d.t, d.target, d.delivered, d.feasible]);
      return;
    }
    const box = document.getElementById("event-chart");
    const last = document.getElementById("live-last");
    let win = null;
    const plot = eventChart(box, [
      { label: "target kW", stroke: "#dc2626", width: 2 },
      { label: "delivered kW", stroke: "#2563eb", width: 2 },
      { label: "planned kW", stroke: "#9ca3af", width: 1, dash: [4, 4] },
    ], (min, max) => (win ? [win[0], Math.max(win[1], max || win[1])] : [min, max]));
    let done = false;
    async function poll() {
      if (done) return;
      const resp = await fetch(section.dataset.liveUrl, { credentials: "same-origin" });
      if (!resp.ok) return;
      const d = await resp.json();
      setClock(d.now);
      if (d.start !== undefined) win = [d.start, d.end];
      plot.setData([d.t, d.target, d.delivered, d.planned]);
      box.dataset.samples = String(d.t.length);
      if (d.delivered.length) {
        box.dataset.delivered = String(d.delivered[d.delivered.length - 1]);
        box.dataset.target = String(d.target[d.target.length - 1]);
      }
      if (d.last) {
        last.textContent = "at " + ts(d.last.at) + ": target " + fmt(d.last.target_kw, 1) + " kW, delivered " +
          fmt(d.last.delivered_kw, 1) + " kW, " + d.last.cars_connected + " cars";
      }
      const st = document.getElementById("event-status");
      if (d.status && st && st.textContent !== d.status) {
        st.textContent = d.status;
        st.className = "pill st-" + d.status;
      }
      if (d.final) { done = true; window.location.reload(); }
    }
    poll();
    setInterval(poll, 1000);
  }

  function siteChart() {
    const section = document.querySelector("section.site");
    const box = document.getElementById("site-chart");
    if (!section || !box) return;
    const plot = new uPlot(
      {
        width: chartWidth(box), height: 280, tzDate: UTC,
        scales: { y: { range: (u, min, max) => [0, Math.max(1, (max ?? 0) * 1.1)] } },
        series: [
          {},
          { label: "limit kW", stroke: "#dc2626", width: 2, dash: [6, 4] },
          { label: "site kW", stroke: "#2563eb", width: 2 },
          { label: "building kW", stroke: "#9ca3af", width: 1 },
          { label: "allocated kW", stroke: "#16a34a", width: 1, dash: [4, 4] },
        ],
        axes: [{}, { label: "kW" }],
      },
      [[], [], [], [], []],
      box,
    );
    async function load() {
      const resp = await fetch(section.dataset.seriesUrl, { credentials: "same-origin" });
      if (!resp.ok) return;
      const d = await resp.json();
      setClock(d.now);
      plot.setData([d.t, d.limit_kw, d.site_kw, d.building_kw, d.planned_kw]);
      box.dataset.points = String(d.t.length);
    }
    load();
    setInterval(load, 3000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    initFleet();
    meterChart();
    liveEvent();
    siteChart();
  });
})();

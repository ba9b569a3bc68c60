// sluice's web console: a client of the HTTP API (docs/api.md), like
// sluicectl. The page holds no data; every request carries the token the
// operator gives (kept in sessionStorage, or read once from `#token=`).
// API text is put in the page with textContent only.
"use strict";

const TOKEN_KEY = "sluice.token";
const REFRESH_MS = 5000;
const COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
const SVG = "http://www.w3.org/2000/svg";
const view = document.getElementById("view");
let timer = null;

class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
  }
}

/** One line per thing the problem document says. */
function describe(status, p) {
  if (!p || typeof p !== "object") return `HTTP ${status}`;
  const lines = [`${status} ${p.title || ""}: ${p.detail || ""}`];
  if (p.field) lines.push(`field: ${p.field}`);
  for (const problem of p.problems || []) lines.push(`- ${problem}`);
  return lines.join("\n");
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function showError(e) {
  const box = document.getElementById("error");
  box.textContent = e.message;
  box.hidden = false;
  if (e.status === 401 || e.status === 403) document.getElementById("login").hidden = false;
}

function clearError() {
  const box = document.getElementById("error");
  box.textContent = "";
  box.hidden = true;
}

/** An element: attributes (`on*` are listeners), then children (text or nodes). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

/** A colour sample (set through the CSSOM: the CSP allows no style attribute). */
function swatch(colour) {
  const e = h("span", { class: "swatch" });
  e.style.background = colour;
  return e;
}

function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  parent.append(e);
  return e;
}

/** A table: `rows` of cells; `key(row)` names each row (data-key). */
function table(headers, rows, key) {
  const body = h("tbody");
  rows.forEach((cells, i) => {
    const tr = h("tr", key ? { "data-key": key(i) } : {});
    for (const c of cells) tr.append(h("td", {}, c));
    body.append(tr);
  });
  return h("table", {}, h("thead", {}, h("tr", {}, ...headers.map(x => h("th", {}, x)))), body);
}

function select(options, value = "") {
  const s = h("select");
  for (const o of options) s.append(h("option", { value: o }, o || "any"));
  s.value = value;
  return s;
}

/** Runs `refresh` now and every few seconds while the page shows. */
async function every(refresh) {
  await refresh();
  timer = setInterval(() => refresh().catch(showError), REFRESH_MS);
}

const rate = r => (r === undefined || r === null ? "—" : Number(r).toFixed(1));

async function campaignsView() {
  const state = select(["", "declared", "running", "paused", "cancelled", "finished"]);
  const channel = select(["", "email", "sms"]);
  const box = h("div", { id: "campaigns" });
  view.append(h("h1", {}, "Campaigns"),
    h("form", { class: "inline" }, "State ", state, " Channel ", channel), box);
  const refresh = async () => {
    const q = new URLSearchParams({ limit: "100" });
    if (state.value) q.set("state", state.value);
    if (channel.value) q.set("channel", channel.value);
    const page = await api("GET", `/v1/campaigns?${q}`);
    const rows = page.campaigns.map(c => [
      h("a", { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.id),
      c.channel, c.state, c.participants, c.progress.done, c.progress.pending,
      rate(c.progress.rate_per_sec), c.progress.eta ?? "—",
    ]);
    box.replaceChildren(table(
      ["campaign", "channel", "state", "participants", "done", "pending", "rate/s", "ETA"],
      rows, i => page.campaigns[i].id));
  };
  const changed = () => refresh().catch(showError);
  state.addEventListener("change", changed);
  channel.addEventListener("change", changed);
  await every(refresh);
}

async function campaignView(id) {
  const path = `/v1/campaigns/${encodeURIComponent(id)}`;
  const box = h("div", { id: "campaign" });
  const actions = h("div", { id: "actions" });
  for (const action of ["start", "pause", "resume", "cancel"]) {
    actions.append(h("button", {
      type: "button", "data-action": action,
      onclick: () => api("POST", `${path}/${action}`).then(() => { clearError(); return refresh(); }).catch(showError),
    }, action), " ");
  }
  view.append(h("h1", {}, `Campaign ${id}`), actions, box);
  const refresh = async () => {
    const c = await api("GET", path);
    const p = c.progress;
    box.replaceChildren(
      table(["", ""], [
        ["name", c.name], ["channel", c.channel], ["state", c.state],
        ["participants", c.participants], ["uploading", c.uploading],
        ["done", p.done], ["pending", p.pending], ["rate/s", rate(p.rate_per_sec)], ["ETA", p.eta ?? "—"],
      ], i => ["name", "channel", "state", "participants", "uploading", "done", "pending", "rate", "eta"][i]),
      h("h2", {}, "Counts per outcome"),
      table(["outcome", "messages"], Object.entries(c.counts), i => Object.keys(c.counts)[i]));
  };
  await every(refresh);
}

async function channelsView() {
  const box = h("div", { id: "channels" });
  view.append(h("h1", {}, "Channels"), box);
  const refresh = async () => {
    const [health, running] = await Promise.all([
      api("GET", "/v1/channels"), api("GET", "/v1/campaigns?state=running&limit=1000"),
    ]);
    box.replaceChildren();
    for (const ch of health.channels) {
      const current = running.campaigns.filter(c => c.channel === ch.channel)
        .reduce((sum, c) => sum + (c.progress.rate_per_sec || 0), 0);
      box.append(h("h2", {}, ch.channel),
        h("p", { "data-role": "rate", "data-channel": ch.channel },
          `current rate: ${current.toFixed(1)}/s (running campaigns)`),
        table(["connector", "kind", "address", "state", "binds", "last error", "at"],
          ch.connectors.map(k => [k.name, k.kind, k.address, h("span", { class: k.state }, k.state),
            k.binds === undefined ? "—" : `${k.binds_up}/${k.binds}`, k.last_error ?? "—", k.last_error_at ?? "—"]),
          i => `${ch.channel}/${ch.connectors[i].name}`));
    }
  };
  await every(refresh);
}

/** A step of 1, 2 or 5 × 10^n giving about `ticks` ticks up to `max`. */
function niceStep(max, ticks) {
  const raw = Math.max(1, max / ticks);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
}

/** `plan.hours` in buckets of `hoursPerBucket`, summed. */
function buckets(hours, hoursPerBucket) {
  const out = [];
  for (let i = 0; i < hours.length; i += hoursPerBucket) {
    const slice = hours.slice(i, i + hoursPerBucket);
    const allocated = {};
    for (const hour of slice) {
      for (const [id, n] of Object.entries(hour.allocated)) allocated[id] = (allocated[id] || 0) + n;
    }
    out.push({ start: slice[0].hour, capacity: slice.reduce((a, x) => a + x.capacity, 0), allocated });
  }
  return out;
}

function drawPlan(plan, tz, days, chart) {
  const hours = plan.hours.slice(0, days * 24);
  // Beyond two weeks a bar per hour would be thinner than a pixel: a day.
  const perBucket = days > 14 ? 24 : 1;
  const unit = perBucket === 24 ? "messages/day" : "messages/hour";
  const data = buckets(hours, perBucket);
  const ids = Object.keys(plan.campaigns);
  const colour = Object.fromEntries(ids.map((id, i) => [id, COLOURS[i % COLOURS.length]]));
  const w = 960, height = 390, left = 70, right = 20, top = 30, bottom = 50;
  const max = Math.max(1, ...data.map(b => b.capacity),
    ...data.map(b => Object.values(b.allocated).reduce((a, n) => a + n, 0)));
  const step = niceStep(max, 5);
  const top_ = Math.ceil(max / step) * step;
  const y = v => height - bottom - (v / top_) * (height - top - bottom);
  const bw = (w - left - right) / Math.max(1, data.length);
  const s = svg("svg", { width: w, height, role: "img", "aria-label": `planned load, ${unit}` }, chart);
  const stamp = new Intl.DateTimeFormat("en-GB", perBucket === 24
    ? { timeZone: tz, month: "short", day: "numeric" }
    : { timeZone: tz, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  for (let v = 0; v <= top_; v += step) {
    svg("line", { class: "grid", x1: left, x2: w - right, y1: y(v), y2: y(v) }, s);
    const t = svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "data-role": "y-tick" }, s);
    t.textContent = v.toLocaleString("en");
  }
  const yLabel = svg("text", { x: 8, y: 14, "data-role": "y-unit" }, s);
  yLabel.textContent = unit;
  svg("line", { class: "axis", x1: left, x2: w - right, y1: height - bottom, y2: height - bottom }, s);
  svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }, s);
  const every_ = Math.max(1, Math.ceil(data.length / 8));
  data.forEach((b, i) => {
    const when = stamp.format(new Date(b.start));
    let base = 0;
    for (const id of ids) {
      const n = b.allocated[id] || 0;
      if (!n) continue;
      const rect = svg("rect", {
        x: left + i * bw, y: y(base + n), width: Math.max(1, bw - 1), height: Math.max(1, y(base) - y(base + n)),
        fill: colour[id], "data-campaign": id, "data-at": b.start,
      }, s);
      svg("title", {}, rect).textContent = `${id}: ${n.toLocaleString("en")} ${unit}, ${when} (${tz})`;
      base += n;
    }
    if (i % every_ === 0) {
      const x = left + i * bw + bw / 2;
      svg("line", { class: "axis", x1: x, x2: x, y1: height - bottom, y2: height - bottom + 4 }, s);
      const t = svg("text", { x, y: height - bottom + 18, "text-anchor": "middle", "data-role": "x-tick" }, s);
      t.textContent = when;
    }
  });
  const points = data.map((b, i) => `${left + i * bw},${y(b.capacity)} ${left + (i + 1) * bw},${y(b.capacity)}`).join(" ");
  svg("polyline", { class: "capacity", points, "data-role": "capacity" }, s);
  const zone = svg("text", { x: w - right, y: height - 8, "text-anchor": "end", "data-role": "time-zone" }, s);
  zone.textContent = `times in ${tz}`;
  const legend = h("ul", { "data-role": "legend" },
    h("li", {}, swatch("#c00"), "capacity"));
  for (const id of ids) {
    const c = plan.campaigns[id];
    legend.append(h("li", { "data-campaign": id, class: c.feasible ? "" : "infeasible" },
      swatch(colour[id]),
      `${id}: ${c.planned.toLocaleString("en")} planned${c.feasible ? "" : `, cannot finish (${c.shortfall.toLocaleString("en")} short)`}`));
  }
  chart.append(legend);
}

async function planView(channel) {
  const horizon = select(["1", "7", "30", "90"], "7");
  const chart = h("div", { id: "chart" });
  const recompute = h("button", { type: "button", id: "recompute" }, "Compute the plan now");
  view.append(h("h1", {}, `Load plan: ${channel}`),
    h("form", { class: "inline" }, "Horizon (days) ", horizon, recompute), chart);
  let plan = null, tz = "UTC";
  const draw = () => { chart.replaceChildren(); if (plan) drawPlan(plan, tz, Number(horizon.value), chart); };
  horizon.addEventListener("change", draw);
  recompute.addEventListener("click", () => api("POST", `/v1/channels/${channel}/plan`)
    .then(p => { plan = p; clearError(); draw(); }).catch(showError));
  const limits = await api("GET", `/v1/channels/${channel}/limits`);
  tz = limits.tz || "UTC";
  plan = await api("GET", `/v1/channels/${channel}/plan`);
  draw();
}

async function blacklistView(channel) {
  const q = h("input", { type: "search", id: "q", placeholder: "part of an address or customer id" });
  const box = h("div", { id: "entries" });
  let after = null;
  const more = h("button", { type: "button", id: "more", hidden: "" }, "More");
  const search = async append => {
    const params = new URLSearchParams({ limit: "50" });
    if (q.value) params.set("q", q.value);
    if (append && after) params.set("after", after);
    const page = await api("GET", `/v1/blacklist/${channel}?${params}`);
    const rows = page.entries.map(e => [e.entry, e.why]);
    const existing = append ? [...box.querySelectorAll("tbody tr")].map(tr => [...tr.cells].map(c => c.textContent)) : [];
    const all = existing.concat(rows);
    box.replaceChildren(table(["entry", "why"], all, i => all[i][0]));
    after = page.next ?? null;
    more.hidden = !after;
  };
  const form = h("form", { class: "inline", onsubmit: e => { e.preventDefault(); search(false).catch(showError); } },
    "Search ", q, h("button", { type: "submit" }, "Search"));
  more.addEventListener("click", () => search(true).catch(showError));
  view.append(h("h1", {}, `Blacklist: ${channel}`), form, box, more);
  await search(false);
}

const ROUTES = [
  [/^#\/campaigns$/, () => campaignsView()],
  [/^#\/campaigns\/(.+)$/, m => campaignView(decodeURIComponent(m[1]))],
  [/^#\/channels$/, () => channelsView()],
  [/^#\/plan\/(email|sms)$/, m => planView(m[1])],
  [/^#\/blacklist\/(email|sms)$/, m => blacklistView(m[1])],
];

async function route() {
  clearInterval(timer);
  timer = null;
  clearError();
  view.replaceChildren();
  const hash = location.hash || "#/campaigns";
  for (const [pattern, show] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      try { await show(m); } catch (e) { showError(e); }
      return;
    }
  }
  view.append(h("p", {}, `No page ${hash}.`));
}

function start() {
  const given = location.hash.match(/^#token=(.+)$/);
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(given[1]));
    history.replaceState(null, "", `${location.pathname}#/campaigns`);
  }
  document.getElementById("login").addEventListener("submit", e => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("login").hidden = true;
    route();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("login").hidden = false;
  });
  window.addEventListener("hashchange", route);
  route();
}

start();

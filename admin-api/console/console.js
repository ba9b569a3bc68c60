// sluice's web console: a client of the HTTP API (docs/api.md), like
// sluicectl. The page holds no data; every request carries the token the
// operator gives (kept in sessionStorage, or read once from `#token=`).
// API text is put in the page with textContent only, never as HTML.
"use strict";

const TOKEN_KEY = "sluice.token";
const REFRESH_MS = 5000;
const COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
const SVG = "http://www.w3.org/2000/svg";
const STATES = ["", "declared", "running", "paused", "cancelled", "finished"];
const HOUR_MS = 3600 * 1000;
const view = document.getElementById("view");
/** The view shown: a view's late answers and timers stop once it changes. */
let generation = 0;
let timer = null;

class ApiError extends Error {
  constructor(method, path, status, problem, text) {
    super(describe(method, path, status, problem, text));
    this.status = status;
  }
}

/** The problem document, one line per thing it says, then the request. */
function describe(method, path, status, p, text) {
  const lines = [];
  if (p && typeof p === "object" && (p.title || p.detail)) {
    lines.push(`${status} ${p.title || ""}: ${p.detail || ""}`);
    if (p.field) lines.push(`field: ${p.field}`);
    for (const problem of Array.isArray(p.problems) ? p.problems : []) lines.push(`- ${problem}`);
    if (p.line !== undefined) lines.push(`line: ${p.line}`);
    if (p.limit !== undefined) lines.push(`limit: ${p.limit} bytes`);
  } else {
    // Not a problem document (a proxy's page?): its status and its start.
    lines.push(`HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`);
  }
  lines.push(`(${method} ${path})`);
  return lines.join("\n");
}

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`the API did not answer: ${e.message}\n(${method} ${path})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(method, path, response.status, data, text);
  return data;
}

/** Shows `e` at the top of the page until the next page or success; a
 * refused token opens the token form. */
function showError(e) {
  const box = document.getElementById("error");
  box.textContent = e.message;
  box.hidden = false;
  if (e.status === 401 || e.status === 403) {
    document.getElementById("login").hidden = false;
    document.getElementById("token").focus();
  }
}

function clearError() {
  const box = document.getElementById("error");
  box.textContent = "";
  box.hidden = true;
}

/** `work()`'s error shown, unless the operator has moved on since. */
function shown(work) {
  const mine = generation;
  return Promise.resolve().then(work).catch(e => { if (mine === generation) showError(e); });
}

/** An element: attributes (`on*` are listeners), then children (text or nodes). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== undefined && v !== null) e.setAttribute(k, v === true ? "" : v);
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

/** A table: `rows` of cells (text or nodes); `key(i)` names row i
 * (data-key); `classes[j]` is column j's class; no head when every
 * header is empty. */
function table(headers, rows, key, classes = []) {
  const body = h("tbody");
  rows.forEach((cells, i) => {
    const tr = h("tr", key ? { "data-key": key(i) } : {});
    cells.forEach((c, j) => tr.append(h("td", classes[j] ? { class: classes[j] } : {}, c)));
    body.append(tr);
  });
  if (headers.every(x => !x)) return h("table", {}, body);
  const head = h("tr", {}, ...headers.map((x, j) => h("th", classes[j] ? { class: classes[j] } : {}, x)));
  return h("table", {}, h("thead", {}, head), body);
}

/** A select of `options` ("" shows as "any") showing `value`, added if missing. */
function select(options, value = "", attrs = {}) {
  const s = h("select", attrs);
  const all = options.includes(value) ? options : options.concat([value]);
  for (const o of all) s.append(h("option", { value: o }, o || "any"));
  s.value = value;
  return s;
}

/** Runs `refresh` now and every few seconds while this view shows. */
async function every(refresh) {
  const mine = generation;
  await refresh();
  if (mine !== generation) return;
  timer = setInterval(() => { if (mine === generation) shown(refresh); }, REFRESH_MS);
}

const number = n => Number(n).toLocaleString("en");
const rate = r => (r === undefined || r === null ? "—" : Number(r).toFixed(1));

/** How far `eta` (RFC 3339) is from now, for a person. */
function fromNow(eta) {
  const s = Math.round((Date.parse(eta) - Date.now()) / 1000);
  if (!Number.isFinite(s)) return "";
  if (s <= 0) return "now";
  const parts = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  const out = [];
  let rest = s;
  for (const [unit, name] of parts) {
    if (rest >= unit && out.length < 2) { out.push(`${Math.floor(rest / unit)} ${name}`); rest %= unit; }
  }
  return `in ${out.join(" ")}`;
}

/** The ETA cell: the API's instant, and how far off it is as a tooltip. */
function eta(value) {
  return value ? h("span", { title: fromNow(value) }, value) : "—";
}

/** The done cell: a bar of done / participants, then the number. */
function done(progress, participants) {
  const bar = h("progress", { max: Math.max(1, participants), value: progress.done });
  return h("span", {}, bar, h("span", {}, progress.done));
}

// ------------------------------------------------------------ campaigns

async function campaignsView(_, params) {
  const filters = { state: params.get("state") ?? "", channel: params.get("channel") ?? "" };
  const limit = params.get("limit") ?? "50";
  const state = select(STATES, filters.state, { name: "state" });
  const channel = select(["", "email", "sms"], filters.channel, { name: "channel" });
  const size = select(["25", "50", "100"], limit, { name: "limit" });
  const relocate = () => {
    const q = new URLSearchParams();
    if (state.value) q.set("state", state.value);
    if (channel.value) q.set("channel", channel.value);
    if (size.value !== "50") q.set("limit", size.value);
    location.hash = `#/campaigns${[...q].length ? `?${q}` : ""}`;
  };
  for (const s of [state, channel, size]) s.addEventListener("change", relocate);
  // The `before` cursor of each page shown so far; the last is this one.
  const cursors = [null];
  let next = null;
  const newer = h("button", { type: "button", id: "newer", hidden: true }, "Newer");
  const older = h("button", { type: "button", id: "older", hidden: true }, "Older");
  const where = h("span", { id: "page" });
  const box = h("div", { id: "campaigns" });
  view.append(h("h1", {}, "Campaigns"),
    h("form", { class: "inline" }, "State ", state, " Channel ", channel, " Per page ", size),
    box, h("p", { class: "pager" }, newer, " ", where, " ", older));
  const refresh = async () => {
    const q = new URLSearchParams({ limit });
    if (filters.state) q.set("state", filters.state);
    if (filters.channel) q.set("channel", filters.channel);
    if (cursors.at(-1) !== null) q.set("before", cursors.at(-1));
    const page = await api("GET", `/v1/campaigns?${q}`);
    const rows = page.campaigns.map(c => [
      h("a", { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.id),
      c.name, c.channel, c.state, c.participants, done(c.progress, c.participants), c.progress.pending,
      rate(c.progress.rate_per_sec), eta(c.progress.eta),
    ]);
    box.replaceChildren(page.campaigns.length
      ? table(["campaign", "name", "channel", "state", "participants", "done", "pending", "rate/s", "ETA"],
        rows, i => page.campaigns[i].id, ["", "text"])
      : h("p", {}, "No campaign."));
    next = page.next ?? null;
    older.hidden = next === null;
    newer.hidden = cursors.length === 1;
    where.textContent = `page ${cursors.length}`;
  };
  older.addEventListener("click", () => { cursors.push(next); shown(refresh); });
  newer.addEventListener("click", () => { cursors.pop(); shown(refresh); });
  await every(refresh);
}

/** A campaign's fields that are not its declaration. */
const NOT_DECLARED = new Set(["id", "state", "participants", "uploading", "counts", "progress"]);

/** `value` as rows of (dotted name, text): objects opened, lists joined. */
function flatten(value, name, rows) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, name ? `${name}.${k}` : k, rows);
  } else if (Array.isArray(value)) {
    rows.push([name, value.map(v => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ")]);
  } else {
    rows.push([name, String(value)]);
  }
  return rows;
}

async function campaignView([, id]) {
  id = decodeURIComponent(id);
  const path = `/v1/campaigns/${encodeURIComponent(id)}`;
  const figures = h("div", { id: "figures" });
  const counts = h("div", { id: "counts" });
  const declaration = h("div", { id: "declaration" });
  const actions = h("p", { id: "actions" });
  for (const action of ["start", "pause", "resume", "cancel"]) {
    actions.append(h("button", {
      type: "button", "data-action": action,
      onclick: () => shown(async () => {
        await api("POST", `${path}/${action}`);
        clearError();
        await refresh();
      }),
    }, action), " ");
  }
  const title = h("h1", {}, `Campaign ${id}`);
  view.append(h("p", {}, h("a", { href: "#/campaigns" }, "← campaigns")), title, actions,
    h("div", { class: "columns" },
      h("section", {}, h("h2", {}, "Progress"), figures, h("h2", {}, "Counts per outcome"), counts),
      h("section", {}, h("h2", {}, "Declaration"), declaration)));
  const refresh = async () => {
    const c = await api("GET", path);
    const p = c.progress;
    title.textContent = `Campaign ${c.id}: ${c.name}`;
    const shownFigures = [
      ["state", c.state], ["participants", c.participants], ["uploading", c.uploading],
      ["done", done(p, c.participants)], ["pending", p.pending], ["rate/s", rate(p.rate_per_sec)], ["ETA", eta(p.eta)],
    ];
    figures.replaceChildren(table(["", ""], shownFigures, i => shownFigures[i][0]));
    const outcomes = Object.entries(c.counts);
    counts.replaceChildren(table(["outcome", "messages"], outcomes, i => outcomes[i][0]));
    const declared = Object.fromEntries(Object.entries(c).filter(([k]) => !NOT_DECLARED.has(k)));
    const rows = flatten(declared, "", []);
    declaration.replaceChildren(table(["field", "value"], rows, i => rows[i][0], ["", "text"]));
  };
  await every(refresh);
}

// ------------------------------------------------------------ channels

async function channelsView() {
  const box = h("div", { id: "channels" });
  view.append(h("h1", {}, "Channels"), box);
  const refresh = async () => {
    const [health, running] = await Promise.all([
      api("GET", "/v1/channels"), api("GET", "/v1/campaigns?state=running&limit=1000"),
    ]);
    box.replaceChildren();
    for (const ch of health.channels) {
      const mine = running.campaigns.filter(c => c.channel === ch.channel);
      const current = mine.reduce((sum, c) => sum + (c.progress.rate_per_sec || 0), 0);
      const each = mine.map(c => `${c.id} ${rate(c.progress.rate_per_sec)}/s`).join(", ");
      const counted = `${mine.length}${running.next == null ? "" : " or more"} running campaign${mine.length === 1 ? "" : "s"}`;
      box.append(h("h2", { "data-channel": ch.channel }, ch.channel),
        h("p", { "data-role": "rate", "data-channel": ch.channel, "data-rate": current.toFixed(1) },
          `current rate ${current.toFixed(1)} messages/s: ${counted}${each ? ` (${each})` : ""}`),
        ch.connectors.length
          ? table(["connector", "kind", "address", "state", "binds up", "last error", "at"],
            ch.connectors.map(k => [k.name, k.kind, k.address, h("span", { class: k.state }, k.state),
              k.binds === undefined ? "—" : `${k.binds_up}/${k.binds}`, k.last_error ?? "—", k.last_error_at ?? "—"]),
            i => `${ch.channel}/${ch.connectors[i].name}`, ["", "", "", "", "", "text"])
          : h("p", { "data-role": "no-connectors" }, "No connector configured."));
    }
  };
  await every(refresh);
}

// ------------------------------------------------------------ plan

/** A step of 1, 2 or 5 × 10^n giving about `ticks` ticks up to `max`. */
function niceStep(max, ticks) {
  const raw = Math.max(1, max / ticks);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
}

/** `at` (ms) in `tz` as `5 Dec 14:00`, the zone's local time. */
function stamp(tz) {
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  return at => {
    const part = Object.fromEntries(format.formatToParts(new Date(at)).map(p => [p.type, p.value]));
    return `${part.day} ${part.month} ${part.hour}:${part.minute}`;
  };
}

/** Hours per bar at a horizon of `days`: at most 168 bars, at least 5 px. */
const hoursPerBar = days => (days <= 7 ? 1 : days <= 30 ? 6 : 24);

/** The plan's hours from its first in bars of `per` hours over `days`. */
function bars(plan, days, per) {
  const first = plan.hours.length ? Date.parse(plan.hours[0].hour) : Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const count = Math.ceil(days * 24 / per);
  const out = Array.from({ length: count }, (_, i) => ({
    start: first + i * per * HOUR_MS, hours: 0, capacity: 0, allocated: {},
  }));
  for (const hour of plan.hours) {
    const i = Math.floor((Date.parse(hour.hour) - first) / HOUR_MS / per);
    if (i < 0 || i >= count) continue;
    const bar = out[i];
    bar.hours += 1;
    bar.capacity += hour.capacity;
    for (const [id, n] of Object.entries(hour.allocated)) bar.allocated[id] = (bar.allocated[id] || 0) + n;
  }
  return out;
}

function drawPlan(plan, tz, days, chart) {
  const per = hoursPerBar(days);
  const data = bars(plan, days, per);
  const ids = Object.keys(plan.campaigns);
  const colour = Object.fromEntries(ids.map((id, i) => [id, COLOURS[i % COLOURS.length]]));
  const when = stamp(tz);
  const w = 960, height = 400, left = 80, right = 20, top = 30, bottom = 50;
  // Heights are messages per hour: a bar of several hours shows their mean.
  const perHour = n => n / per;
  const total = b => Object.values(b.allocated).reduce((a, n) => a + n, 0);
  const max = Math.max(1, ...data.map(b => perHour(b.capacity)), ...data.map(b => perHour(total(b))));
  const step = niceStep(max, 5);
  const scaleTop = Math.ceil(max / step) * step;
  const y = v => height - bottom - (v / scaleTop) * (height - top - bottom);
  const bw = (w - left - right) / data.length;
  const unit = "messages/hour";
  const s = svg("svg", {
    width: w, height, role: "img", "data-days": days,
    "aria-label": `planned load of ${plan.hours.length} hours, ${unit}, times in ${tz}`,
  }, chart);
  for (let v = 0; v <= scaleTop; v += step) {
    svg("line", { class: "grid", x1: left, x2: w - right, y1: y(v), y2: y(v) }, s);
    const t = svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "data-role": "y-tick" }, s);
    t.textContent = number(v);
  }
  const yUnit = svg("text", { x: 8, y: 14, "data-role": "y-unit" }, s);
  yUnit.textContent = unit;
  if (per > 1) {
    const mean = svg("text", { x: 8 + 110, y: 14, "data-role": "bar-span" }, s);
    mean.textContent = `(each bar ${per} hours, their mean)`;
  }
  svg("line", { class: "axis", x1: left, x2: w - right, y1: height - bottom, y2: height - bottom }, s);
  svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }, s);
  const tickEvery = Math.max(1, Math.ceil(data.length / 8));
  data.forEach((b, i) => {
    const x = left + i * bw;
    const span = `${when(b.start)} to ${when(b.start + per * HOUR_MS)} (${tz})`;
    let base = 0;
    for (const id of ids) {
      const n = b.allocated[id] || 0;
      if (!n) continue;
      const rect = svg("rect", {
        x, y: y(perHour(base + n)), width: Math.max(1, bw - 1),
        // At least a pixel: a small allocation next to a large one stays visible.
        height: Math.max(1, y(perHour(base)) - y(perHour(base + n))),
        fill: colour[id], "data-campaign": id, "data-at": new Date(b.start).toISOString(), "data-messages": n,
      }, s);
      const mean = per > 1 ? `, ${number(Math.round(perHour(n)))} ${unit}` : "";
      svg("title", {}, rect).textContent =
        `${id}: ${number(n)} messages${mean}, ${span}; capacity ${number(b.capacity)}`;
      base += n;
    }
    if (i % tickEvery === 0) {
      svg("line", { class: "axis", x1: x, x2: x, y1: height - bottom, y2: height - bottom + 4 }, s);
      const t = svg("text", {
        x, y: height - bottom + 18, "text-anchor": "middle", "data-role": "x-tick",
        "data-at": new Date(b.start).toISOString(),
      }, s);
      t.textContent = when(b.start);
    }
  });
  const planned = data.map((b, i) => [b, i]).filter(([b]) => b.hours > 0);
  const points = planned.map(([b, i]) => `${left + i * bw},${y(perHour(b.capacity))} ${left + (i + 1) * bw},${y(perHour(b.capacity))}`).join(" ");
  const capacity = svg("polyline", { class: "capacity", points, "data-role": "capacity" }, s);
  svg("title", {}, capacity).textContent = `capacity, ${unit}`;
  const zone = svg("text", { x: w - right, y: height - 8, "text-anchor": "end", "data-role": "time-zone" }, s);
  zone.textContent = `times in ${tz}`;
  const legend = h("ul", { "data-role": "legend", class: "legend" },
    h("li", { "data-role": "capacity" }, swatch("#c00"), "capacity (the channel's limits)"));
  for (const id of ids) {
    const c = plan.campaigns[id];
    legend.append(h("li", { "data-campaign": id, class: c.feasible ? "" : "infeasible" },
      swatch(colour[id]),
      `${id}: ${number(c.planned)} planned, priority ${c.priority ?? 0}, rank ${c.rank ?? "—"}, `
      + `finish ${c.finish ? when(Date.parse(c.finish)) : "—"}`
      + (c.feasible ? "" : `, cannot finish (${number(c.shortfall)} short)`)));
  }
  chart.append(legend);
  const last = plan.hours.length ? Date.parse(plan.hours.at(-1).hour) + HOUR_MS : null;
  chart.append(h("p", { "data-role": "plan-span" }, plan.hours.length
    ? `The plan has ${number(plan.hours.length)} hours, ${when(Date.parse(plan.hours[0].hour))} to ${when(last)} (${tz}).`
    : "The plan has no hours."));
}

async function planView([, channel], params) {
  const horizon = select(["1", "2", "7", "14", "30", "60", "90"], params.get("days") ?? "7", { id: "horizon" });
  const chart = h("div", { id: "chart" });
  const recompute = h("button", { type: "button", id: "recompute" }, "Compute the plan now");
  view.append(h("h1", {}, `Load plan: ${channel}`),
    h("form", { class: "inline" }, "Horizon (days) ", horizon, recompute), chart);
  let plan = null, tz = "UTC";
  const draw = source => {
    chart.replaceChildren();
    chart.dataset.source = source;
    if (plan) drawPlan(plan, tz, Number(horizon.value), chart);
  };
  horizon.addEventListener("change", () => draw(chart.dataset.source));
  recompute.addEventListener("click", () => shown(async () => {
    plan = await api("POST", `/v1/channels/${channel}/plan`);
    clearError();
    draw("computed");
  }));
  const limits = await api("GET", `/v1/channels/${channel}/limits`);
  tz = limits.tz || "UTC";
  plan = await api("GET", `/v1/channels/${channel}/plan`);
  draw("stored");
}

// ------------------------------------------------------------ blacklist

async function blacklistView([, channel], params) {
  const limit = params.get("limit") ?? "50";
  const q = h("input", { type: "search", id: "q", placeholder: "part of an address or customer id" });
  q.value = params.get("q") ?? "";
  const box = h("div", { id: "entries" });
  const more = h("button", { type: "button", id: "more", hidden: true }, "More");
  const found = h("p", { id: "found" });
  let after = null;
  let shownRows = [];
  const search = async append => {
    const query = new URLSearchParams({ limit });
    if (q.value) query.set("q", q.value);
    if (append && after !== null) query.set("after", after);
    const page = await api("GET", `/v1/blacklist/${channel}?${query}`);
    shownRows = (append ? shownRows : []).concat(page.entries.map(e => [e.entry, e.why]));
    const rows = shownRows;
    box.replaceChildren(table(["entry", "why"], rows, i => rows[i][0], ["text"]));
    box.dataset.q = q.value;
    after = page.next ?? null;
    more.hidden = after === null;
    found.textContent = `${rows.length} shown${after === null ? "" : ", more follow"}`;
  };
  const form = h("form", { class: "inline", onsubmit: e => { e.preventDefault(); shown(() => search(false)); } },
    "Search ", q, h("button", { type: "submit" }, "Search"));
  more.addEventListener("click", () => shown(() => search(true)));
  view.append(h("h1", {}, `Blacklist: ${channel}`), form, found, box, more);
  await search(false);
}

// ------------------------------------------------------------ routing

const ROUTES = [
  [/^#\/campaigns$/, campaignsView],
  [/^#\/campaigns\/([^/]+)$/, campaignView],
  [/^#\/channels$/, channelsView],
  [/^#\/plan\/(email|sms)$/, planView],
  [/^#\/blacklist\/(email|sms)$/, blacklistView],
];

async function route() {
  generation += 1;
  clearInterval(timer);
  timer = null;
  clearError();
  view.replaceChildren();
  // Which page the view shows, set with its emptying: what is inside it
  // belongs to this page.
  view.dataset.route = location.hash;
  const [path, query = ""] = (location.hash || "#/campaigns").split("?");
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("current", path.startsWith(a.getAttribute("href")));
  }
  for (const [pattern, show] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      await shown(() => show(m, new URLSearchParams(query)));
      return;
    }
  }
  view.append(h("p", {}, `No page ${path}: pick one above.`));
}

function start() {
  const given = location.hash.match(/^#token=([^&]+)/);
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(given[1]));
    history.replaceState(null, "", `${location.pathname}#/campaigns`);
  }
  const login = document.getElementById("login");
  login.addEventListener("submit", e => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("token").value = "";
    login.hidden = true;
    route();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    login.hidden = false;
  });
  document.getElementById("error").addEventListener("click", clearError);
  window.addEventListener("hashchange", route);
  route();
}

start();

/* Tollgate dashboard: reads the JSON API with a dashboard key kept in this browser.
   Everything from the API goes into the page as text (textContent), never as HTML. */
"use strict";

const KEY_STORE = "tollgate.dashboardKey";
const REFRESH_MS = 30000;
const COLOURS = ["#3867d6", "#e8912d", "#2eb67d", "#d00000", "#8854d0", "#20bf6b", "#f7b731", "#4b6584"];
const KINDS = [["input_tokens", "input"], ["cache_read_tokens", "cache read"], ["cache_write_tokens", "cache write"],
               ["output_tokens", "output"], ["reasoning_tokens", "reasoning"]];
const state = { key: localStorage.getItem(KEY_STORE), hours: 24, filters: { account: "", provider: "", model: "" },
                sort: { column: "ts", descending: true }, calls: [], charts: {}, seen: { account: new Set(),
                provider: new Set(), model: new Set() }, apiBase: location.origin, refreshes: 0, timer: null };

const $ = (selector) => document.querySelector(selector);
const el = (tag, text, className) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, params = {}, options = {}) {
  const url = new URL(state.apiBase.replace(/\/$/, "") + path);  // the base may carry a stage path
  for (const [name, value] of Object.entries(params)) if (value !== "" && value !== undefined) url.searchParams.set(name, value);
  let response;
  try {
    response = await fetch(url, { ...options, headers: { "X-Dashboard-Key": state.key || "" } });
  } catch (error) {
    throw new ApiError(0, `The API at ${state.apiBase} cannot be reached.`);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (ignored) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return options.raw ? response : response.json();
}

function filters() { return { ...state.filters }; }
function money(text) { return text === null || text === undefined ? "—" : `$${text}`; }
function number(value) { return Number(value).toLocaleString("en-US"); }
function percent(part, whole) { return whole ? `${(100 * part / whole).toFixed(1)} %` : "0 %"; }
function tokensOf(call) { return KINDS.reduce((sum, [field]) => sum + (call[field] || 0), 0); }

function showBanner(message) {
  const banner = $("#banner");
  banner.hidden = !message;
  banner.textContent = message || "";
}

function showLogin(message) {
  $("#login").hidden = false;
  $("#main").hidden = true;
  $("#controls").hidden = true;
  showBanner(message);
}

function change(node, now, before, lowerIsBetter = true) {
  if (before === null || before === undefined || Number(before) === 0) { node.textContent = "no previous data"; node.className = "change"; return; }
  const delta = (Number(now) - Number(before)) / Number(before) * 100;
  node.textContent = `${delta >= 0 ? "▲" : "▼"} ${Math.abs(delta).toFixed(1)} % vs previous period`;
  node.className = `change ${delta > 0 === lowerIsBetter ? "up" : "down"}`;
}

function renderCards(now, before) {
  const values = {
    cost: [money(now.cost_usd), now.cost_usd, before.cost_usd],
    calls: [number(now.calls), now.calls, before.calls],
    tokens: [number(now.tokens.total), now.tokens.total, before.tokens.total],
    error_rate: [`${(now.error_rate * 100).toFixed(1)} %`, now.error_rate, before.error_rate],
    p95: [now.latency_ms && now.latency_ms.p95 !== null ? `${number(now.latency_ms.p95)} ms` : "—",
          now.latency_ms && now.latency_ms.p95, before.latency_ms && before.latency_ms.p95],
  };
  for (const [metric, [text, current, previous]] of Object.entries(values)) {
    const card = document.querySelector(`[data-metric="${metric}"]`);
    card.querySelector(".value").textContent = text;
    change(card.querySelector(".change"), current, previous, metric !== "calls");
  }
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  state.charts[id] = new Chart(document.getElementById(id), { ...config,
    options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options } });
}

function seriesDatasets(points, pick) {
  const providers = [...new Set(points.flatMap((p) => Object.keys(p.by_provider || {})))];
  if (!providers.length) return [{ label: "all", data: points.map((p) => pick(p)), backgroundColor: COLOURS[0],
                                   borderColor: COLOURS[0] }];
  return providers.map((provider, n) => ({ label: provider, backgroundColor: COLOURS[n % COLOURS.length],
    borderColor: COLOURS[n % COLOURS.length], data: points.map((p) => pick((p.by_provider || {})[provider] || {})) }));
}

function renderSeries(points) {
  const labels = points.map((p) => p.day || (state.hours <= 24 ? p.ts.slice(11, 16) : p.ts.slice(5, 16).replace("T", " ")));
  const stacked = { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } };
  chart("chart-cost", { type: "bar", data: { labels, datasets: seriesDatasets(points, (p) => Number(p.cost_usd || 0)) },
                        options: stacked });
  chart("chart-tokens", { type: "bar", data: { labels, datasets: seriesDatasets(points, (p) => Number(
    typeof p.tokens === "object" ? p.tokens.total : p.tokens || 0)) }, options: stacked });
}

function renderModels(summary, dailyByModel) {
  const models = Object.entries(summary.by_model || {});
  const costly = models.filter(([, v]) => Number(v.cost_usd) > 0);
  document.querySelector("#chart-models").parentElement.querySelector(".empty").hidden = costly.length > 0;
  chart("chart-models", { type: "doughnut", data: { labels: costly.map(([m]) => m), datasets: [{
    data: costly.map(([, v]) => Number(v.cost_usd)), backgroundColor: costly.map((_, n) => COLOURS[n % COLOURS.length]) }] } });
  const totals = {};
  for (const day of dailyByModel.daily || []) {
    for (const [model, group] of Object.entries(day.groups || {})) {
      if (state.filters.model && model !== state.filters.model) continue;
      totals[model] = totals[model] || {};
      for (const [field] of KINDS) totals[model][field] = (totals[model][field] || 0) + (group.tokens[field] || 0);
    }
  }
  const names = Object.keys(totals);
  chart("chart-model-tokens", { type: "bar", data: { labels: names, datasets: KINDS.map(([field, label], n) => ({
    label, backgroundColor: COLOURS[n], data: names.map((m) => totals[m][field]) })) },
    options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } } } });
}

function renderWindow(window) {
  const list = $("#window");
  list.replaceChildren();
  for (const [label, value] of [["Calls", number(window.calls)], ["Tokens", number(window.tokens.total)],
                                ["Cost", money(window.cost_usd)], ["Errors", number(window.errors)],
                                ["Since", window.from.replace("T", " ")]]) {
    list.append(el("dt", label), el("dd", value));
  }
}

function renderBudgets(budgets) {
  const list = $("#budgets");
  list.replaceChildren();
  list.nextElementSibling.hidden = budgets.length > 0;
  for (const budget of budgets) {
    const item = el("li");
    const bar = el("div", null, "bar");
    const fill = el("span", null, budget.state);
    fill.style.width = `${Math.min(100, budget.percent)}%`;
    bar.append(fill);
    if (budget.forecast_ready) {  // a forecast from too little of the period or too few calls is not shown
      const forecast = el("i");
      forecast.style.left = `${Math.min(100, 100 * Number(budget.forecast) / Number(budget.limit))}%`;
      forecast.title = "forecast at period end";
      bar.append(forecast);
    }
    const unit = budget.unit === "usd" ? money : number;
    const projected = budget.forecast_ready ? unit(budget.forecast) : "not yet (too little data)";
    item.append(el("strong", `${budget.budget_id} `), el("span", `${budget.scope} ${budget.scope_id} · ${budget.period} · ${budget.mode}`, "muted"), bar,
                el("div", `${unit(budget.spent)} of ${unit(budget.limit)} (${budget.percent} %) · forecast ${projected}` +
                   (budget.projected_to_exceed ? " · projected to exceed" : "") + ` · ${budget.state}`, "muted"));
    list.append(item);
  }
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function alertAction(alert, label, verb) {
  const button = el("button", label);
  button.dataset.action = verb;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try { await api(`/api/alerts/${encodeURIComponent(alert.alert_id)}/${verb}`, {}, { method: "POST" }); await refresh(); }
    catch (error) { showBanner(error.message); button.disabled = false; }
  });
  return button;
}

function renderAlerts(alerts) {
  const active = alerts.filter((a) => a.state !== "resolved");
  const list = $("#alerts");
  list.replaceChildren();
  list.nextElementSibling.hidden = active.length > 0;
  for (const alert of active) {
    const item = el("li", null, `${alert.severity} ${alert.state}`);
    const text = el("div");
    const seen = alert.occurrences > 1 ? ` · ${alert.occurrences} times` : "";
    text.append(el("strong", alert.title), el("p", alert.message),
                el("p", `${alert.severity} · opened ${alert.opened_at}${seen} · ${alert.state}`, "muted"));
    const actions = el("div", null, "actions");
    if (alert.state === "open") actions.append(alertAction(alert, "Acknowledge", "ack"));
    actions.append(alertAction(alert, "Resolve", "resolve"));
    item.append(text, actions);
    list.append(item);
  }
  const history = $("#alert-history");
  history.replaceChildren();
  for (const alert of alerts.filter((a) => a.state === "resolved").slice(0, 10)) {
    const item = el("li", null, "resolved");
    item.append(el("strong", alert.title),
                el("p", `${alert.resolution || "Resolved."}`),
                el("p", `${alert.severity} · ${alert.opened_at} · lasted ${duration(alert.duration_seconds)}` +
                   (alert.resolved_by ? ` · by ${alert.resolved_by}` : ""), "muted"));
    history.append(item);
  }
  history.hidden = history.children.length === 0;
  history.previousElementSibling.hidden = history.hidden;
}

function sortValue(call, column) {
  if (column === "tokens") return tokensOf(call);
  if (column === "cost") return call.cost_usd === null ? -1 : Number(call.cost_usd);
  return call[column] ?? "";
}

function renderCalls() {
  const { column, descending } = state.sort;
  const rows = [...state.calls].sort((a, b) => {
    const x = sortValue(a, column), y = sortValue(b, column);
    return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
  });
  const body = $("#calls tbody");
  body.replaceChildren();
  $("#calls").nextElementSibling.hidden = rows.length > 0;
  for (const call of rows) {
    const row = el("tr");
    const failed = call.status >= 400 || call.error_type;
    row.append(el("td", call.ts.replace("T", " ").slice(0, 19)), el("td", call.provider), el("td", call.model, "model"),
               el("td", call.account), el("td", failed ? `${call.status} ${call.error_type || ""}` : call.status,
               failed ? "status-error" : ""), el("td", number(tokensOf(call)), "num"),
               el("td", money(call.cost_usd), "num"), el("td", `${number(call.latency_ms)} ms`, "num"),
               el("td", call.ttft_ms === null ? "—" : `${number(call.ttft_ms)} ms`, "num ttft"),
               el("td", call.output_tokens_per_s === null ? "—" : String(call.output_tokens_per_s), "num speed"));
    row.title = call.stream ? "streamed" : "";
    body.append(row);
  }
}

function remember(kind, values) {
  const select = $(`#filter-${kind}`);
  for (const value of values) {
    if (!value || state.seen[kind].has(value)) continue;
    state.seen[kind].add(value);
    select.append(new Option(value, value));
  }
}

async function series() {
  const days = Math.max(1, Math.ceil(state.hours / 24));
  if (state.hours <= 168) {
    const interval = state.hours <= 6 ? "5m" : "1h";
    return (await api("/api/usage/timeseries", { hours: state.hours, interval, ...filters() })).points;
  }
  const grouped = !state.filters.provider && !state.filters.model;
  const daily = await api("/api/usage/daily", { days, ...(grouped ? { group_by: "provider" } : {}), ...filters() });
  return daily.daily.map((day) => ({ day: day.day, cost_usd: day.cost_usd, tokens: day.tokens, by_provider: Object.fromEntries(
    Object.entries(day.groups || {}).map(([p, g]) => [p, { cost_usd: g.cost_usd, tokens: g.tokens.total }])) }));
}

async function refresh() {
  if (!state.key) return showLogin();
  document.body.classList.add("loading");
  try {
    const span = { hours: state.hours, ...filters() };
    const days = Math.max(1, Math.ceil(state.hours / 24));
    const byModel = { days, group_by: "model", account: state.filters.account };
    const [now, before, points, dailyModels, window, budgets, alerts, calls] = await Promise.all([
      api("/api/summary", span), api("/api/summary", { ...span, offset_hours: state.hours }), series(),
      api("/api/usage/daily", byModel), api("/api/usage/window", { minutes: 300, account: state.filters.account }),
      api("/api/budgets"), api("/api/alerts", { state: "all" }), api("/api/calls", { limit: 50, ...filters() })]);
    $("#login").hidden = true;
    $("#main").hidden = false;
    $("#controls").hidden = false;
    showBanner("");
    renderCards(now, before);
    renderSeries(points);
    renderModels(now, dailyModels);
    renderWindow(window);
    renderBudgets(budgets.budgets);
    renderAlerts(alerts.alerts);
    state.calls = calls.calls.filter((c) => c.ts >= now.from);
    renderCalls();
    remember("provider", Object.keys(now.by_provider || {}));
    remember("model", Object.keys(now.by_model || {}));
    remember("account", calls.calls.map((c) => c.account));
    if (now.scope === "account" && !state.filters.account) $("#filter-account").hidden = true;
    $("#updated").textContent = new Date().toISOString().replace("T", " ").slice(0, 19);
    document.body.dataset.refreshes = String(++state.refreshes);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      if (error.status === 401) { localStorage.removeItem(KEY_STORE); state.key = null; }
      showLogin(`That key was refused: ${error.message}`);
    } else {
      showBanner(error.status ? `The API answered: ${error.message}` : error.message);
    }
  } finally {
    document.body.classList.remove("loading");
  }
}

async function download(format) {
  try {
    const response = await api("/api/export", { format, hours: state.hours, ...filters() }, { raw: true });
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = el("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name ? name[1] : `tollgate-calls.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) { showBanner(error.message); }
}

function wire() {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("#key-input").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    $("#key-input").value = "";
    refresh();
  });
  $("#sign-out").addEventListener("click", () => { localStorage.removeItem(KEY_STORE); state.key = null; showLogin(); });
  for (const button of document.querySelectorAll(".ranges button")) {
    button.addEventListener("click", () => {
      document.querySelectorAll(".ranges button").forEach((b) => b.classList.toggle("active", b === button));
      state.hours = Number(button.dataset.hours);
      refresh();
    });
  }
  for (const kind of ["account", "provider", "model"]) {
    $(`#filter-${kind}`).addEventListener("change", (event) => { state.filters[kind] = event.target.value; refresh(); });
  }
  for (const header of document.querySelectorAll("#calls th")) {
    header.addEventListener("click", () => {
      const column = header.dataset.sort;
      state.sort = { column, descending: state.sort.column === column ? !state.sort.descending : true };
      renderCalls();
    });
  }
  $("#export-csv").addEventListener("click", () => download("csv"));
  $("#export-json").addEventListener("click", () => download("json"));
}

async function start() {
  try {
    const config = await (await fetch("config.json", { cache: "no-store" })).json();
    if (config.api_url) state.apiBase = config.api_url;
  } catch (ignored) { /* no config.json: the API is on this origin */ }
  wire();
  await refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

window.tollgate = state;
start();

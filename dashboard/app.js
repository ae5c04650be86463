/* Tollgate dashboard, overview: cards, charts, the rolling window, budgets, alerts, recent calls, and the
   controls (time range, filters, key). Shared helpers: api.js; "Who spent it": who.js. */
"use strict";

const REFRESH_MS = 30000;
const COLOURS = ["#3867d6", "#e8912d", "#2eb67d", "#d00000", "#8854d0", "#20bf6b", "#f7b731", "#4b6584"];

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
  const short = state.range.hours && state.range.hours <= 24;
  const labels = points.map((p) => p.day || (short ? p.ts.slice(11, 16) : p.ts.slice(5, 16).replace("T", " ")));
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
                                ["Since", when(window.from)]]) {
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
    const fill = el("span", null, barLevel(budget.percent));
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

const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };

/** The most severe first, and within a severity the newest first. */
function bySeverity(alerts) {
  const rank = (alert) => SEVERITY_RANK[alert.severity] ?? 5;
  return [...alerts].sort((a, b) => rank(a) - rank(b) || (b.opened_at || "").localeCompare(a.opened_at || ""));
}

function renderAlerts(alerts) {
  const active = bySeverity(alerts.filter((a) => a.state !== "resolved"));
  const list = $("#alerts");
  list.replaceChildren();
  list.nextElementSibling.hidden = active.length > 0;
  for (const alert of active) {
    const item = el("li", null, `${alert.severity} ${alert.state}`);
    item.dataset.severity = alert.severity;
    item.dataset.opened = alert.opened_at;
    const text = el("div");
    const seen = alert.occurrences > 1 ? ` · ${alert.occurrences} times` : "";
    text.append(el("strong", timesIn(alert.title)), el("p", timesIn(alert.message)),
                el("p", `${alert.severity} · opened ${when(alert.opened_at)}${seen} · ${alert.state}`, "muted"));
    const actions = el("div", null, "actions");
    if (alert.state === "open") actions.append(alertAction(alert, "Acknowledge", "ack"));
    actions.append(alertAction(alert, "Resolve", "resolve"));
    item.append(text, actions);
    list.append(item);
  }
}

/** The latest 20 alerts, the most severe first, then the newest: how long each lasted, who acknowledged or
    resolved it. */
function renderAlertHistory(alerts) {
  alerts = bySeverity(alerts.slice(0, 20));
  const body = fillTable($("#history"), alerts.map((alert) => [
    when(alert.opened_at), [timesIn(alert.title), "title"], [alert.severity, "severity"], [alert.state, "state"],
    alert.state === "resolved" ? duration(alert.duration_seconds) : "ongoing",
    [alert.resolved_by || alert.acknowledged_by || "", "by"]]));
  [...body.rows].forEach((row, n) => { row.title = timesIn(alerts[n].resolution || alerts[n].message); });
}

function sortValue(call, column) {
  if (column === "tokens") return tokensOf(call);
  if (column === "cost") return call.cost_usd === null ? -1 : Number(call.cost_usd);
  if (column === "tags") return tagsText(call.tags);
  return call[column] ?? "";
}

/** What the filter box matches: every text a row shows, and the call id. */
function callText(call) {
  return [call.call_id, call.provider, call.model, call.account, call.user, call.session, tagsText(call.tags),
          call.status, call.error_type, call.operation].filter((v) => v !== null && v !== undefined).join(" ")
    .toLowerCase();
}

function renderCalls() {
  const { column, descending } = state.sort;
  const query = $("#calls-filter").value.trim().toLowerCase();
  const shown = query ? state.calls.filter((call) => callText(call).includes(query)) : state.calls;
  $("#calls-count").textContent = query ? `${shown.length} of ${state.calls.length} calls` : "";
  const rows = [...shown].sort((a, b) => {
    const x = sortValue(a, column), y = sortValue(b, column);
    return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
  });
  const body = $("#calls tbody");
  body.replaceChildren();
  $("#calls").nextElementSibling.hidden = rows.length > 0;
  $("#calls").nextElementSibling.textContent = query ? "No loaded call matches the filter."
    : "No calls in this range yet: point an SDK at the gateway.";
  for (const call of rows) {
    const row = el("tr", null, "clickable");
    const failed = call.status >= 400 || call.error_type;
    row.append(el("td", when(call.ts)), el("td", call.provider), el("td", call.model, "model"),
               el("td", call.account, "account"), el("td", call.user ?? "", "user"),
               el("td", call.session ?? "", "session"), el("td", failed ? `${call.status} ${call.error_type || ""}` : call.status,
               failed ? "status-error" : ""), el("td", number(tokensOf(call)), "num"),
               el("td", money(call.cost_usd), "num cost"), el("td", ms(call.latency_ms), "num"),
               el("td", ms(call.ttft_ms), "num ttft"), el("td", tokensPerSecond(call), "num speed"),
               el("td", tagsText(call.tags), "tags"));
    row.title = `${call.call_id}${call.stream ? " · streamed" : ""} · click for the whole call`;
    row.dataset.call = call.call_id;
    row.addEventListener("click", () => { openCall(call); $("#drill").scrollIntoView({ block: "nearest" }); });
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

/** Cost and tokens over the range: 5-minute or hourly points up to 7 days back, else one point a day. */
async function series(filter) {
  const { range } = state;
  if (range.hours && range.hours <= 168 && !state.filters.team) {  // a team's split is kept by the day
    const interval = range.hours <= 6 ? "5m" : "1h";
    return (await api("/api/usage/timeseries", { hours: range.hours, interval, ...filter })).points;
  }
  const grouped = !state.filters.provider && !state.filters.model && !state.filters.team;
  const daily = await api("/api/usage/daily", { ...dailyRange(range), ...(grouped ? { group_by: "provider" } : {}),
                                                ...filter });
  const byDay = new Map(daily.daily.map((day) => [day.day, day]));
  return everyDay(range).map((name) => {  // a day without calls is a bar of height zero, not a missing bar
    const day = byDay.get(name) || { cost_usd: "0", tokens: 0, groups: {} };
    return { day: name, cost_usd: day.cost_usd, tokens: day.tokens, by_provider: Object.fromEntries(
      Object.entries(day.groups || {}).map(([p, g]) => [p, { cost_usd: g.cost_usd, tokens: g.tokens.total }])) };
  });
}

async function refreshOverview(current) {
  const filter = scope("account", "team", "provider", "model");
  const account = state.filters.account;
  const [now, before, points, dailyModels, window, budgets, alerts, calls] = await Promise.all([
    api("/api/summary", { ...state.range, ...filter }),
    api("/api/summary", { ...previousRange(state.range), ...filter }),
    series(filter), api("/api/usage/daily", { ...dailyRange(state.range), group_by: "model", account }),
    api("/api/usage/window", { minutes: 300, account }), api("/api/budgets"), api("/api/alerts", { state: "all" }),
    api("/api/calls", { limit: 50, ...scope("account", "provider", "model") })]);
  if (!current()) return;
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#controls").hidden = false;
  showBanner("");
  $("#range-label").textContent = `${rangeLabel(state.range)} · ${when(now.from)} to ${when(now.to)}`;
  renderCards(now, before);
  renderSeries(points);
  renderModels(now, dailyModels);
  renderWindow(window);
  renderBudgets(budgets.budgets);
  renderAlerts(alerts.alerts);
  renderAlertHistory(alerts.alerts);
  const team = state.filters.team;  // /api/calls has no team filter: the page applies it, and the range
  state.calls = calls.calls.filter((c) => c.ts >= now.from && c.ts.slice(0, 19) <= now.to.slice(0, 19) &&
                                          (!team || c.team === team));
  renderCalls();
  remember("provider", Object.keys(now.by_provider || {}));
  remember("model", Object.keys(now.by_model || {}));
  remember("account", calls.calls.map((c) => c.account));
  if (now.scope === "account" && !state.filters.account) state.ownAccount = now.scope_id;
  $("#filter-account").hidden = Boolean(state.ownAccount);
}

async function refresh() {
  if (!state.key) return showLogin();
  const generation = ++state.generation;
  const current = () => generation === state.generation;
  document.body.classList.add("loading");
  const panels = Promise.all([refreshWhoSpentIt(current), refreshManage(), refreshProviders(current)]);  // each card shows its own error
  try {
    await refreshOverview(current);
    await panels;
    if (!current()) return;
    $("#updated").textContent = when(new Date().toISOString());
    document.body.dataset.refreshes = String(++state.refreshes);
  } catch (error) {
    if (!current()) return;
    if (error.status === 401 || error.status === 403) {
      if (error.status === 401) { localStorage.removeItem(KEY_STORE); state.key = null; }
      closeManage();
      showLogin(`That key was refused: ${error.message}`);
    } else {
      showBanner(error.status ? `The API answered: ${error.message}` : error.message);
    }
  } finally {
    if (current()) document.body.classList.remove("loading");
  }
}

/** The calls of the range as a file; an export too large for one answer is written by a job: the page
    follows it and downloads the file when it is ready. */
async function download(format) {
  try {
    const params = { format, ...state.range, ...scope("account", "team", "provider", "model") };
    const response = await api("/api/export", params, { raw: true });
    if (response.status === 202) return followExport((await response.json()).export_id);
    const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = el("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name ? name[1] : `tollgate-calls.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
  } catch (error) { showBanner(error.message); }
}

async function followExport(exportId) {
  for (;;) {
    const job = await api(`/api/exports/${encodeURIComponent(exportId)}`);
    if (job.state === "ready") {
      showBanner("");
      const link = el("a");
      link.href = job.download_url;
      link.download = job.file_name || "";
      return link.click();
    }
    if (job.state === "failed") return showBanner(`The export failed: ${job.error}`);
    const done = job.progress && job.progress.percent !== undefined ? ` (${job.progress.percent} %)` : "";
    showBanner(`The export ${exportId} is being written${done}: it downloads when it is ready.`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** A preset: the buttons show which, the day pickers show its days. */
function choose(range, button) {
  state.range = range;
  document.querySelectorAll(".ranges button").forEach((b) => b.classList.toggle("active", b === button));
  [$("#range-start").value, $("#range-end").value] = rangeDays(range);
  refresh();
}

/** The reports filter by a team or by a provider and model, not both: picking one clears the other. */
function filterBy(kind, value) {
  state.filters[kind] = value;
  const others = kind === "team" ? ["provider", "model"] : kind === "account" ? [] : ["team"];
  for (const other of value ? others : []) {
    state.filters[other] = "";
    $(`#filter-${other}`).value = "";
  }
}

/** Days picked in the calendars: whole UTC days, both included. */
function chooseDays() {
  const start = $("#range-start").value, end = $("#range-end").value;
  if (!start || !end) return;
  if (start > end) return showBanner("The first day is after the last: pick them again.");
  document.querySelectorAll(".ranges button").forEach((b) => b.classList.remove("active"));
  state.range = { start, end };
  refresh();
}

function wire() {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("#key-input").value.trim();
    state.ownAccount = null;
    localStorage.setItem(KEY_STORE, state.key);
    $("#key-input").value = "";
    refresh();
  });
  $("#sign-out").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    state.key = null;
    closeManage();
    showLogin();
  });
  $("#calls-filter").addEventListener("input", renderCalls);
  for (const button of document.querySelectorAll(".ranges button")) {
    button.addEventListener("click", () => choose(button.dataset.hours ? { hours: Number(button.dataset.hours) }
                                                  : { month: monthFromNow(Number(button.dataset.month)) }, button));
  }
  [$("#range-start").value, $("#range-end").value] = rangeDays(state.range);
  $("#range-start").addEventListener("change", chooseDays);
  $("#range-end").addEventListener("change", chooseDays);
  for (const kind of ["account", "team", "provider", "model"]) {
    $(`#filter-${kind}`).addEventListener("change", (event) => { filterBy(kind, event.target.value); refresh(); });
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
  wireManage();
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

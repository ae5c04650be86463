/* Tollgate dashboard, "Who spent it": top users → their sessions → a session's calls → one call; latency by
   model; month-to-date spend with its projection; credits. Each card loads on its own. */
"use strict";

// One call, as a reader asks about it: who made it, what it was, its tokens, its cost, its timing. A field the
// list does not name still shows, under "Other", by its API name.
const CALL_GROUPS = [
  ["Who", [["account", "Account"], ["team", "Team"], ["key_id", "Key"], ["user", "User"], ["session", "Session"],
           ["operation", "Operation"], ["tags", "Tags"]]],
  ["What", [["call_id", "Call id"], ["provider", "Provider"], ["model", "Model"], ["endpoint", "Endpoint"],
            ["stream", "Streamed"], ["status", "Status"], ["error_type", "Error"], ["attempts", "Attempts"]]],
  ["Tokens", [["input_tokens", "Input (uncached)"], ["cache_read_tokens", "Cache read"],
              ["cache_write_tokens", "Cache write"], ["cache_write_1h_tokens", "Cache write (1 h)"],
              ["output_tokens", "Output"], ["reasoning_tokens", "Reasoning"], ["total_tokens", "Total"],
              ["usage_reported", "Reported by the provider"]]],
  ["Cost", [["cost_usd", "Cost"], ["provider_cost_usd", "Provider's cost"], ["priced", "Priced"],
            ["price_source", "Price source"], ["price_version", "Price version"], ["repriced_at", "Repriced"]]],
  ["Timing", [["ts", "Time"], ["latency_ms", "Latency"], ["upstream_latency_ms", "Upstream latency"],
              ["ttft_ms", "Time to first token"], ["output_tokens_per_s", "Output tokens/s"]]],
];
const NAMED_FIELDS = new Set(CALL_GROUPS.flatMap(([, fields]) => fields.map(([name]) => name)));
let drillTicket = 0;  // a slow answer for a level the user has since left is dropped

/** The scope filters a view takes: `team` and the rest where the endpoint reads them. */
function scope(...names) {
  return Object.fromEntries(names.map((name) => [name, state.filters[name]]));
}

/** Every card of the area; `current()` turns false once a newer refresh has started (its answers win). */
async function refreshWhoSpentIt(current) {
  await Promise.all([
    panel($("#users-card"), loadUsers, current), panel($("#drill"), reloadDrill),
    panel($("#models-card"), loadModels, current), panel($("#forecast-card"), loadForecast, current),
    panel($("#credits-card"), loadCredits, current), loadTeams()]);
}

// --- top users and the drill-down ---------------------------------------------------------------
async function loadUsers() {
  const answer = await api("/api/usage/users", { ...state.range, limit: 50, ...scope("account", "team") });
  return () => renderUsers(answer);
}

/** Users by cost, as the API orders them; without an account filter a row sums the user over the accounts. */
function renderUsers(answer) {
  fillTable($("#users"), answer.users.map((row) => [
    row.user === null || row.user === undefined ? el("span", "(no user)", "muted")
      : linkButton(row.user, () => openUser(row), { user: row.user, account: row.account ?? "" }),
    row.account ?? "all", [number(row.calls), "num"], [number(row.errors), "num"],
    [number(totalTokens(row.tokens)), "num"], [money(row.cost_usd), "num cost"]]));
  const notes = [answer.truncated ? "The 50 who spent most." : "",
                 state.filters.provider || state.filters.model ? "Users are not split by provider or model." : ""];
  $("#users-card .note").textContent = notes.filter(Boolean).join(" ");
  markSelectedUser();
}

function openUser(row) {
  state.drill = { user: { user: row.user, account: row.account }, session: null, call: null };
  return panel($("#drill"), reloadDrill);
}

/** The open user's row (a row without an account sums the user over all of them). */
function markSelectedUser() {
  const open = state.drill.user;
  for (const button of document.querySelectorAll("#users tbody button")) {
    const { user, account } = button.dataset;
    button.closest("tr").classList.toggle("selected", Boolean(open) && user === open.user &&
                                          (account === "" || account === open.account));
  }
}

function openSession(session, account) {
  state.drill = { ...state.drill, session: { session, account }, call: null };
  return panel($("#drill"), reloadDrill);
}

/** A call, from the open session, or from the recent calls: the crumbs then lead to its user and session. */
function openCall(call, inSession = false) {
  state.drill = inSession ? { ...state.drill, call: call.call_id } : {
    user: call.user ? { user: call.user, account: call.account } : null,
    session: call.session ? { session: call.session, account: call.account } : null, call: call.call_id };
  return panel($("#drill"), reloadDrill);
}

function closeTo(level) {
  const { user, session } = state.drill;
  state.drill = level === "users" ? { user: null, session: null, call: null }
    : level === "sessions" ? { user, session: null, call: null } : { user, session, call: null };
  return panel($("#drill"), reloadDrill);
}

/** The deepest level open: a call, a session's calls, a user's sessions, or the hint to pick a user. */
async function reloadDrill() {
  const ticket = ++drillTicket;
  const { user, session, call } = state.drill;
  let show = null;
  try {
    if (call) {
      const answer = await api(`/api/calls/${encodeURIComponent(call)}`);
      show = () => renderCall(answer);
    } else if (session) {
      const answer = await api(`/api/sessions/${encodeURIComponent(session.session)}`, { account: session.account });
      show = () => renderSession(answer);
    } else if (user) {
      const answer = await api("/api/sessions", { user: user.user, account: user.account, ...state.range });
      show = () => renderSessions(answer);
    }
  } finally {  // on a failure too, so the crumbs lead back and no stale level stays on view
    if (ticket === drillTicket) {
      for (const view of ["#sessions-view", "#session-view", "#call-view"]) $(view).hidden = true;
      $("#drill-hint").hidden = Boolean(user || session || call);
      renderCrumbs();
      markSelectedUser();
      if (show) show();
    }
  }
}

function renderCrumbs() {
  const { user, session, call } = state.drill;
  const crumbs = $("#crumbs");
  crumbs.replaceChildren();
  const steps = [["All users", "users", true]];
  if (user) steps.push([user.account ? `${user.user} (${user.account})` : user.user, "sessions",
                        Boolean(session || call)]);
  if (session) steps.push([session.session, "session", Boolean(call)]);
  if (call) steps.push([call, "call", false]);
  steps.forEach(([text, level, back], n) => {
    if (n) crumbs.append(el("span", "›", "muted"));
    crumbs.append(back ? linkButton(text, () => closeTo(level), { level }) : el("span", text, "here"));
  });
  crumbs.hidden = steps.length === 1;
}

function renderSessions(answer) {
  $("#sessions-view").hidden = false;
  $("#sessions-view h3").textContent = `Sessions of ${state.drill.user.user} · ${rangeLabel(state.range)}`;
  fillTable($("#sessions"), answer.sessions.map((row) => [
    row.session === null || row.session === undefined ? el("span", "(no session)", "muted")
      : linkButton(row.session, () => openSession(row.session, row.account), { session: row.session }),
    [number(row.calls), "num"], [money(row.cost_usd), "num cost"], when(row.first_ts), when(row.last_ts)]));
}

function renderSession(answer) {
  $("#session-view").hidden = false;
  $("#session-view h3").textContent = `Session ${answer.session} · ${answer.user ?? "(no user)"} · ${answer.account}`;
  const totals = $("#session-totals");
  totals.replaceChildren();
  for (const [label, value] of [["Calls", number(answer.totals.calls)], ["Errors", number(answer.totals.errors)],
                                ["Tokens", number(totalTokens(answer.totals.tokens))],
                                ["Cost", money(answer.totals.cost_usd)]]) {
    totals.append(el("dt", label), el("dd", value));
  }
  fillTable($("#session-calls"), answer.calls.map((call) => {
    const failed = call.status >= 400 || call.error_type;
    const link = linkButton(when(call.ts), () => openCall(call, true), { call: call.call_id });
    link.title = call.call_id;
    return [link, [call.model, "model"], [failed ? `${call.status} ${call.error_type || ""}` : call.status,
            failed ? "status-error" : ""], [number(tokensOf(call)), "num"], [money(call.cost_usd), "num cost"],
            [ms(call.latency_ms), "num"]];
  }));
}

/** A call's field as the page writes it elsewhere (money, counts, durations, times). */
function callValue(call, name) {
  const value = call[name];
  if (name === "output_tokens_per_s") return tokensPerSecond(call) || "—";
  if (value === null || value === undefined || value === "") return "—";
  if (name.endsWith("cost_usd")) return money(value);
  if (name.endsWith("_tokens")) return number(value);
  if (name.endsWith("_ms")) return ms(value);
  if (name === "ts" || name.endsWith("_at")) return when(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (name === "tags") return tagsText(value);
  if (name === "attempts" && Array.isArray(value)) {
    return value.map((a) => [a.provider, a.model, a.status, a.error_type, a.latency_ms === undefined ? null
      : ms(a.latency_ms)].filter((part) => part !== null && part !== undefined).join(" · ")).join("\n");
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function renderCall(call) {
  $("#call-view").hidden = false;
  const detail = $("#call-detail");
  detail.replaceChildren();
  const shown = { ...call, total_tokens: tokensOf(call) };
  const others = Object.keys(call).filter((name) => !NAMED_FIELDS.has(name)).map((name) => [name, name]);
  for (const [title, fields] of [...CALL_GROUPS, ["Other", others]]) {
    const present = fields.filter(([name]) => name in shown);
    if (!present.length) continue;
    const group = el("section", null, "call-group");
    group.dataset.group = title.toLowerCase();
    const list = el("dl", null, "facts");
    for (const [name, label] of present) {
      const item = el("dd", callValue(shown, name));
      item.dataset.field = name;
      list.append(el("dt", label), item);
    }
    group.append(el("h4", title), list);
    detail.append(group);
  }
}

// --- latency and success by model ---------------------------------------------------------------
/** Latency by model is kept by the hour for 48 hours: does the range lie within them? */
function withinLatencyHours(range) {
  if (range.hours) return range.hours <= 48;
  const [first] = rangeDays(range);
  return !range.month && first >= addDays(utcDay(new Date()), -1);
}

/** The table follows the range: within the last 48 h from the latency report; over a longer range calls, errors
    and cost per model come from the summary of that range, and the latency columns stay blank (the note says
    why) rather than show other hours than the range's. */
async function loadModels() {
  let models, note = "";
  if (withinLatencyHours(state.range)) {
    const answer = await api("/api/usage/models", { ...state.range, ...scope("account", "team") });
    models = answer.models;
  } else {
    const answer = await api("/api/summary", { ...state.range, ...scope("account", "team", "provider", "model") });
    models = Object.entries(answer.by_model || {}).map(([model, row]) => ({
      model, calls: row.calls, errors: row.errors, cost_usd: row.cost_usd, latency_ms: null, ttft_ms: null,
      success_rate: row.calls ? 1 - row.errors / row.calls : null }))
      .sort((a, b) => b.calls - a.calls || a.model.localeCompare(b.model));
    note = "Latency and time to first token are kept by the hour for two days: pick a range within the last " +
           "48 h to see them.";
  }
  models = models.filter((row) => !state.filters.model || row.model === state.filters.model);
  return () => {
    $("#models-card .note").textContent = note;
    renderModelLatency(models);
  };
}

function renderModelLatency(models) {
  fillTable($("#models"), models.map((row) => [
    [row.model, "model"], [number(row.calls), "num"], [number(row.errors), "num"], [rate(row.success_rate), "num"],
    [ms(row.latency_ms && row.latency_ms.p50), "num"], [ms(row.latency_ms && row.latency_ms.p95), "num"],
    [ms(row.ttft_ms && row.ttft_ms.p50), "num ttft"], [ms(row.ttft_ms && row.ttft_ms.p95), "num ttft"],
    [money(row.cost_usd), "num cost"]]));
}

// --- month-to-date spend and credits --------------------------------------------------
/** This month so far and projected; with a month picked (this or last), that month. */
async function loadForecast() {
  const answer = await api("/api/forecast", { ...scope("account"), month: state.range.month });
  return () => renderForecast(answer);
}

function renderForecast(answer) {
  const facts = $("#forecast");
  facts.replaceChildren();
  const projected = answer.enough_data && answer.projected_usd !== null ? money(answer.projected_usd)
    : "not enough data yet";
  for (const [label, value, name] of [["Month", answer.month, "month"],
                                      ["Month to date", money(answer.month_to_date_usd), "mtd"],
                                      ["Projected", projected, "projected"], ["Method", answer.method, "method"]]) {
    const item = el("dd", value);
    item.dataset.field = name;
    facts.append(el("dt", label), item);
  }
  fillTable($("#forecast-providers"), Object.entries(answer.by_provider || {}).map(([provider, row]) => [
    provider, [money(row.month_to_date_usd), "num"],
    [row.projected_usd === null || row.projected_usd === undefined ? "—" : money(row.projected_usd), "num"]]));
}

async function loadCredits() {
  const answer = await api("/api/credits", scope("account"));
  return () => renderCredits(answer);
}

/** Each account's prepaid credit: the bar is the share used, amber from 80 %, red from 100 %. */
function renderCredits(answer) {
  const accounts = answer.credits.filter((credit) => credit.since !== null || credit.allocated_usd !== "0");
  const list = $("#credits");
  list.replaceChildren();
  list.nextElementSibling.hidden = accounts.length > 0;
  for (const credit of accounts) {
    const item = el("li");
    item.dataset.account = credit.account;
    const bar = el("div", null, "bar");
    const percent = Number(credit.allocated_usd) > 0 ? 100 * Number(credit.used_usd) / Number(credit.allocated_usd)
      : 100;
    const used = el("span", null, Number(credit.remaining_usd) <= 0 ? "exceeded" : barLevel(percent));
    used.style.width = `${Math.min(100, percent)}%`;
    bar.append(used);
    item.append(el("strong", `${credit.account} `), el("span", `${money(credit.remaining_usd)} left`, "remaining"), bar,
                el("div", `${money(credit.used_usd)} used of ${money(credit.allocated_usd)} since ${credit.since} (UTC)` +
                   ` · ${credit.transactions.length} top-up${credit.transactions.length === 1 ? "" : "s"}`, "muted"));
    list.append(item);
  }
}

/** The team filter's choices: the teams that spent in the range (a failure leaves the list as it was). */
async function loadTeams() {
  try {
    const daily = await api("/api/usage/daily", { ...dailyRange(state.range), group_by: "team", ...scope("account") });
    remember("team", daily.daily.flatMap((day) => Object.keys(day.groups || {})));
  } catch (ignored) { /* the list keeps the teams seen so far */ }
}

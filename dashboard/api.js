/* Tollgate dashboard, shared part: the state, the API client, the time range every view shows, and the
   helpers that put the API's values into the page. Everything from the API goes in as text (textContent). */
"use strict";

const KEY_STORE = "tollgate.dashboardKey";
const KINDS = [["input_tokens", "input"], ["cache_read_tokens", "cache read"], ["cache_write_tokens", "cache write"],
               ["output_tokens", "output"], ["reasoning_tokens", "reasoning"]];
const state = {
  key: localStorage.getItem(KEY_STORE), apiBase: location.origin,
  // As the API names a range: {hours: N}, {month: "YYYY-MM"} or {start: "YYYY-MM-DD", end: "YYYY-MM-DD"}.
  range: { hours: 24 },
  filters: { account: "", team: "", provider: "", model: "" },
  ownAccount: null,  // the account an account-scoped key reads (its filter is then hidden)
  generation: 0,  // counts refreshes: only the newest one's answers are shown
  sort: { column: "ts", descending: true }, calls: [], charts: {}, refreshes: 0, timer: null,
  seen: { account: new Set(), team: new Set(), provider: new Set(), model: new Set() },
  drill: { user: null, session: null, call: null },  // what "Who spent it" has open
};

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
  for (const [name, value] of Object.entries(params)) {
    if (value !== "" && value !== undefined && value !== null) url.searchParams.set(name, value);
  }
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

const ACTOR_STORE = "tollgate.actor";
/** The admin API (`Authorization: Bearer`), for the admin key only. `X-Tollgate-Actor` names who acted in the
    audit trail: the name given on the page (ASCII: a header carries no other), or just "dashboard". */
async function admin(method, path, body) {
  const name = (localStorage.getItem(ACTOR_STORE) || "").replace(/[^\x20-\x7e]/g, "").trim();
  const headers = { "Authorization": `Bearer ${state.key || ""}`, "X-Tollgate-Actor": name ? `${name} (dashboard)` : "dashboard" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(state.apiBase.replace(/\/$/, "") + path), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `The API at ${state.apiBase} cannot be reached.`);
  }
  let answer = null;
  try { answer = await response.json(); } catch (ignored) { /* not JSON */ }
  if (!response.ok) {
    throw new ApiError(response.status, answer && answer.error ? answer.error.message
                                                             : `${response.status} ${response.statusText}`);
  }
  return answer;
}

// --- values as the page shows them: money strings as given, never re-parsed for display -------------
function money(text) { return text === null || text === undefined ? "—" : `$${text}`; }
function number(value) { return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US"); }
function ms(value) { return value === null || value === undefined ? "—" : `${number(value)} ms`; }
function rate(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(1)} %`;
}
/** Every time on the page, one way: "2026-12-07 14:03:05 UTC" (the API's times are UTC ISO-8601). */
function when(ts) { return ts ? `${String(ts).replace("T", " ").slice(0, 19)} UTC` : "—"; }
/** Times the server wrote into a text (an alert's message) as `when` writes them. */
function timesIn(text) {
  return String(text ?? "").replace(/\b(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:Z|\+00:00)/g, "$1 $2 UTC");
}
/** A bar's colour: amber from 80 % of its limit, red from 100 %. */
function barLevel(percent) { return percent >= 100 ? "exceeded" : percent >= 80 ? "warning" : ""; }

// Under 50 ms of generation after the first token (the output came in one burst) a rate measures the network,
// not the model; and no provider streams faster than 10,000 tokens/s.
const MIN_GENERATION_MS = 50, MAX_TOKENS_PER_S = 10000;
/** A stream's output tokens per second, or "" when it has no measurable generation time. */
function tokensPerSecond(call) {
  const speed = call.output_tokens_per_s;
  if (speed === null || speed === undefined || call.ttft_ms === null || call.ttft_ms === undefined) return "";
  if (call.latency_ms - call.ttft_ms < MIN_GENERATION_MS || !(speed > 0) || speed > MAX_TOKENS_PER_S) return "";
  return number(speed);
}
/** Tags as the caller sent them: `k=v, k2=v2`. */
function tagsText(tags) {
  return tags && typeof tags === "object" ? Object.entries(tags).map(([k, v]) => `${k}=${v}`).join(", ") : tags || "";
}
function tokensOf(call) { return KINDS.reduce((sum, [field]) => sum + (call[field] || 0), 0); }
function totalTokens(tokens) { return tokens !== null && typeof tokens === "object" ? tokens.total : tokens; }

// A table body filled with rows of cells: each cell is text, or [text, className], or a node.
function fillTable(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const row = el("tr");
    for (const cell of cells) {
      if (cell instanceof Node) { const td = el("td"); td.append(cell); row.append(td); }
      else if (Array.isArray(cell)) row.append(el("td", cell[0], cell[1]));
      else row.append(el("td", cell));
    }
    body.append(row);
  }
  const empty = table.parentElement.querySelector(":scope > .empty");
  if (empty) empty.hidden = rows.length > 0;
  return body;
}

function linkButton(text, onClick, data = {}) {
  const button = el("button", text, "link");
  Object.assign(button.dataset, data);
  button.addEventListener("click", onClick);
  return button;
}

/** A card that loads on its own: `load` fetches and returns what renders it, unless a newer refresh has started
    (`current()` is then false); a failure shows in the card, not over the whole page. */
async function panel(card, load, current = () => true) {
  const error = card.querySelector(":scope > .error");
  try {
    const render = await load();
    if (!current()) return;
    if (render) render();
    if (error) error.hidden = true;
  } catch (failure) {
    if (!current()) return;
    if (!error) throw failure;
    error.textContent = failure.status ? `The API answered: ${failure.message}` : failure.message;
    error.hidden = false;
  }
}

// --- the time range -------------------------------------------------------------------------------
function utcDay(date) { return date.toISOString().slice(0, 10); }
function addDays(day, count) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + count);
  return utcDay(date);
}
function daysBetween(first, last) { return Math.round((Date.parse(last) - Date.parse(first)) / 86400000); }
function monthFromNow(offset) {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1)).toISOString().slice(0, 7);
}

/** The first and last UTC day a range names (a month not over yet ends on its last day). */
function rangeDays(range) {
  if (range.hours) return [utcDay(new Date(Date.now() - range.hours * 3600000)), utcDay(new Date())];
  if (range.month) {
    const [year, month] = range.month.split("-").map(Number);
    return [`${range.month}-01`, utcDay(new Date(Date.UTC(year, month, 0)))];
  }
  return [range.start, range.end];
}

/** The period of the same length just before the range, for the cards' changes. */
function previousRange(range) {
  if (range.hours) return { hours: range.hours, offset_hours: range.hours };
  const [first, named] = rangeDays(range);
  const today = utcDay(new Date());
  const last = named < today ? named : today;  // a range not over yet is compared as far as it has gone
  const length = Math.max(0, daysBetween(first, last)) + 1;
  return { start: addDays(first, -length), end: addDays(first, -1) };
}

/** The range for reports kept by the day (`/api/usage/daily`): hours become the days they touch. */
function dailyRange(range) {
  return range.hours ? { days: Math.max(1, Math.ceil(range.hours / 24)) } : { ...range };
}

/** Every UTC day a range spans, oldest first, as the daily report counts them (hours: the days they touch). */
function everyDay(range) {
  const today = utcDay(new Date());
  const [first, last] = range.hours ? [addDays(today, 1 - dailyRange(range).days), today] : rangeDays(range);
  return Array.from({ length: Math.max(0, daysBetween(first, last)) + 1 }, (_, n) => addDays(first, n));
}

function rangeLabel(range) {
  if (range.hours) return range.hours <= 48 || range.hours % 24 ? `last ${range.hours} h`
                                                                 : `last ${range.hours / 24} d`;
  if (range.month) return range.month;
  return range.start === range.end ? range.start : `${range.start} to ${range.end}`;
}

/* Tollgate dashboard, "Providers": each provider's health over the range's last hours (calls, error rate, p95,
   last success, fallbacks taken) and its prepaid balance with the days left at the last 7 days' rate. */
"use strict";

const PROVIDER_STATES = { ok: "", idle: "muted", degraded: "warning", failing: "exceeded" };

/** The card, on every refresh; hidden for a key scoped to one account (the API refuses it: provider traffic is
    every account's). */
async function refreshProviders(current) {
  await panel($("#providers-card"), loadProviders, current);
}

async function loadProviders() {
  const card = $("#providers-card");
  let answer;
  try {
    answer = await api("/api/providers", { hours: 24 });
  } catch (failure) {
    if (failure.status !== 403) throw failure;
    return () => { card.hidden = true; };  // provider traffic is every account's: not for an account's key
  }
  return () => { card.hidden = false; renderProviders(answer); };
}

function balanceText(balance) {
  if (!balance) return "—";
  const days = balance.days_left === null ? "" : ` · ${number(balance.days_left)} days left`;
  return `${money(balance.balance_usd)}${days}`;
}

function renderProviders(answer) {
  fillTable($("#providers"), answer.providers.map((row) => {
    const state = el("span", row.state, PROVIDER_STATES[row.state] ?? "");
    const low = row.balance && row.balance.low_usd !== null && Number(row.balance.balance_usd) < Number(row.balance.low_usd);
    return [row.provider, state, [number(row.calls), "num"], [rate(row.error_rate), "num"],
            [ms(row.latency_ms.p95), "num"], [when(row.last_success), "num"], [number(row.fallbacks_taken), "num"],
            [balanceText(row.balance), low ? "num exceeded" : "num"]];
  }));
}

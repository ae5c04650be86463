/* Tollgate dashboard, "Manage": gateway keys, budgets and credit top-ups through the admin API (which audits each
   request), for the admin key only. A read-only dashboard key never sees these controls; the API refuses it too. */
"use strict";

const manage = { checkedFor: null, budgets: [], editing: null };
const BUDGET_SCOPES = ["global", "account", "team", "key", "user", "provider", "model"];
const BUDGET_PERIODS = ["daily", "weekly", "monthly", "window"];

/** Once per key (the admin API audits every request, so not every 30 s): the admin key may list the keys; any
    other key is refused (403), or the admin API is not reachable from here, and the section stays hidden. */
async function refreshManage() {
  if (!state.key || manage.checkedFor === state.key) return;
  const key = manage.checkedFor = state.key;
  let answer;
  try {
    answer = await admin("GET", "/admin/keys");
  } catch (refused) {
    if (state.key === key) showManage(false);
    return;
  }
  if (state.key !== key) return;
  showManage(true);
  renderKeys(answer.keys);
  await panel($("#budget-admin-card"), loadAdminBudgets);
}

function showManage(allowed) {
  $("#manage").hidden = !allowed;
  document.body.dataset.manage = allowed ? "yes" : "no";
}

function closeManage() {
  manage.checkedFor = null;
  $("#manage").hidden = true;
  $("#new-secret").hidden = true;
  $("#new-secret-value").textContent = "";
  delete document.body.dataset.manage;
}

/** Run one admin action from a card: its button waits, a refusal shows in the card (the API's own message). */
async function act(card, button, action) {
  const error = card.querySelector(":scope > .error");
  button.disabled = true;
  try {
    await action();
    error.hidden = true;
  } catch (failure) {
    error.textContent = failure.status ? `The API answered: ${failure.message}` : failure.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

/** The form's fields by name, trimmed; empty ones left out (the API reads a missing field as "none"). */
function formValues(form) {
  return Object.fromEntries([...new FormData(form)].map(([name, value]) => [name, String(value).trim()])
    .filter(([, value]) => value !== ""));
}

// --- gateway keys ---------------------------------------------------------------------------------
async function reloadKeys() {
  renderKeys((await admin("GET", "/admin/keys")).keys);
}

/** Active keys first, newest first; a revoked key stays listed with when it was revoked. */
function renderKeys(keys) {
  const sorted = [...keys].sort((a, b) => Number(b.active) - Number(a.active) ||
                                          (b.created_at || "").localeCompare(a.created_at || ""));
  const body = fillTable($("#keys"), sorted.map((key) => [
    key.name ?? "", [key.key_id, "key-id"], key.kind, key.account ?? "all", key.team ?? "", key.user ?? "",
    when(key.created_at), [key.active ? "active" : `revoked ${when(key.revoked_at)}`, "key-state"],
    key.active ? revokeButton(key) : ""]));
  [...body.rows].forEach((row, n) => {
    row.dataset.key = sorted[n].key_id;
    row.classList.toggle("revoked", !sorted[n].active);
  });
}

function revokeButton(key) {
  const button = el("button", "Revoke", "danger");
  button.dataset.action = "revoke";
  button.addEventListener("click", () => {
    if (!confirm(`Revoke the key ${key.name || key.key_id} (${key.key_id})? Calls with it are refused within seconds.`)) {
      return;
    }
    return act($("#keys-card"), button, async () => {
      await admin("DELETE", `/admin/keys/${encodeURIComponent(key.key_id)}`);
      await reloadKeys();
    });
  });
  return button;
}

/** A new key's secret is in this answer only: shown once, with a copy button, until "Done". */
async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  await act($("#keys-card"), form.querySelector("button[type=submit]"), async () => {
    const created = await admin("POST", "/admin/keys", formValues(form));
    form.reset();
    $("#new-secret-value").textContent = created.key;
    $("#new-secret-name").textContent = `${created.name} (${created.key_id}, account ${created.account})`;
    $("#copy-secret").textContent = "Copy";
    $("#new-secret").hidden = false;
    await reloadKeys();
  });
}

async function copySecret() {
  const secret = $("#new-secret-value").textContent;
  try {
    await navigator.clipboard.writeText(secret);
    $("#copy-secret").textContent = "Copied";
  } catch (ignored) {  // no clipboard (an http origin other than localhost): select it for Ctrl-C
    getSelection().selectAllChildren($("#new-secret-value"));
    $("#copy-secret").textContent = "Selected: press Ctrl-C";
  }
}

function forgetSecret() {
  $("#new-secret").hidden = true;
  $("#new-secret-value").textContent = "";
}

// --- budgets --------------------------------------------------------------------------------------
async function loadAdminBudgets() {
  const answer = await admin("GET", "/admin/budgets");
  return () => renderAdminBudgets(answer.budgets);
}

function limitText(budget) {
  return budget.limit_usd !== null && budget.limit_usd !== undefined ? money(budget.limit_usd)
    : `${number(budget.limit_tokens)} tokens`;
}

function renderAdminBudgets(budgets) {
  manage.budgets = budgets;
  const body = fillTable($("#admin-budgets"), budgets.map((budget) => {
    const actions = el("span", null, "actions");
    const edit = el("button", "Edit");
    edit.dataset.action = "edit";
    edit.addEventListener("click", () => editBudget(budget));
    const remove = el("button", "Delete", "danger");
    remove.dataset.action = "delete";
    remove.addEventListener("click", () => deleteBudget(budget, remove));
    actions.append(edit, remove);
    return [[budget.budget_id, "budget-id"],
            budget.scope === "global" ? "all traffic" : `${budget.scope} ${budget.scope_id}`,
            budget.period === "window" ? `${budget.window_minutes} min window` : budget.period,
            [limitText(budget), "num limit"], budget.thresholds.map((t) => `${Math.round(t * 100)} %`).join(", "),
            budget.mode, budget.channels.join(", ") || "none", actions];
  }));
  [...body.rows].forEach((row, n) => { row.dataset.budget = budgets[n].budget_id; });
}

/** The form, empty for a new budget or filled from one; the id of an existing budget stays as it is. */
function editBudget(budget) {
  const form = $("#budget-form");
  form.reset();
  manage.editing = budget;
  form.hidden = false;
  $("#budget-form-title").textContent = budget ? `Edit budget ${budget.budget_id}` : "New budget";
  form.elements.budget_id.readOnly = Boolean(budget);
  if (budget) {
    const tokens = budget.limit_usd === null || budget.limit_usd === undefined;
    form.elements.budget_id.value = budget.budget_id;
    form.elements.scope.value = budget.scope;
    form.elements.scope_id.value = budget.scope === "global" ? "" : budget.scope_id;
    form.elements.account.value = budget.scope === "user" ? budget.account || "" : "";
    form.elements.period.value = budget.period;
    form.elements.window_minutes.value = budget.window_minutes ?? "";
    form.elements.unit.value = tokens ? "tokens" : "usd";
    form.elements.limit.value = tokens ? budget.limit_tokens : budget.limit_usd;
    form.elements.thresholds.value = budget.thresholds.map((t) => +(t * 100).toFixed(4)).join(", ");
    form.elements.mode.value = budget.mode;
    for (const box of form.querySelectorAll("input[name=channels]")) box.checked = budget.channels.includes(box.value);
  }
  showBudgetFields();
  form.elements[budget ? "limit" : "budget_id"].focus();
}

/** The scope id only where the scope names one (and a user's account); the window's length only for a window budget. */
function showBudgetFields() {
  const form = $("#budget-form");
  form.querySelector(".scope-id").hidden = form.elements.scope.value === "global";
  form.querySelector(".user-account").hidden = form.elements.scope.value !== "user";  // a user is one account's
  form.querySelector(".window").hidden = form.elements.period.value !== "window";
}

/** The form as the admin API's budget (CONTRACT §3): thresholds typed in percent go out as fractions. */
function budgetBody(form) {
  const values = formValues(form);
  const body = { scope: values.scope, period: values.period, mode: values.mode,
                 channels: [...form.querySelectorAll("input[name=channels]:checked")].map((box) => box.value),
                 thresholds: (values.thresholds || "").split(/[\s,%]+/).filter(Boolean).map((t) => +(Number(t) / 100).toFixed(6)) };
  if (values.scope !== "global") body.scope_id = values.scope_id || "";
  if (values.scope === "user") body.account = values.account || "";
  if (values.period === "window") body.window_minutes = Number(values.window_minutes);
  if (values.unit === "tokens") body.limit_tokens = Number(values.limit); else body.limit_usd = values.limit || "";
  if (manage.editing && manage.editing.timezone) body.timezone = manage.editing.timezone;  // kept, not editable here
  return body;
}

async function saveBudget(event) {
  event.preventDefault();
  const form = event.target;
  await act($("#budget-admin-card"), form.querySelector("button[type=submit]"), async () => {
    await admin("PUT", `/admin/budgets/${encodeURIComponent(form.elements.budget_id.value.trim())}`, budgetBody(form));
    form.hidden = true;
    manage.editing = null;
    renderAdminBudgets((await admin("GET", "/admin/budgets")).budgets);
    refresh();  // the budgets card above measures the new limit
  });
}

function deleteBudget(budget, button) {
  if (!confirm(`Delete the budget ${budget.budget_id}? Its alerts keep their history.`)) return;
  return act($("#budget-admin-card"), button, async () => {
    await admin("DELETE", `/admin/budgets/${encodeURIComponent(budget.budget_id)}`);
    renderAdminBudgets((await admin("GET", "/admin/budgets")).budgets);
    refresh();
  });
}

// --- credit top-ups ---------------------------------------------------------------------------------
async function recordTopUp(event) {
  event.preventDefault();
  const form = event.target;
  const { account, ...body } = formValues(form);
  await act($("#topup-card"), form.querySelector("button[type=submit]"), async () => {
    const credit = await admin("POST", `/admin/credits/${encodeURIComponent(account || "")}`, body);
    form.reset();
    $("#topup-result").textContent = `Recorded ${money(body.amount_usd)} for ${credit.account}: ` +
                                     `${money(credit.remaining_usd)} left of ${money(credit.allocated_usd)}.`;
    refresh();  // the credits card
  });
}

/** The top-up form offers the accounts the page has seen. */
function offerAccounts() {
  const list = $("#known-accounts");
  list.replaceChildren(...[...state.seen.account].sort().map((account) => new Option(account)));
}

function wireManage() {
  $("#actor").value = localStorage.getItem(ACTOR_STORE) || "";
  $("#actor").addEventListener("change", (event) => localStorage.setItem(ACTOR_STORE, event.target.value.trim()));
  $("#key-form").addEventListener("submit", createKey);
  $("#copy-secret").addEventListener("click", copySecret);
  $("#forget-secret").addEventListener("click", forgetSecret);
  const budgetForm = $("#budget-form");
  budgetForm.elements.scope.replaceChildren(...BUDGET_SCOPES.map((scope) => new Option(scope)));
  budgetForm.elements.period.replaceChildren(...BUDGET_PERIODS.map((period) => new Option(period)));
  budgetForm.addEventListener("change", showBudgetFields);
  budgetForm.addEventListener("submit", saveBudget);
  $("#new-budget").addEventListener("click", () => editBudget(null));
  $("#cancel-budget").addEventListener("click", () => { budgetForm.hidden = true; manage.editing = null; });
  $("#topup-form").addEventListener("submit", recordTopUp);
  $("#topup-form").elements.account.addEventListener("focus", offerAccounts);
}

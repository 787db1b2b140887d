// Switchboard's web console: a single page over the JSON API of this origin.
//
// Safety rules every screen follows:
// - text from the API (customers' messages, names, provider messages) is
//   only ever put in the page as text (`textContent` through `h`), never as
//   markup; there is no `innerHTML` in this file;
// - links from the API (attachments) are shown only when they are http(s);
// - the key lives in sessionStorage: it goes out as a bearer header (so it
//   must be readable by this script anyway), dies with the tab, and, being
//   no cookie, is never sent by the browser on its own (no CSRF).

const KEY_SLOT = "switchboard.key";
const POLL_MS = 3000;
const SMS_LIMIT = 1600;

// ---------------------------------------------------------------- helpers

/** Builds an element; strings become text nodes, `on*` attributes listeners. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** Appends a node, a string, or (nested) arrays of them. */
function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function countdown(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = String(Math.floor(s / 3600)).padStart(2, "0");
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${hh}:${mm}:${ss}`;
}

let uniqueId = 0;
/** A labelled field: the label, the control and a slot for its error. */
function field(label, control, hint) {
  if (!control.id) control.id = `f${++uniqueId}`;
  const error = h("p", { class: "field-error", id: `${control.id}-error`, role: "alert" });
  const help = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", help ? `${help.id} ${error.id}` : error.id);
  return h(
    "div",
    { class: "field", "data-field": control.name || "" },
    h("label", { for: control.id }, label),
    control,
    help,
    error,
  );
}

/** Links an error slot to the control it is about (`aria-describedby`). */
function describedBy(control, id) {
  const ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
  if (!ids.includes(id)) control.setAttribute("aria-describedby", [...ids, id].join(" "));
}

/**
 * Says `text` in the page's polite live region (#announcer): new messages,
 * saved forms. Cleared first, so the same words said twice are said again.
 */
function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

function copyButton(text, what, label = "Copy") {
  return h(
    "button",
    {
      type: "button",
      class: "small",
      "aria-label": what ? `${label} ${what}` : null,
      onclick: async (event) => {
        const button = event.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = "Copied";
          announce("Copied");
        } catch {
          button.textContent = "Select and copy";
        }
        setTimeout(() => (button.textContent = label), 1500);
      },
    },
    label,
  );
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.field = error.field || null;
    this.requestId = error.request_id || null;
  }
}

const session = {
  key: sessionStorage.getItem(KEY_SLOT),
  role: null,
  agentId: null,
  agent: null,
  org: null,
};

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { error: { code: "network", message: "the server cannot be reached" } });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    if (response.status === 401 && session.role) signOut("Your key is no longer valid: sign in again.");
    throw new ApiError(response.status, json);
  }
  return json;
}

/** Every page of a list (the API gives 200 at most at a time). */
async function listAll(path) {
  const items = [];
  let cursor = null;
  const sep = path.includes("?") ? "&" : "?";
  do {
    const page = await api("GET", `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/**
 * Shows an API error on a form: next to the field it names (the API's
 * `field`, matched against the controls' `name`), else at the form's top.
 */
function showError(form, error) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
  const control = error.field && form.querySelector(`[name="${CSS.escape(error.field)}"]`);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const slot = document.getElementById(`${control.id}-error`);
    if (slot) {
      slot.textContent = error.message;
      describedBy(control, slot.id);
    }
    control.focus();
    return;
  }
  let slot = form.querySelector(".form-error");
  if (!slot) {
    slot = h("p", { class: "form-error", role: "alert" });
    form.prepend(slot);
  }
  slot.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const bad of form.querySelectorAll("[aria-invalid]")) bad.removeAttribute("aria-invalid");
}

// ---------------------------------------------------------------- sign-in

/**
 * What a key may do, from `GET /api/keys/me`; the organisation and, for an
 * agent key, its agent give the header its names.
 */
async function learnRole() {
  const me = await api("GET", "/api/keys/me");
  session.org = await api("GET", `/api/orgs/${me.org_id}`);
  if (me.role === "agent") {
    session.agentId = me.agent_id;
    session.agent = await api("GET", `/api/agents/${me.agent_id}`);
  }
  session.role = me.role;
}

function signOut(message) {
  sessionStorage.removeItem(KEY_SLOT);
  session.key = null;
  session.role = null;
  session.agentId = null;
  session.agent = null;
  session.org = null;
  inboxState.seen.clear();
  inboxState.unread.clear();
  inboxState.announced.clear();
  inboxState.primed = false;
  stopPolling();
  document.title = "Switchboard";
  location.hash = "#/";
  renderSignIn(message);
}

function renderSignIn(message) {
  renderChrome();
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const form = h(
    "form",
    { class: "card signin", novalidate: true },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste the API key your administrator gave you. It is kept for this tab only."),
    message ? h("p", { class: "form-error", role: "alert" }, message) : null,
    field("API key", input),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const key = input.value.trim();
    if (!key) return showError(form, { field: "key", message: "Paste your API key." });
    session.key = key;
    try {
      await learnRole();
    } catch (error) {
      session.key = null;
      session.role = null;
      return showError(form, {
        field: "key",
        message: error.status === 401 ? "This key is not valid (mistyped or revoked)." : error.message,
      });
    }
    sessionStorage.setItem(KEY_SLOT, key);
    if (location.hash === home()) route();
    else location.hash = home();
  });
  setMain(form);
  input.focus();
}

function home() {
  return session.role === "flow" ? "#/admin/outbound-configs" : "#/inbox";
}

// ---------------------------------------------------------------- chrome

const NAV = [
  { hash: "#/inbox", label: "Inbox", roles: ["admin", "agent"] },
  { hash: "#/admin/accounts", label: "Accounts", roles: ["admin"] },
  { hash: "#/admin/queues", label: "Queues", roles: ["admin"] },
  { hash: "#/admin/agents", label: "Agents", roles: ["admin"] },
  { hash: "#/admin/workstreams", label: "Workstreams", roles: ["admin"] },
  { hash: "#/admin/templates", label: "Templates", roles: ["admin"] },
  { hash: "#/admin/outbound-configs", label: "Outbound", roles: ["admin", "flow"] },
  { hash: "#/admin/keys", label: "API keys", roles: ["admin"] },
  { hash: "#/admin/jobs", label: "Jobs", roles: ["admin", "flow"] },
  { hash: "#/contacts", label: "Contacts", roles: ["admin", "agent"] },
];

function renderChrome() {
  const nav = clear(document.getElementById("nav"));
  const who = clear(document.getElementById("who"));
  if (!session.role) return;
  const current = location.hash;
  for (const item of NAV.filter((i) => i.roles.includes(session.role))) {
    const active = current === item.hash || current.startsWith(item.hash + "/") || current.startsWith(item.hash + "?");
    nav.append(h("a", { href: item.hash, "aria-current": active ? "page" : null }, item.label));
  }
  const name = session.role === "agent" && session.agent ? session.agent.name : session.role;
  append(who, [
    h("span", { class: "org" }, session.org ? session.org.name : ""),
    h("span", { class: `role role-${session.role}` }, name),
    h("button", { type: "button", class: "small", onclick: () => signOut() }, "Sign out"),
  ]);
}

function setMain(...children) {
  const main = clear(document.getElementById("main"));
  append(main, children);
  focusHeading();
}

// Set by a screen change (hash route): the new screen's main heading takes
// focus once it is drawn, so keyboard and screen-reader users land on the
// new content. A repaint of the same screen (the inbox's refresh, a save)
// leaves focus where it is.
let headingPending = false;
function focusHeading() {
  if (!headingPending) return;
  const main = document.getElementById("main");
  const heading = main.querySelector("h1, h2");
  if (!heading) return;
  heading.setAttribute("tabindex", "-1");
  heading.focus();
  // A screen still loading draws its heading again when it is done.
  if (!main.querySelector('.state[role="status"]')) headingPending = false;
}

// Set by a delete from a table, before the screen is drawn again: then the
// focus goes to the delete button of the row now at `index` (the next
// row), else the previous row's, else the screen's main action, as after
// removing a form row; never to <body>.
let deletedRow = null;

/** Remembers where the deleted row of `event`'s table was. */
function rememberDeletedRow(event) {
  const row = event.target.closest("tr");
  deletedRow = { screen: location.hash, index: row ? row.sectionRowIndex : 0 };
}

/** Puts the focus where a delete left off (see `deletedRow`). */
function focusAfterDelete(fallback) {
  const deleted = deletedRow;
  deletedRow = null;
  if (!deleted || deleted.screen !== location.hash) return;
  const buttons = [...document.querySelectorAll("main tbody tr")].map((row) => row.querySelector("button.danger")).filter(Boolean);
  const target = buttons[Math.min(deleted.index, buttons.length - 1)] || fallback;
  if (target) target.focus();
}

function loading(label = "Loading…") {
  return h("p", { class: "state", role: "status" }, label);
}

function failure(error) {
  return h("p", { class: "state error", role: "alert" }, `Could not load: ${error.message}`);
}

// ---------------------------------------------------------------- router

const screens = [
  [/^#\/inbox(?:\/([0-9a-f]+))?$/, ["admin", "agent"], (m) => inbox(m[1])],
  [/^#\/admin\/accounts$/, ["admin"], () => accountsScreen()],
  [/^#\/admin\/accounts\/(new-[a-z]+|[0-9a-f]+)$/, ["admin"], (m) => accountScreen(m[1])],
  [/^#\/admin\/queues$/, ["admin"], () => queuesScreen()],
  [/^#\/admin\/agents$/, ["admin"], () => agentsScreen()],
  [/^#\/admin\/workstreams$/, ["admin"], () => workstreamsScreen()],
  [/^#\/admin\/templates(?:\/(new|[0-9a-f]+))?$/, ["admin"], (m) => templatesScreen(m[1])],
  [/^#\/admin\/outbound-configs$/, ["admin", "flow"], () => outboundScreen()],
  [/^#\/admin\/keys$/, ["admin"], () => keysScreen()],
  [/^#\/admin\/jobs(?:\/([0-9a-f]+))?$/, ["admin", "flow"], (m) => jobsScreen(m[1])],
  [/^#\/contacts(?:\/([0-9a-f]+))?$/, ["admin", "agent"], (m) => contactsScreen(m[1])],
  [/^#\/contacts\?q=(.*)$/, ["admin", "agent"], (m) => contactsScreen(null, decodedQuery(m[1]))],
];

function route() {
  if (!session.role) return;
  stopPolling();
  renderChrome();
  const hash = location.hash && location.hash !== "#/" ? location.hash : home();
  for (const [pattern, roles, show] of screens) {
    const match = hash.match(pattern);
    if (!match) continue;
    if (!roles.includes(session.role)) {
      setMain(
        h(
          "section",
          { class: "card forbidden", role: "alert" },
          h("h1", {}, "Not available"),
          h("p", {}, `This screen is for ${roles.join(" and ")} keys; you are signed in with a ${session.role} key.`),
          h("a", { href: home() }, "Back"),
        ),
      );
      return;
    }
    show(match);
    return;
  }
  setMain(h("section", { class: "card" }, h("h1", {}, "Not found"), h("a", { href: home() }, "Back")));
}

let pollTimer = null;
let tickTimer = null;
// Bumped by every screen change: a poll of a screen left behind stops.
let generation = 0;
function stopPolling() {
  generation += 1;
  clearTimeout(pollTimer);
  clearInterval(tickTimer);
  pollTimer = null;
  tickTimer = null;
}

// ---------------------------------------------------------------- inbox

const inboxState = {
  seen: new Map(), // conversation id -> last_customer_message_at the agent has seen
  unread: new Set(),
  announced: new Map(), // conversation id -> the last_customer_message_at said aloud
  primed: false,
  queues: null,
  agents: null,
};

function updateTitle() {
  const n = inboxState.unread.size;
  document.title = n ? `(${n}) New message${n > 1 ? "s" : ""} · Switchboard` : "Switchboard";
}

async function loadDirectory() {
  if (!inboxState.queues) inboxState.queues = await listAll("/api/queues");
  if (!inboxState.agents) inboxState.agents = await listAll("/api/agents");
}

async function inbox(openId) {
  // Names of queues and agents, read again on each visit to the inbox.
  inboxState.queues = null;
  inboxState.agents = null;
  const layout = h("div", { class: `inbox${openId ? " has-open" : ""}` });
  const list = h("section", { class: "inbox-list", "aria-label": "Conversations" });
  const pane = h("section", { class: "inbox-pane", "aria-label": "Conversation" });
  append(layout, [list, pane]);
  setMain(layout);
  append(list, loading());
  append(pane, openId ? loading() : h("p", { class: "state" }, "Pick a conversation."));

  let view = null;
  const mine = generation;
  const refresh = async () => {
    if (mine !== generation) return;
    try {
      await learnClock();
      await refreshList(list, openId);
      if (headingPending) {
        focusHeading();
        headingPending = false;
      }
      if (openId) {
        if (!view) view = await conversationView(pane, openId);
        else await view.refresh();
      }
    } catch (error) {
      if (!list.querySelector(".conv")) append(clear(list), failure(error));
    }
    if (mine === generation) pollTimer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
}

async function presenceSwitch() {
  if (session.role !== "agent") return null;
  const select = h(
    "select",
    { name: "presence", id: "presence" },
    ["available", "busy", "away", "offline"].map((p) =>
      h("option", { value: p, selected: session.agent && session.agent.presence === p }, p),
    ),
  );
  const status = h("span", { class: "hint", role: "status" });
  select.addEventListener("change", async () => {
    status.textContent = "Saving…";
    try {
      session.agent = await api("POST", `/api/agents/${session.agentId}/presence`, { presence: select.value });
      status.textContent = "";
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return h("div", { class: "presence" }, h("label", { for: "presence" }, "Presence"), select, status);
}

async function refreshList(list, openId) {
  let groups;
  if (session.role === "agent") {
    if (!session.agent) session.agent = await api("GET", `/api/agents/${session.agentId}`);
    const mine = await listAll("/api/conversations?agent=me");
    const waiting = [];
    for (const queue of session.agent.queues || []) {
      waiting.push(...(await listAll(`/api/conversations?queue=${queue}&state=open`)));
    }
    groups = [
      ["Mine", mine.filter((c) => c.state !== "closed")],
      ["Waiting in my queues", waiting],
      ["Closed", mine.filter((c) => c.state === "closed")],
    ];
  } else {
    groups = [
      ["Open", await listAll("/api/conversations?state=open")],
      ["Active", await listAll("/api/conversations?state=active")],
      ["Waiting", await listAll("/api/conversations?state=waiting")],
    ];
  }
  const arrived = [];
  for (const [, items] of groups) {
    for (const c of items) {
      const last = c.last_customer_message_at || c.created_at;
      const seen = inboxState.seen.get(c.id);
      if (c.id === openId) inboxState.seen.set(c.id, last);
      else if (seen === undefined && !inboxState.primed) inboxState.seen.set(c.id, last);
      else if (seen !== last) {
        if (!inboxState.unread.has(c.id) || inboxState.announced.get(c.id) !== last) arrived.push(c);
        inboxState.announced.set(c.id, last);
        inboxState.unread.add(c.id);
      }
    }
  }
  if (arrived.length === 1) announce(`New message from ${arrived[0].profile_name || arrived[0].customer_address}.`);
  else if (arrived.length > 1) announce(`${arrived.length} new messages.`);
  inboxState.primed = true;
  if (openId) inboxState.unread.delete(openId);
  updateTitle();

  const keepPresence = list.querySelector(".presence");
  const headingHadFocus = document.activeElement && document.activeElement.matches(".inbox-list > h1");
  clear(list);
  append(list, keepPresence || (await presenceSwitch()));
  const total = inboxState.unread.size;
  const heading = h("h1", { tabindex: "-1" }, "Inbox ", total ? h("span", { class: "badge", "aria-label": `${total} new` }, String(total)) : null);
  append(list, heading);
  if (headingHadFocus) heading.focus();
  for (const [title, items] of groups) {
    if (title === "Closed" && items.length === 0) continue;
    list.append(h("h2", {}, `${title} (${items.length})`));
    if (items.length === 0) {
      list.append(h("p", { class: "empty" }, "Nothing here."));
      continue;
    }
    const ul = h("ul", { class: "convs" });
    for (const c of items) {
      const unread = inboxState.unread.has(c.id);
      ul.append(
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `#/inbox/${c.id}`,
              class: `conv${c.id === openId ? " current" : ""}${unread ? " unread" : ""}`,
              "data-id": c.id,
              "aria-current": c.id === openId ? "true" : null,
            },
            h("span", { class: "who" }, c.profile_name || c.customer_address),
            h("span", { class: "meta" }, `${c.channel} · ${c.state} · ${when(c.last_customer_message_at || c.created_at)}`),
            unread ? h("span", { class: "badge", "aria-label": "new message" }, "new") : null,
          ),
        ),
      );
    }
    list.append(ul);
  }
}

/** The open conversation: header, actions, messages and the reply box. */
async function conversationView(pane, id) {
  await loadDirectory();
  let conv = await fetchConversation(id);
  clear(pane);
  const header = h("header", { class: "conv-head" });
  const actions = h("div", { class: "actions" });
  // Not a live region: the thread is repainted on every poll. What is new
  // in it is said through the announcer instead.
  const thread = h("ol", { class: "thread", "aria-label": "Messages" });
  const composer = h("div", { class: "composer" });
  append(pane, [
    h("a", { href: "#/inbox", class: "back" }, "← All conversations"),
    header,
    actions,
    thread,
    composer,
  ]);
  let lastShape = "";
  let heard = conv.messages.length;
  const paint = () => {
    const fresh = conv.messages.slice(heard).filter((m) => m.author === "customer");
    heard = conv.messages.length;
    if (fresh.length) announce(`${conv.profile_name || "Customer"}: ${fresh.map((m) => m.text || "(attachment)").join(" ")}`);
    renderHeader(header, conv);
    renderActions(actions, conv, async () => {
      conv = await fetchConversation(id);
      paint();
    });
    renderThread(thread, conv);
    // The composer keeps what the agent typed: rebuilt only when what it
    // offers changes.
    const shape = `${conv.state}|${windowOpen(conv)}|${conv.agent_id}`;
    if (shape !== lastShape) {
      lastShape = shape;
      renderComposer(composer, conv, async () => {
        conv = await fetchConversation(id);
        paint();
      });
    }
  };
  paint();
  clearInterval(tickTimer);
  tickTimer = setInterval(() => {
    const clock = pane.querySelector(".window-clock");
    if (clock) clock.textContent = windowLabel(conv);
    if (`${conv.state}|${windowOpen(conv)}|${conv.agent_id}` !== lastShape) paint();
  }, 1000);
  return {
    refresh: async () => {
      conv = await fetchConversation(id);
      paint();
    },
  };
}

async function fetchConversation(id) {
  const conv = await api("GET", `/api/conversations/${id}?limit=200`);
  let cursor = conv.messages_next_cursor;
  while (cursor) {
    const page = await api("GET", `/api/conversations/${id}?limit=200&cursor=${encodeURIComponent(cursor)}`);
    conv.messages.push(...page.messages);
    cursor = page.messages_next_cursor;
  }
  return conv;
}

function nameOf(list, id) {
  const found = (list || []).find((x) => x.id === id);
  return found ? found.name : id;
}

function fact(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function renderHeader(header, conv) {
  clear(header);
  append(header, [
    h("h1", {}, conv.profile_name || conv.customer_address),
    h(
      "dl",
      { class: "facts" },
      fact("Customer", conv.customer_address),
      fact("Channel", `${conv.channel} · ${conv.channel_address}`),
      fact("State", h("span", { class: `state-${conv.state}`, "data-state": conv.state }, conv.state)),
      fact("Queue", conv.queue_id ? nameOf(inboxState.queues, conv.queue_id) : "—"),
      fact("Agent", conv.agent_id ? nameOf(inboxState.agents, conv.agent_id) : "—"),
      fact("Contact", conv.contact_id ? h("a", { href: `#/contacts/${conv.contact_id}` }, "Timeline") : "—"),
    ),
  ]);
}

function renderActions(actions, conv, reload) {
  clear(actions);
  const status = h("p", { class: "form-error", role: "alert", id: `actions-error-${conv.id}` });
  const act = (label, path, body, cls) =>
    h(
      "button",
      {
        type: "button",
        class: cls,
        onclick: async () => {
          status.textContent = "";
          try {
            await api("POST", `/api/conversations/${conv.id}/${path}`, body || {});
            await reload();
          } catch (error) {
            status.textContent = error.message;
          }
        },
      },
      label,
    );
  if (conv.state === "open") {
    actions.append(session.role === "admin" ? assignForm(conv, reload, status) : act("Accept", "accept", {}, "primary"));
  }
  if (conv.state === "active") actions.append(act("Wait", "wait"), act("Close", "close"));
  if (conv.state === "waiting" || conv.state === "closed") actions.append(act("Resume", "resume", {}));
  if (conv.state === "active") actions.append(transferForm(conv, reload, status));
  if (conv.state !== "open") actions.append(linkForm(conv, reload, status));
  actions.append(status);
}

/** An admin accepts an open conversation on an agent's behalf. */
function assignForm(conv, reload, status) {
  const select = h(
    "select",
    { name: "agent_id", id: `assign-${conv.id}`, "aria-describedby": `actions-error-${conv.id}` },
    (inboxState.agents || []).map((a) => h("option", { value: a.id }, `${a.name} (${a.presence})`)),
  );
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: select.id, class: "sr-only" }, "Agent"),
    select,
    h("button", { type: "submit", class: "primary" }, "Assign"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    try {
      await api("POST", `/api/conversations/${conv.id}/accept`, { agent_id: select.value });
      await reload();
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return form;
}

function transferForm(conv, reload, status) {
  const select = h(
    "select",
    { name: "transfer", id: `transfer-${conv.id}`, "aria-describedby": `actions-error-${conv.id}` },
    h("option", { value: "" }, "Transfer to…"),
    h("optgroup", { label: "Queues" }, (inboxState.queues || []).map((q) => h("option", { value: `queue:${q.id}` }, q.name))),
    h(
      "optgroup",
      { label: "Agents" },
      (inboxState.agents || [])
        .filter((a) => a.id !== conv.agent_id)
        .map((a) => h("option", { value: `agent:${a.id}` }, `${a.name} (${a.presence})`)),
    ),
  );
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: select.id, class: "sr-only" }, "Transfer to"),
    select,
    h("button", { type: "submit" }, "Transfer"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    const [kind, target] = select.value.split(":");
    status.textContent = "";
    try {
      await api("POST", `/api/conversations/${conv.id}/transfer`, { [`${kind}_id`]: target });
      // An agent may no longer read what it handed on: back to the list.
      if (session.role === "agent") location.hash = "#/inbox";
      else await reload();
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return form;
}

function linkForm(conv, reload, status) {
  const input = h("input", { name: "contact_id", id: `link-${conv.id}`, placeholder: "contact id", size: 20, "aria-describedby": `actions-error-${conv.id}` });
  const form = h(
    "form",
    { class: "inline" },
    h("label", { for: input.id, class: "sr-only" }, "Link to contact"),
    input,
    h("button", { type: "submit" }, "Link contact"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    input.removeAttribute("aria-invalid");
    try {
      await api("POST", `/api/conversations/${conv.id}/link`, { contact_id: input.value.trim() });
      await reload();
      announce("Linked the contact.");
    } catch (error) {
      input.setAttribute("aria-invalid", "true");
      status.textContent = error.message;
    }
  });
  return form;
}

function renderThread(thread, conv) {
  const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40;
  clear(thread);
  if (conv.messages.length === 0) thread.append(h("li", { class: "empty" }, "No messages yet."));
  for (const m of conv.messages) {
    const author =
      m.author === "agent" ? (m.agent_id ? nameOf(inboxState.agents, m.agent_id) : "Agent") : m.author === "customer" ? conv.profile_name || "Customer" : m.author;
    const attachments = (m.attachments || []).map((a) => {
      const url = safeUrl(a.url);
      return url
        ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, `Attachment (${a.content_type || "file"})`)
        : h("span", {}, "Attachment");
    });
    thread.append(
      h(
        "li",
        { class: `msg msg-${m.author}`, "data-position": m.position },
        h("div", { class: "msg-meta" }, h("span", { class: "author" }, author), h("time", { datetime: m.at }, when(m.at))),
        h("p", { class: "text" }, m.text),
        attachments.length ? h("div", { class: "attachments" }, attachments) : null,
        m.attachments_refused
          ? h("p", { class: "refused" }, `${m.attachments_refused} attachment(s) refused: this channel does not accept customer attachments; the customer was told.`)
          : null,
        m.status
          ? h("span", { class: `status status-${m.status}`, "data-status": m.status }, m.status + (m.error_code ? ` (${m.error_code})` : ""))
          : null,
      ),
    );
  }
  if (atBottom) thread.scrollTop = thread.scrollHeight;
}

function windowOpen(conv) {
  return !conv.reply_window_closes_at || Date.parse(conv.reply_window_closes_at) > serverNow();
}

// The dev host's clock (and a real server's) may differ from the browser's:
// the answer's Date header tells how far off the browser is.
let clockSkew = 0;
function serverNow() {
  return Date.now() + clockSkew;
}

function windowLabel(conv) {
  if (!conv.reply_window_closes_at) return "";
  const left = Date.parse(conv.reply_window_closes_at) - serverNow();
  return left > 0
    ? `Reply window closes in ${countdown(left)}`
    : `The 24-hour reply window closed ${when(conv.reply_window_closes_at)}: only approved templates can be sent.`;
}

function renderComposer(composer, conv, reload) {
  clear(composer);
  const mayReply =
    conv.state === "active" && (session.role === "admin" || conv.agent_id === session.agentId);
  if (!mayReply) {
    composer.append(
      h("p", { class: "hint" }, conv.state === "open" ? "Accept the conversation to reply." : `The conversation is ${conv.state}.`),
    );
    return;
  }
  const open = windowOpen(conv);
  // Not a live region: the countdown changes every second.
  composer.append(h("p", { class: `window-clock${open ? "" : " closed"}` }, windowLabel(conv)));
  if (!open && composer.dataset.open === "true") announce(windowLabel(conv));
  composer.dataset.open = String(open);
  if (open) composer.append(freeFormReply(conv, reload));
  composer.append(templateReply(conv, reload, open));
}

function freeFormReply(conv, reload) {
  const text = h("textarea", { name: "text", rows: 3, maxlength: SMS_LIMIT, placeholder: "Write a reply…" });
  const counter = h("span", { class: "counter", "aria-live": "polite" }, `0 / ${SMS_LIMIT.toLocaleString("en")}`);
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  text.addEventListener("input", () => {
    counter.textContent = `${text.value.length.toLocaleString("en")} / ${SMS_LIMIT.toLocaleString("en")}`;
    counter.classList.toggle("over", text.value.length > SMS_LIMIT);
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  const form = h(
    "form",
    { class: "reply", novalidate: true },
    field(conv.channel === "sms" ? "Reply (SMS, 1,600 characters at most)" : "Reply", text),
    h("div", { class: "row" }, counter, send),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!text.value.trim()) return;
    send.disabled = true;
    try {
      await api("POST", `/api/conversations/${conv.id}/messages`, { text: text.value });
      text.value = "";
      text.dispatchEvent(new Event("input"));
      announce("Reply sent.");
      await reload();
    } catch (error) {
      showError(form, error);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

function templateReply(conv, reload, windowIsOpen) {
  const form = h("form", { class: `reply template-reply${windowIsOpen ? " secondary" : ""}`, novalidate: true });
  const select = h("select", { name: "template_id" }, h("option", { value: "" }, "Choose a template…"));
  const caseName = h("input", { name: "CaseName", autocomplete: "off" });
  const preview = h("p", { class: "preview", "aria-live": "polite" });
  const send = h("button", { type: "submit", class: windowIsOpen ? "" : "primary" }, "Send template");
  append(form, [
    h("h2", {}, windowIsOpen ? "Or send a template" : "Send an approved template"),
    field("Template", select),
    field("Case name", caseName, "Fills {{CaseName}} when the template has it."),
    h("div", { class: "field" }, h("span", { class: "label" }, "Preview"), preview),
    h("div", { class: "row" }, send),
  ]);
  // Read afresh each time: an admin may have approved one since.
  listAll("/api/templates").then((templates) => {
    const usable = templates.filter(
      (t) =>
        (t.channel_types || []).includes(conv.channel) &&
        (conv.channel !== "whatsapp" || Object.values(t.versions).some((v) => v.approved)),
    );
    for (const t of usable) select.append(h("option", { value: t.id }, t.name));
    if (usable.length === 0) preview.textContent = "No approved template fits this channel.";
  });
  const renderPreview = async () => {
    clearErrors(form);
    preview.textContent = "";
    if (!select.value) return;
    const body = { channel_type: conv.channel === "whatsapp" ? "whatsapp" : "sms" };
    if (conv.language) body.locale = conv.language;
    body.CustomerName = conv.profile_name || "Customer";
    if (caseName.value) body.CaseName = caseName.value;
    try {
      const rendered = await api("POST", `/api/templates/${select.value}/render`, body);
      preview.textContent = rendered.text;
    } catch (error) {
      if (error.code === "missing_placeholder") preview.textContent = `(${error.message})`;
      else showError(form, error);
    }
  };
  select.addEventListener("change", renderPreview);
  caseName.addEventListener("input", renderPreview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!select.value) return showError(form, { field: "template_id", message: "Choose a template." });
    const body = { template_id: select.value };
    if (caseName.value) body.CaseName = caseName.value;
    send.disabled = true;
    try {
      await api("POST", `/api/conversations/${conv.id}/messages`, body);
      announce("Template sent.");
      await reload();
    } catch (error) {
      showError(form, error);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

// ---------------------------------------------------------------- forms
//
// Admin forms are described by field specs and built by one engine. Each
// control's `name` is the API's own path for it (`numbers[0].number`,
// `routing_rules[1].conditions.keywords`), so an error's `field` finds the
// control it is about.

function parsePath(path) {
  return path
    .split(/\.|\[(\d+)\]/)
    .filter((part) => part !== undefined && part !== "")
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function setPath(target, path, value) {
  const parts = parsePath(path);
  let node = target;
  parts.forEach((part, i) => {
    if (i === parts.length - 1) {
      node[part] = value;
      return;
    }
    if (node[part] === undefined) node[part] = typeof parts[i + 1] === "number" ? [] : {};
    node = node[part];
  });
}

function getPath(source, path) {
  return parsePath(path).reduce((node, part) => (node == null ? undefined : node[part]), source);
}

/** The controls of `specs` under `prefix`, filled from `value`. */
function controls(specs, value, prefix, editing) {
  return specs.map((spec) => control(spec, value ? value[spec.key] : undefined, prefix + spec.key, editing));
}

function control(spec, value, path, editing) {
  const common = { name: path, "data-kind": spec.kind || "text", "data-top": path.includes(".") || path.includes("[") ? null : "1" };
  const options = typeof spec.options === "function" ? spec.options() : spec.options || [];
  switch (spec.kind) {
    case "rows":
      return rowsControl(spec, value || [], path, editing);
    case "group":
      return h("fieldset", {}, h("legend", {}, spec.label), controls(spec.fields, value || {}, `${path}.`, editing));
    case "checkbox": {
      const box = h("input", { ...common, type: "checkbox", checked: !!value });
      if (!box.id) box.id = `f${++uniqueId}`;
      const help = spec.hint ? h("p", { class: "hint", id: `${box.id}-hint` }, spec.hint) : null;
      box.setAttribute("aria-describedby", help ? `${help.id} ${box.id}-error` : `${box.id}-error`);
      return h("div", { class: "field check" }, h("label", { for: box.id }, box, " ", spec.label), help, h("p", { class: "field-error", id: `${box.id}-error`, role: "alert" }));
    }
    case "checks": {
      const chosen = new Set(value || []);
      const group = h(
        "fieldset",
        { class: "checks" },
        h("legend", {}, spec.label),
        options.map(([v, label]) => h("label", {}, h("input", { type: "checkbox", name: path, "data-kind": "checks", value: v, checked: chosen.has(v) }), " ", label)),
      );
      const anchor = group.querySelector("input");
      if (anchor) {
        anchor.id = `f${++uniqueId}`;
        group.append(h("p", { class: "field-error", id: `${anchor.id}-error`, role: "alert" }));
        group.setAttribute("aria-describedby", `${anchor.id}-error`);
        for (const box of group.querySelectorAll("input")) box.setAttribute("aria-describedby", `${anchor.id}-error`);
      }
      return group;
    }
    case "select":
      return field(
        spec.label,
        h(
          "select",
          common,
          spec.required ? null : h("option", { value: "" }, spec.placeholder || "—"),
          options.map(([v, label]) => h("option", { value: v, selected: value === v }, label)),
        ),
        spec.hint,
      );
    case "secret":
      // `data-masked` remembers the masked value read back, so a list
      // repainted after an add or a remove still shows the secret is kept.
      return field(
        spec.label,
        h("input", {
          ...common,
          type: "password",
          autocomplete: "new-password",
          "data-masked": editing && value ? value : null,
          placeholder: editing && value ? `${value} (kept unless you type a new one)` : "",
        }),
        spec.hint || "Write-only: it is never shown again.",
      );
    case "json":
    case "textarea":
      return field(spec.label, h("textarea", { ...common, rows: spec.rows || 4, value: value === undefined ? "" : value }), spec.hint);
    case "csv":
      return field(spec.label, h("input", { ...common, value: (value || []).join(", ") }), spec.hint || "Separate with commas.");
    case "number":
      return field(spec.label, h("input", { ...common, type: "number", min: spec.min, max: spec.max, value: value ?? "" }), spec.hint);
    default: {
      const input = h("input", { ...common, value: value ?? "", placeholder: spec.placeholder, autocomplete: "off" });
      if (!spec.suggest) return field(spec.label, input, spec.hint);
      // Suggestions that depend on the rest of the form, worked out when
      // the field is entered; typing anything else stays possible.
      const list = h("datalist", { id: `f${++uniqueId}` });
      input.setAttribute("list", list.id);
      const refresh = () => {
        clear(list);
        for (const [v, label] of spec.suggest(input)) list.append(h("option", { value: v }, label));
      };
      input.addEventListener("focus", refresh);
      input.addEventListener("input", refresh);
      const wrapper = field(spec.label, input, spec.hint);
      wrapper.append(list);
      return wrapper;
    }
  }
}

function rowsControl(spec, rows, path, editing) {
  // The list's own name and error slot: an error about the list as a whole
  // (`sms_numbers`: a number on both channels) is shown here.
  const box = h("fieldset", { class: "rows", "data-rows": path, name: path, id: `f${++uniqueId}` }, h("legend", {}, spec.label));
  box.append(h("p", { class: "field-error", id: `${box.id}-error`, role: "alert" }));
  box.setAttribute("aria-describedby", `${box.id}-error`);
  // `focusAfter`: the index of a removed row; focus goes to the next row's
  // remove button, else the previous one's, else the list's add button.
  const paint = (values, focusAfter = null) => {
    for (const old of box.querySelectorAll(":scope > .row-item, :scope > .row-add")) old.remove();
    values.forEach((row, i) => {
      box.append(
        h(
          "div",
          { class: "row-item" },
          h("div", { class: "grid2" }, controls(spec.fields, row, `${path}[${i}].`, editing)),
          h(
            "button",
            {
              type: "button",
              class: "small danger",
              "aria-label": `Remove ${spec.item} ${i + 1}`,
              onclick: () => {
                const current = collectRows(box, path);
                current.splice(i, 1);
                paint(current, i);
              },
            },
            `Remove ${spec.item}`,
          ),
        ),
      );
    });
    box.append(
      h("button", { type: "button", class: "small row-add", onclick: () => paint([...collectRows(box, path), {}]) }, `Add ${spec.item}`),
    );
    if (focusAfter !== null) {
      const removes = box.querySelectorAll(":scope > .row-item > button.danger");
      const target = removes[Math.min(focusAfter, removes.length - 1)] || box.querySelector(":scope > .row-add");
      target.focus();
      announce(`Removed ${spec.item} ${focusAfter + 1}.`);
    }
  };
  paint(rows);
  return box;
}

function collectRows(box, path) {
  const value = collect(box, false, true);
  return getPath(value, path) || [];
}

/**
 * The JSON body a form's controls describe. An untouched secret is left
 * out (the API keeps what it holds); `keepMasked` puts its masked value in
 * instead, for repainting a list, never for sending.
 */
function collect(form, editing, keepMasked = false) {
  const body = {};
  for (const rows of form.querySelectorAll("[data-rows]")) setPath(body, rows.dataset.rows, []);
  for (const el of form.querySelectorAll("[name][data-kind]")) {
    const kind = el.dataset.kind;
    const path = el.name;
    const top = el.dataset.top === "1";
    const raw = el.value.trim();
    switch (kind) {
      case "checkbox":
        setPath(body, path, el.checked);
        break;
      case "checks": {
        const list = getPath(body, path) || [];
        if (el.checked) list.push(el.value);
        setPath(body, path, list);
        break;
      }
      case "csv":
        if (raw || top) setPath(body, path, raw.split(",").map((x) => x.trim()).filter(Boolean));
        break;
      case "number":
        if (raw) setPath(body, path, Number(raw));
        break;
      case "secret":
        if (raw) setPath(body, path, raw);
        else if (keepMasked && el.dataset.masked) setPath(body, path, el.dataset.masked);
        break;
      case "json":
        if (raw) {
          try {
            setPath(body, path, JSON.parse(raw));
          } catch {
            setPath(body, path, raw);
          }
        }
        break;
      default:
        if (raw) setPath(body, path, raw);
        else if (top && editing) setPath(body, path, null);
    }
  }
  // A row the user added and left empty is kept, as `{}`: a repainted list
  // still shows it, and the API's error about what it lacks has its
  // controls to be shown next to.
  const lists = [form, ...form.querySelectorAll("[data-rows]")].filter((el) => el.dataset.rows);
  for (const list of lists) {
    const rows = getPath(body, list.dataset.rows) || [];
    list.querySelectorAll(":scope > .row-item").forEach((_, i) => (rows[i] = rows[i] || {}));
    setPath(body, list.dataset.rows, rows);
  }
  return body;
}

/** A form for `specs`; `save(body)` is called with what it describes. */
function specForm(specs, value, { editing, submit, save, extra, saved = "Saved." }) {
  const form = h("form", { class: "card stack", novalidate: true }, extra, controls(specs, value, "", editing));
  const button = h("button", { type: "submit", class: "primary" }, submit);
  form.append(h("div", { class: "row" }, button));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      await save(collect(form, editing));
      if (saved) announce(saved);
    } catch (error) {
      showError(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function pageHead(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, title), h("div", { class: "row" }, actions));
}

function table(columns, rows, empty) {
  if (rows.length === 0) return h("p", { class: "empty card" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))),
    ),
  );
}

function copyable(label, text) {
  return h("div", { class: "field" }, h("span", { class: "label" }, label), h("div", { class: "copyable" }, h("code", {}, text), copyButton(text, label)));
}

const dir = {};
async function loadAll(...names) {
  const paths = { queues: "/api/queues", agents: "/api/agents", accounts: "/api/accounts", templates: "/api/templates" };
  await Promise.all(names.map(async (name) => (dir[name] = await listAll(paths[name]))));
}
const opts = (name, label = (x) => x.name) => () => (dir[name] || []).map((x) => [x.id, label(x)]);
const choices = (...values) => values.map((v) => [v, v]);

/**
 * A collection screen: a table of the items, and a form to create one or
 * edit the one picked.
 */
async function collectionScreen({ title, path, specs, columns, needs = [], noun, afterSave, search }) {
  const finder = search ? searchForm(search) : null;
  const query = search && search.query;
  setMain(pageHead(title), finder, loading(query ? `Searching for “${query}”…` : undefined));
  let items;
  try {
    await loadAll(...needs);
    items = await listAll(query ? `${path}?q=${encodeURIComponent(query)}` : path);
  } catch (error) {
    if (finder && error.field === "q") {
      setMain(pageHead(title), finder);
      return showError(finder, error);
    }
    return setMain(pageHead(title), finder, failure(error));
  }
  if (query) announce(`${items.length} ${noun}${items.length === 1 ? "" : "s"} found.`);
  const formSlot = h("div", { class: "form-slot" });
  const showForm = (item) => {
    clear(formSlot);
    formSlot.append(
      h("h2", {}, item ? `Edit ${item.name}` : `New ${noun}`),
      specForm(specs, item, {
        editing: !!item,
        submit: item ? "Save" : `Create ${noun}`,
        saved: item ? `Saved ${item.name}.` : `Created the ${noun}.`,
        save: async (body) => {
          const saved = item ? await api("PATCH", `${path}/${item.id}`, body) : await api("POST", path, body);
          if (afterSave) afterSave(saved);
          else route();
        },
      }),
    );
    formSlot.querySelector("input, select, textarea").focus();
  };
  const rowActions = (item) =>
    h(
      "div",
      { class: "row" },
      h("button", { type: "button", class: "small", "aria-label": `Edit ${item.name}`, onclick: () => showForm(item) }, "Edit"),
      h(
        "button",
        {
          type: "button",
          class: "small danger",
          "aria-label": `Delete ${item.name}`,
          onclick: async (event) => {
            if (!confirm(`Delete ${item.name}?`)) return;
            try {
              await api("DELETE", `${path}/${item.id}`);
              announce(`Deleted ${item.name}.`);
              rememberDeletedRow(event);
              route();
            } catch (error) {
              event.target.parentElement.append(h("p", { class: "form-error", role: "alert" }, error.message));
            }
          },
        },
        "Delete",
      ),
    );
  const add = h("button", { type: "button", class: "primary", onclick: () => showForm(null) }, `New ${noun}`);
  const empty = query ? `No ${noun}s match “${query}”.` : `No ${noun}s yet.`;
  setMain(pageHead(title, add), finder, table([...columns, ["", rowActions]], items, empty), formSlot);
  focusAfterDelete(add);
}

// ---------------------------------------------------------------- accounts

const PROVIDERS = {
  twilio: {
    label: "WhatsApp and SMS (Twilio)",
    specs: [
      { key: "account_sid", label: "Account SID", placeholder: "AC…", hint: "From the Twilio console: AC and 32 hex characters." },
      { key: "auth_token", label: "Auth token", kind: "secret" },
      { key: "numbers", label: "WhatsApp numbers", kind: "rows", item: "number", fields: [
        { key: "name", label: "Name" },
        { key: "number", label: "Number", placeholder: "+14155238886", hint: "E.164, with its +." },
      ] },
      { key: "sms_numbers", label: "SMS numbers", kind: "rows", item: "SMS number", fields: [
        { key: "name", label: "Name" },
        { key: "number", label: "Number", placeholder: "+14155550100", hint: "E.164, with its +. Not also a WhatsApp number of this account." },
      ] },
      { key: "shared_keys", label: "Shared keys (Twilio may sign webhooks with one instead of the auth token)", kind: "rows", item: "shared key", fields: [
        { key: "id", label: "Key ID", placeholder: "SK…", hint: "As Twilio shows it." },
        { key: "secret", label: "Secret", kind: "secret" },
      ] },
    ],
  },
  telesign: {
    label: "SMS (TeleSign)",
    specs: [
      { key: "customer_id", label: "Customer ID", placeholder: "FFFFFFFF-EEEE-DDDD-1234-AB1234567890" },
      { key: "api_key", label: "API key", kind: "secret", hint: "Base64, as TeleSign shows it. Write-only." },
      { key: "numbers", label: "Phone numbers", kind: "rows", item: "number", fields: [
        { key: "number", label: "Number", placeholder: "14252306549", hint: "Digits only, country code first, no +." },
        { key: "type", label: "Type", kind: "select", required: true, options: choices("long_code", "short_code", "toll_free") },
        { key: "description", label: "Description" },
      ] },
    ],
  },
  facebook: {
    label: "Facebook Messenger",
    specs: [
      { key: "app_id", label: "App ID" },
      { key: "app_secret", label: "App secret", kind: "secret" },
      { key: "pages", label: "Pages", kind: "rows", item: "page", fields: [
        { key: "name", label: "Name" },
        { key: "page_id", label: "Page ID" },
        { key: "access_token", label: "Page access token", kind: "secret", hint: "The page's own token; Facebook confirms it on save." },
      ] },
    ],
  },
  gbm: {
    label: "Google's Business Messages",
    specs: [
      { key: "partner_id", label: "Partner ID" },
      { key: "client_token", label: "Client token", kind: "secret" },
      { key: "service_account", label: "Service account key (JSON)", kind: "json", rows: 5, hint: "Paste the key file's JSON. Write-only." },
      { key: "brand_id", label: "Brand ID" },
      { key: "agent_id", label: "Agent ID" },
    ],
  },
};

async function accountsScreen() {
  setMain(pageHead("Accounts"), loading());
  let accounts;
  try {
    accounts = await listAll("/api/accounts");
  } catch (error) {
    return setMain(pageHead("Accounts"), failure(error));
  }
  const byProvider = Object.entries(PROVIDERS).map(([provider, { label }]) => {
    const mine = accounts.filter((a) => a.provider === provider);
    return h(
      "section",
      { class: "stack" },
      h("div", { class: "page-head" }, h("h2", {}, label), h("a", { href: `#/admin/accounts/new-${provider}`, class: "button" }, "New account")),
      table(
        [
          ["Name", (a) => h("a", { href: `#/admin/accounts/${a.id}` }, a.name)],
          ["Numbers / pages", (a) => [...(a.numbers || a.pages || []), ...(a.sms_numbers || [])].map((n) => n.number || n.page_id || "").join(", ") || a.agent_id || "—"],
          ["Validation", (a) => validationPill(a.last_validation)],
          ["Warnings", (a) => (a.warnings && a.warnings.length ? `${a.warnings.length}` : "—")],
        ],
        mine,
        `No ${label} account yet.`,
      ),
    );
  });
  setMain(pageHead("Accounts"), byProvider);
}

function validationPill(validation) {
  if (!validation) return h("span", { class: "pill" }, "not checked");
  return h("span", { class: `pill ${validation.status}`, "data-validation": validation.status }, validation.status);
}

async function accountScreen(which) {
  const creating = which.startsWith("new-");
  let account = null;
  let provider = creating ? which.slice(4) : null;
  if (!creating) {
    setMain(loading());
    try {
      account = await api("GET", `/api/accounts/${which}`);
    } catch (error) {
      return setMain(failure(error));
    }
    provider = account.provider;
  }
  const kind = PROVIDERS[provider];
  if (!kind) return setMain(h("p", { class: "state" }, "Unknown provider."));
  const specs = [{ key: "name", label: "Account name" }, ...kind.specs];
  const form = specForm(specs, account, {
    editing: !creating,
    submit: creating ? "Create account" : "Save",
    saved: creating ? "Created the account." : "Saved the account.",
    save: async (body) => {
      if (creating) {
        const saved = await api("POST", "/api/accounts", { provider, ...body });
        location.hash = `#/admin/accounts/${saved.id}`;
      } else {
        await api("PATCH", `/api/accounts/${account.id}`, body);
        route();
      }
    },
  });
  const side = h("aside", { class: "stack" });
  if (account) {
    let warnings = account.warnings || [];
    try {
      const all = await api("GET", "/api/warnings");
      warnings = all.warnings.filter((w) => w.account_id === account.id);
    } catch {
      // The account's own warnings are shown.
    }
    for (const warning of warnings) side.append(h("p", { class: "warning", role: "status" }, warning.message || String(warning)));
    if (account.callback_url) side.append(copyable("Callback URL (give it to the provider)", account.callback_url));
    for (const page of account.pages || []) {
      if (page.callback_url) {
        side.append(
          h("h3", {}, `Page ${page.name || page.page_id}`),
          copyable("Callback URL", page.callback_url),
          copyable("Verify token", page.verify_token),
        );
      } else if (page.callback_withheld) {
        side.append(h("p", { class: "warning" }, `Page ${page.page_id}: ${page.callback_withheld}`));
      }
    }
    const result = h("div", { class: "validation", role: "status" });
    const showValidation = (v) => {
      clear(result);
      if (!v) return;
      append(result, [
        validationPill(v),
        " ",
        v.provider_status ? `${v.provider_status} ` : "",
        v.message || "",
        v.checked_at ? h("p", { class: "hint" }, `Checked ${when(v.checked_at)}`) : null,
        (v.pages || []).map((p) => h("p", { class: "hint" }, `Page ${p.page_id}: ${p.status}${p.message ? ` (${p.message})` : ""}`)),
      ]);
    };
    showValidation(account.last_validation);
    const validate = h(
      "button",
      {
        type: "button",
        onclick: async () => {
          validate.disabled = true;
          clear(result).append("Asking the provider…");
          try {
            showValidation(await api("POST", `/api/accounts/${account.id}/validate`));
          } catch (error) {
            clear(result).append(h("span", { class: "form-error" }, error.message));
          } finally {
            validate.disabled = false;
          }
        },
      },
      "Validate",
    );
    side.append(h("div", { class: "field" }, h("span", { class: "label" }, "Credentials"), h("div", { class: "row start" }, validate), result));
  }
  setMain(
    pageHead(creating ? `New ${kind.label} account` : account.name, h("a", { href: "#/admin/accounts" }, "All accounts")),
    h("div", { class: "split" }, form, side),
  );
}

// ---------------------------------------------------------------- the rest of the admin centre

function queuesScreen() {
  return collectionScreen({
    title: "Queues",
    path: "/api/queues",
    noun: "queue",
    specs: [
      { key: "name", label: "Name" },
      { key: "description", label: "Description" },
    ],
    columns: [
      ["Name", (q) => q.name],
      ["Description", (q) => q.description || "—"],
    ],
  });
}

function agentsScreen() {
  return collectionScreen({
    title: "Agents",
    path: "/api/agents",
    noun: "agent",
    needs: ["queues"],
    specs: [
      { key: "name", label: "Name" },
      { key: "capacity", label: "Capacity (conversations at once)", kind: "number", min: 1, max: 100 },
      { key: "presence", label: "Presence", kind: "select", required: true, options: choices("offline", "available", "busy", "away") },
      { key: "queues", label: "Queues", kind: "checks", options: opts("queues") },
      { key: "languages", label: "Languages", kind: "csv", hint: "Locales, separated with commas: en, nb-NO." },
    ],
    columns: [
      ["Name", (a) => a.name],
      ["Presence", (a) => a.presence],
      ["Capacity", (a) => String(a.capacity)],
      ["Queues", (a) => a.queues.map((q) => nameOf(dir.queues, q)).join(", ") || "—"],
      ["Languages", (a) => (a.languages || []).join(", ") || "—"],
    ],
  });
}

function workstreamsScreen() {
  return collectionScreen({
    title: "Workstreams",
    path: "/api/workstreams",
    noun: "workstream",
    needs: ["queues", "accounts"],
    specs: [
      { key: "name", label: "Name" },
      { key: "channel", label: "Channel", kind: "select", required: true, options: choices("whatsapp", "sms", "facebook", "gbm"), hint: "Fixed once created." },
      { key: "fallback_queue", label: "Fallback queue", kind: "select", options: opts("queues"), hint: "Where conversations no rule matches go." },
      { key: "distribution", label: "Distribution", kind: "select", required: true, options: choices("round_robin", "least_active") },
      { key: "bot_url", label: "Bot URL (optional)" },
      { key: "channels", label: "Channel instances", kind: "rows", item: "channel", fields: [
        { key: "account_id", label: "Account", kind: "select", options: opts("accounts", (a) => `${a.name} (${a.provider})`) },
        { key: "address", label: "Address", hint: "A number of the account for the workstream's channel, a page id or the GBM agent id.", suggest: addressChoices },
        { key: "language", label: "Language", placeholder: "en-US" },
        { key: "customer_attachments", label: "Customers may send attachments", kind: "checkbox" },
        { key: "agent_attachments", label: "Agents may send attachments", kind: "checkbox" },
        { key: "human_agent_tag", label: "Human agent tag (Facebook: replies up to 7 days)", kind: "checkbox" },
      ] },
      { key: "routing_rules", label: "Routing rules (tried in order)", kind: "rows", item: "rule", fields: [
        { key: "name", label: "Rule name" },
        { key: "queue", label: "Queue", kind: "select", options: opts("queues") },
        { key: "conditions", label: "Conditions (all must hold)", kind: "group", fields: [
          { key: "keywords", label: "Keywords", kind: "csv" },
          { key: "language", label: "Language" },
          { key: "channel", label: "Channel address" },
          { key: "contact_field", label: "Contact field", kind: "group", fields: [
            { key: "name", label: "Field" },
            { key: "equals", label: "Equals" },
          ] },
        ] },
      ] },
    ],
    columns: [
      ["Name", (w) => w.name],
      ["Channel", (w) => w.channel],
      ["Addresses", (w) => w.channels.map((c) => `${c.address} (${c.language})`).join(", ") || "—"],
      ["Rules", (w) => w.routing_rules.map((r) => r.name).join(" → ") || "—"],
      ["Fallback", (w) => nameOf(dir.queues, w.fallback_queue)],
    ],
  });
}

/**
 * What an account can serve, as `[channel, address, label]`: a Twilio
 * account's WhatsApp numbers and its SMS numbers, a TeleSign account's
 * numbers (SMS), pages, the GBM agent.
 */
function accountAddresses(account) {
  switch (account.provider) {
    case "twilio":
      return [
        ...(account.numbers || []).map((n) => ["whatsapp", n.number, n.name]),
        ...(account.sms_numbers || []).map((n) => ["sms", n.number, n.name]),
      ];
    case "telesign":
      return (account.numbers || []).map((n) => ["sms", n.number, n.description || n.type]);
    case "facebook":
      return (account.pages || []).map((p) => ["facebook", p.page_id, p.name]);
    case "gbm":
      return account.agent_id ? [["gbm", account.agent_id, "agent"]] : [];
    default:
      return [];
  }
}

/** The addresses a workstream's channel row may use: the chosen account's, on the workstream's channel. */
function addressChoices(input) {
  const form = input.form;
  const channel = form.querySelector("[name=channel]");
  const account = form.querySelector(`[name="${CSS.escape(input.name.replace(/address$/, "account_id"))}"]`);
  return (dir.accounts || [])
    .filter((a) => !account || !account.value || a.id === account.value)
    .flatMap((a) =>
      accountAddresses(a)
        .filter(([on]) => !channel || !channel.value || on === channel.value)
        .map(([on, address, label]) => [address, `${label || address} (${on}, ${a.name})`]),
    );
}

function outboundScreen() {
  if (session.role === "flow") return outboundList();
  return collectionScreen({
    title: "Outbound configurations",
    path: "/api/outbound-configs",
    noun: "configuration",
    needs: ["accounts", "templates"],
    specs: [
      { key: "name", label: "Name" },
      { key: "channel_type", label: "Channel type", kind: "select", required: true, options: choices("sms", "whatsapp") },
      { key: "channel", label: "Send from (number)", hint: "Digits only for SMS, +E.164 for WhatsApp." },
      { key: "account_id", label: "Account (when several have the number)", kind: "select", options: opts("accounts", (a) => `${a.name} (${a.provider})`) },
      { key: "template_id", label: "Template", kind: "select", options: opts("templates") },
      { key: "show_on_timeline", label: "Show on the contact's timeline", kind: "checkbox" },
    ],
    columns: [
      ["Name", (c) => c.name],
      ["Configuration ID (for flows)", (c) => h("div", { class: "copyable" }, h("code", {}, c.id), copyButton(c.id, `the configuration ID of ${c.name}`))],
      ["Channel", (c) => `${c.channel_type} · ${c.channel}`],
      ["Template", (c) => nameOf(dir.templates, c.template_id)],
    ],
  });
}

async function outboundList() {
  setMain(pageHead("Outbound configurations"), loading());
  try {
    const configs = await listAll("/api/outbound-configs");
    setMain(
      pageHead("Outbound configurations"),
      table(
        [
          ["Name", (c) => c.name],
          ["Configuration ID", (c) => h("div", { class: "copyable" }, h("code", {}, c.id), copyButton(c.id, `the configuration ID of ${c.name}`))],
          ["Channel", (c) => `${c.channel_type} · ${c.channel}`],
        ],
        configs,
        "No outbound configuration yet.",
      ),
    );
  } catch (error) {
    setMain(pageHead("Outbound configurations"), failure(error));
  }
}

async function keysScreen() {
  setMain(pageHead("API keys"), loading());
  let keys;
  try {
    await loadAll("agents");
    keys = await listAll("/api/keys");
  } catch (error) {
    return setMain(pageHead("API keys"), failure(error));
  }
  const shown = h("div", { class: "shown-once" });
  const form = specForm(
    [
      { key: "name", label: "Name" },
      { key: "role", label: "Role", kind: "select", required: true, options: choices("agent", "admin", "flow") },
      { key: "agent_id", label: "Agent (agent keys only)", kind: "select", options: opts("agents") },
    ],
    null,
    {
      submit: "Create key",
      saved: "Created the key: copy it now, it is shown only once.",
      save: async (body) => {
        const created = await api("POST", "/api/keys", body);
        clear(shown).append(
          h(
            "div",
            { class: "once", role: "status" },
            h("p", {}, h("strong", {}, "Copy this key now: it is shown only once.")),
            h("div", { class: "copyable" }, h("code", { class: "new-key" }, created.key), copyButton(created.key, "the new key")),
            h("button", { type: "button", class: "small", onclick: () => route() }, "Done"),
          ),
        );
      },
    },
  );
  setMain(
    pageHead("API keys"),
    shown,
    table(
      [
        ["Name", (k) => k.name],
        ["Role", (k) => k.role],
        ["Agent", (k) => (k.agent_id ? nameOf(dir.agents, k.agent_id) : "—")],
        ["Key", (k) => h("code", {}, k.key)],
        ["Created", (k) => when(k.created_at)],
        [
          "",
          (k) =>
            h(
              "button",
              {
                type: "button",
                class: "small danger",
                "aria-label": `Revoke ${k.name}`,
                onclick: async (event) => {
                  if (!confirm(`Revoke ${k.name}? It stops working at once.`)) return;
                  try {
                    await api("DELETE", `/api/keys/${k.id}`);
                    announce(`Revoked ${k.name}.`);
                    rememberDeletedRow(event);
                    route();
                  } catch (error) {
                    event.target.parentElement.append(h("p", { class: "form-error", role: "alert" }, error.message));
                  }
                },
              },
              "Revoke",
            ),
        ],
      ],
      keys,
      "No keys.",
    ),
    h("h2", {}, "New key"),
    form,
  );
  focusAfterDelete(form.querySelector("input"));
}

// ---------------------------------------------------------------- templates

async function templatesScreen(which) {
  setMain(pageHead("Templates"), loading());
  let templates;
  try {
    templates = await listAll("/api/templates");
  } catch (error) {
    return setMain(pageHead("Templates"), failure(error));
  }
  const list = table(
    [
      ["Name", (t) => h("a", { href: `#/admin/templates/${t.id}` }, t.name)],
      ["Channels", (t) => t.channel_types.join(", ")],
      ["Locales", (t) => Object.keys(t.versions).join(", ")],
      ["WhatsApp approved", (t) => Object.entries(t.versions).filter(([, v]) => v.approved).map(([l]) => l).join(", ") || "—"],
    ],
    templates,
    "No templates yet.",
  );
  if (!which) {
    return setMain(pageHead("Templates", h("a", { href: "#/admin/templates/new", class: "button" }, "New template")), list);
  }
  const template = which === "new" ? null : templates.find((t) => t.id === which);
  if (which !== "new" && !template) return setMain(pageHead("Templates"), h("p", { class: "state" }, "No such template."));
  setMain(pageHead(template ? template.name : "New template", h("a", { href: "#/admin/templates" }, "All templates")), templateEditor(template));
}

function templateEditor(template) {
  const versions = structuredClone(template ? template.versions : { "en-US": { text: "", approved: false } });
  let current = Object.keys(versions)[0];
  // The locales follow the WAI-ARIA tabs pattern: one tab in the Tab order
  // (the selected one), the arrow keys, Home and End move between them.
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Locales" });
  const adding = h("div", { class: "add-locale" });
  const panels = h("div", {});
  const prefix = `t${++uniqueId}`;
  // Keeps what was typed in the panels, before they are repainted.
  const keep = () => Object.assign(versions, collect(panels, false).versions || {});
  const select = (locale, focus) => {
    keep();
    current = locale;
    paint();
    if (focus) tabs.querySelector('[aria-selected="true"]').focus();
  };
  tabs.addEventListener("keydown", (event) => {
    const locales = Object.keys(versions);
    const at = locales.indexOf(current);
    const to = {
      ArrowRight: (at + 1) % locales.length,
      ArrowLeft: (at - 1 + locales.length) % locales.length,
      Home: 0,
      End: locales.length - 1,
    }[event.key];
    if (to === undefined || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    select(locales[to], true);
  });
  const form = h(
    "form",
    { class: "card stack", novalidate: true },
    controls(
      [
        { key: "name", label: "Name" },
        { key: "channel_types", label: "Channels", kind: "checks", options: choices("sms", "whatsapp") },
        { key: "default_locale", label: "Default locale", placeholder: "en-US" },
      ],
      template || { channel_types: ["sms"], default_locale: "en-US" },
      "",
      !!template,
    ),
    h("h2", {}, "Versions"),
    h("div", { class: "tabs-bar" }, tabs, adding),
    panels,
  );
  const newLocale = h("input", { id: "new-locale", placeholder: "nb-NO", size: 8 });
  const paint = () => {
    clear(tabs);
    clear(panels);
    clear(adding);
    Object.keys(versions).forEach((locale, i) => {
      const selected = locale === current;
      tabs.append(
        h(
          "button",
          {
            type: "button",
            role: "tab",
            id: `${prefix}-tab-${i}`,
            "aria-controls": `${prefix}-panel-${i}`,
            "aria-selected": selected ? "true" : "false",
            tabindex: selected ? "0" : "-1",
            "data-locale": locale,
            onclick: () => select(locale, true),
          },
          locale,
        ),
      );
      const v = versions[locale];
      const panel = h(
        "div",
        { role: "tabpanel", id: `${prefix}-panel-${i}`, "aria-labelledby": `${prefix}-tab-${i}`, hidden: !selected },
        controls(
          [
            { key: "text", label: `Text (${locale})`, kind: "textarea", hint: "Placeholders: {{CustomerName}}, {{CaseName}}, {{contextitems.Key}}." },
            { key: "approved", label: "Approved by WhatsApp (Meta)", kind: "checkbox" },
            { key: "content_sid", label: "Twilio Content SID", placeholder: "HX…" },
          ],
          typeof v === "string" ? { text: v } : v,
          `versions.${locale}.`,
          false,
        ),
        h("button", { type: "button", class: "small danger", onclick: () => { keep(); delete versions[locale]; current = Object.keys(versions)[0]; paint(); const tab = tabs.querySelector('[aria-selected="true"]'); (tab || newLocale).focus(); announce(`Removed the ${locale} version.`); } }, `Remove ${locale}`),
      );
      panels.append(panel);
    });
    adding.append(
      h("label", { for: "new-locale", class: "sr-only" }, "New locale"),
      newLocale,
      h("button", { type: "button", class: "small", onclick: addLocale }, "Add locale"),
    );
  };
  const addLocale = () => {
    const l = newLocale.value.trim();
    if (!l) return;
    keep();
    versions[l] = versions[l] || { text: "", approved: false };
    newLocale.value = "";
    select(l, true);
    announce(`Added the ${l} version.`);
  };
  // Enter in the new locale's box adds it (rather than saving the form).
  newLocale.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    addLocale();
  });
  paint();
  const save = h("button", { type: "submit", class: "primary" }, template ? "Save" : "Create template");
  form.append(h("div", { class: "row" }, save));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = collect(form, !!template);
    try {
      const saved = template ? await api("PATCH", `/api/templates/${template.id}`, body) : await api("POST", "/api/templates", body);
      announce(template ? "Saved the template." : "Created the template.");
      location.hash = `#/admin/templates/${saved.id}`;
      route();
    } catch (error) {
      showError(form, error);
    }
  });
  if (!template) return form;
  return h("div", { class: "split" }, form, templatePreview(template));
}

/** A live preview through the render API, for one sample contact. */
function templatePreview(template) {
  const form = h(
    "form",
    { class: "card stack", novalidate: true },
    h("h2", {}, "Preview"),
    controls(
      [
        { key: "channel_type", label: "Channel", kind: "select", required: true, options: choices(...template.channel_types) },
        { key: "locale", label: "Contact's locale", placeholder: template.default_locale },
        { key: "CustomerName", label: "CustomerName" },
        { key: "CaseName", label: "CaseName" },
      ],
      { CustomerName: "Kari", CaseName: "CAS-01042", locale: template.default_locale },
      "",
      false,
    ),
  );
  const out = h("p", { class: "preview", "aria-live": "polite" });
  const facts = h("p", { class: "hint" });
  form.append(h("div", { class: "field" }, h("span", { class: "label" }, "Rendered"), out, facts));
  let timer = null;
  const render = async () => {
    clearErrors(form);
    try {
      const r = await api("POST", `/api/templates/${template.id}/render`, collect(form, false));
      out.textContent = r.text;
      facts.textContent = `${r.locale} · ${r.characters} characters${r.content_sid ? ` · ${r.content_sid}` : ""}`;
    } catch (error) {
      out.textContent = "";
      facts.textContent = "";
      showError(form, error);
    }
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  render();
  return form;
}

// ---------------------------------------------------------------- jobs and contacts

const JOB_PAGE = 50;

/** A job's progress in words, as the API counts it. */
function jobProgress(job) {
  const p = job.progress || {};
  const unknown = p.unknown ? ` · unknown ${p.unknown}` : "";
  return `Sent ${p.sent ?? 0} · skipped ${p.skipped ?? 0} · failed ${p.failed ?? 0} · pending ${p.pending ?? 0}${unknown} (of ${job.contacts})`;
}

function jobProgressBar(job) {
  const p = job.progress || {};
  const done = (p.sent || 0) + (p.skipped || 0) + (p.failed || 0) + (p.unknown || 0);
  return h("progress", { max: job.contacts || 1, value: done, "aria-label": `Progress of job ${job.id}` });
}

async function jobsScreen(id) {
  if (id) return jobScreen(id);
  const input = h("input", { name: "job", placeholder: "job id" });
  const form = h("form", { class: "card", novalidate: true }, field("Job ID", input, "The id a scheduled send answered with."), h("div", { class: "row" }, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/admin/jobs/${input.value.trim()}`;
  });
  const list = h("div", { class: "stack" }, loading());
  setMain(pageHead("Outbound jobs"), list, form);
  const jobs = [];
  let cursor = null;
  // `firstNew`: the index of the first job of a page just loaded, whose
  // link takes the focus so a keyboard user goes on from there.
  const paint = (firstNew = null) => {
    append(clear(list), [
      table(
        [
          ["Job", (j) => h("a", { href: `#/admin/jobs/${j.id}`, class: "job-link" }, h("code", {}, j.id))],
          ["Created", (j) => when(j.created_at)],
          ["Send at", (j) => when(j.send_at)],
          ["State", (j) => h("span", { "data-state": j.state }, j.state)],
          ["Progress", (j) => h("div", { class: "job-progress" }, jobProgressBar(j), h("span", {}, jobProgress(j)))],
        ],
        jobs,
        "No scheduled jobs yet.",
      ),
      cursor ? h("div", { class: "row" }, h("button", { type: "button", onclick: () => more() }, "Show older jobs")) : null,
    ]);
    if (firstNew !== null) {
      const link = list.querySelectorAll(".job-link")[firstNew];
      if (link) link.focus();
    }
  };
  const more = async () => {
    try {
      const page = await api("GET", `/api/outbound/jobs?limit=${JOB_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      const firstNew = cursor ? jobs.length : null;
      jobs.push(...page.items);
      cursor = page.next_cursor;
      paint(firstNew);
      focusHeading();
    } catch (error) {
      clear(list).append(failure(error));
    }
  };
  await more();
}

/** One job: its state, progress and what became of each contact. */
async function jobScreen(id) {
  const back = h("a", { href: "#/admin/jobs" }, "All jobs");
  setMain(pageHead("Outbound job", back), loading());
  let job;
  try {
    job = await api("GET", `/api/outbound/jobs/${id}`);
  } catch (error) {
    return setMain(pageHead("Outbound job", back), failure(error));
  }
  setMain(
    pageHead(`Job ${job.id}`, back),
    h(
      "div",
      { class: "card stack" },
      h("dl", { class: "facts" }, fact("State", h("span", { "data-state": job.state }, job.state)), fact("Send at", when(job.send_at)), fact("Configuration", job.configuration_id)),
      job.error ? h("p", { class: "form-error", role: "alert" }, job.error.message) : null,
      h("p", { class: "job-summary" }, jobProgress(job)),
      jobProgressBar(job),
      table(
        [
          ["#", (r) => String(r.index + 1)],
          ["Contact", (r) => (r.contact_id ? h("a", { href: `#/contacts/${r.contact_id}` }, r.tocontactid || r.contact_id) : r.tocontactid || "—")],
          ["Result", (r) => h("span", { "data-status": r.status }, r.status)],
          ["Detail", (r) => [r.reason && r.reason.message, r.locale].filter(Boolean).join(" · ") || "—"],
        ],
        job.results || [],
        "No results yet.",
      ),
    ),
  );
}

/** The search in a hash (`#/contacts?q=…`); a mangled one is searched as typed. */
function decodedQuery(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A list's search box. Searching changes the hash (`#/contacts?q=…`), so
 * the browser's Back returns to the previous search; an empty search is the
 * whole list again.
 */
function searchForm({ query, label, hint, hash }) {
  const input = h("input", { type: "search", name: "q", value: query || "", autocomplete: "off" });
  const form = h(
    "form",
    { class: "card search", role: "search", novalidate: true },
    field(label, input, hint),
    h(
      "div",
      { class: "row start" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      query ? h("a", { href: hash }, "Show all") : null,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = input.value.trim();
    const next = typed ? `${hash}?q=${encodeURIComponent(typed)}` : hash;
    if (location.hash === next) route();
    else location.hash = next;
  });
  return form;
}

async function contactsScreen(id, query) {
  if (!id) {
    return collectionScreen({
      title: "Contacts",
      path: "/api/contacts",
      noun: "contact",
      search: {
        query,
        hash: "#/contacts",
        label: "Find a contact",
        hint: "Part of a name or an address, or a whole phone number (with or without + and spaces).",
      },
      specs: [{ key: "name", label: "Name" }],
      columns: [
        ["Name", (c) => h("a", { href: `#/contacts/${c.id}` }, c.name)],
        ["Addresses", (c) => (c.addresses || []).map((a) => `${a.channel} ${a.address}`).join(", ") || "—"],
        ["ID", (c) => h("div", { class: "copyable" }, h("code", {}, c.id), copyButton(c.id, `the ID of ${c.name}`))],
      ],
    });
  }
  setMain(loading());
  try {
    const contact = await api("GET", `/api/contacts/${id}`);
    const timeline = await api("GET", `/api/contacts/${id}/timeline?limit=200`);
    setMain(
      pageHead(contact.name, h("a", { href: "#/contacts" }, "All contacts")),
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Addresses"),
        table(
          [
            ["Channel", (a) => a.channel],
            ["Address", (a) => a.address],
            ["Opted out", (a) => (a.opted_out_at ? when(a.opted_out_at) : "—")],
          ],
          contact.addresses || [],
          "No addresses.",
        ),
        h("h2", {}, "Fields"),
        table([["Name", ([k]) => k], ["Value", ([, v]) => String(v)]], Object.entries(contact.fields || {}), "No fields."),
        h("h2", {}, "Timeline"),
        table(
          [
            ["When", (t) => when(t.created_at)],
            ["Message", (t) => t.text || ""],
            ["Channel", (t) => `${t.channel || ""} ${t.to || ""}`],
            ["Status", (t) => t.status || ""],
          ],
          timeline.items || [],
          "Nothing on the timeline.",
        ),
      ),
    );
  } catch (error) {
    setMain(failure(error));
  }
}

// ---------------------------------------------------------------- start

async function learnClock() {
  try {
    const response = await fetch("/console/favicon.svg", { method: "HEAD", cache: "no-store" });
    const date = response.headers.get("date");
    if (date) clockSkew = Date.parse(date) - Date.now();
  } catch {
    clockSkew = 0;
  }
}

/** A failure no screen caught is shown, not swallowed. */
function showCrash(message) {
  const banner = h("p", { class: "crash", role: "alert" }, `Something went wrong: ${message}. Reload the page to try again.`);
  document.body.prepend(banner);
}

/** The skip link moves focus to the screen (the hash is the router's). */
function skipLink() {
  const skip = document.querySelector(".skip");
  if (!skip) return;
  skip.addEventListener("click", (event) => {
    event.preventDefault();
    const main = document.getElementById("main");
    main.focus();
    main.scrollIntoView();
  });
}

async function start() {
  skipLink();
  window.addEventListener("error", (event) => showCrash(event.message));
  window.addEventListener("unhandledrejection", (event) => showCrash(String(event.reason && event.reason.message ? event.reason.message : event.reason)));
  window.addEventListener("hashchange", () => {
    headingPending = true;
    route();
  });
  await learnClock();
  if (!session.key) return renderSignIn();
  setMain(loading("Signing in…"));
  try {
    await learnRole();
  } catch (error) {
    return signOut(error.status === 401 ? "Your key is no longer valid: sign in again." : error.message);
  }
  route();
}

start();

// The codexd console: status, sessions, transcripts, approvals, runs and the event tail, all
// through the daemon's JSON-RPC API (see docs/api.md) over one WebSocket.

import { Rpc } from "./rpc.js";
import { Transcript, clock, h, renderTranscript, short } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const TAIL_KEEP = 2000;
const TAIL_SHOW = 300;
const HISTORY_PAGES = 50;

const state = {
  status: null,
  sessions: [],
  selected: null,
  transcripts: new Map(),
  approvals: new Map(), // pending, by id
  known: new Map(), // every approval seen, by id (for the transcripts)
  answered: [], // recently answered approvals (this page only)
  runs: [],
  run: null,
  tail: [],
  lastSeq: null,
};

const rpc = new Rpc({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`,
  onOpen: connected,
  onNotify: notified,
  onState: connectionState,
});

// ---- rendering, at most once a frame ----------------------------------------------------------

const dirty = new Set();
let frame = 0;
function mark(...parts) {
  for (const p of parts) dirty.add(p);
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const parts = new Set(dirty);
  dirty.clear();
  if (parts.has("status")) renderStatus();
  if (parts.has("sessions")) renderSessions();
  if (parts.has("transcript")) renderSelected();
  if (parts.has("approvals")) renderInbox();
  if (parts.has("runs")) renderRuns();
  if (parts.has("tail")) renderTail();
}

function replace(el, children) {
  el.replaceChildren(...children.flat().filter(Boolean));
}

function flash(message, isError = true) {
  const el = $("flash");
  el.textContent = message;
  el.className = isError ? "error" : "ok";
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (el.hidden = true), 8000);
}

async function act(what, fn) {
  try {
    return await fn();
  } catch (err) {
    flash(`${what}: ${err.message}`);
    return undefined;
  }
}

// ---- connection -------------------------------------------------------------------------------

function connectionState(kind, detail) {
  const el = $("conn");
  el.dataset.state = kind;
  el.textContent =
    kind === "open" ? "connected" : kind === "connecting" ? "connecting…" : "disconnected";
  if (kind === "closed") checkLogin();
  if (kind === "error") flash(detail);
}

async function checkLogin() {
  try {
    const probe = await fetch("/console/session", { cache: "no-store" });
    $("login-hint").hidden = probe.status !== 401;
  } catch {
    // The daemon is down: the connection retries.
  }
}

async function connected() {
  $("login-hint").hidden = true;
  const status = await rpc.call("daemon/status");
  applyStatus(status);
  if (state.lastSeq === null) {
    state.tail = status.recentEvents.slice(-TAIL_KEEP);
    state.lastSeq = status.lastSeq;
    mark("tail");
  }
  // Resume where this page left off: nothing is missed across a reconnect.
  await rpc.call("events/subscribe", { since: state.lastSeq });
  await Promise.all([refreshSessions(), refreshApprovals(), refreshRuns()]);
  for (const transcript of state.transcripts.values()) {
    if (!transcript.loaded) loadHistory(transcript);
  }
}

function notified(method, params) {
  if (method === "event") onEvent(params.event);
  // "events/dropped": the daemon closes the connection; the reconnection resumes from lastSeq.
}

// ---- events -----------------------------------------------------------------------------------

const refreshSoon = debounce({
  status: () => refreshStatus(),
  sessions: () => refreshSessions(),
  approvals: () => refreshApprovals(),
  runs: () => refreshRuns(),
});

function debounce(actions) {
  const timers = {};
  return (name) => {
    if (timers[name]) return;
    timers[name] = setTimeout(() => {
      timers[name] = 0;
      actions[name]().catch(() => {});
    }, 150);
  };
}

function onEvent(ev) {
  if (state.lastSeq !== null && ev.seq <= state.lastSeq) return;
  state.lastSeq = ev.seq;
  state.tail.push(ev);
  if (state.tail.length > TAIL_KEEP) state.tail.splice(0, state.tail.length - TAIL_KEEP);
  mark("tail");
  const t = ev.type;
  if (ev.sessionId) {
    const transcript = state.transcripts.get(ev.sessionId);
    if (transcript && !transcript.loaded) transcript.buffer.push(ev);
    else if (transcript && transcript.apply(ev) && ev.sessionId === state.selected) mark("transcript");
  }
  if (t.startsWith("approval.")) {
    if (t === "approval.decided") rememberAnswer(ev.detail);
    refreshSoon("approvals");
  }
  if (t.startsWith("session.") || t === "turn.accepted" || t === "app-server.turn.completed") {
    refreshSoon("sessions");
  }
  if (t.startsWith("run.")) refreshSoon("runs");
  if (t.startsWith("child.") || t.startsWith("daemon.") || t.startsWith("approval.")) {
    refreshSoon("status");
  }
}

// ---- status -----------------------------------------------------------------------------------

async function refreshStatus() {
  applyStatus(await rpc.call("daemon/status"));
}

function applyStatus(status) {
  state.status = status;
  mark("status");
}

function renderStatus() {
  const s = state.status;
  if (!s) return;
  const d = s.daemon;
  const c = s.child;
  $("daemon-status").replaceChildren(
    h("span", { class: `badge ${d.status}` }, d.status),
    ` codexd ${d.version} · pid ${d.pid} · ${d.mode}`,
  );
  $("child-status").replaceChildren(
    "child ",
    h("span", { class: `badge ${c.status}` }, c.status),
    c.pid ? ` pid ${c.pid}` : "",
    c.restartCount ? ` · ${c.restartCount} restarts` : "",
    c.lastError ? h("span", { class: "meta", title: c.lastError }, " · last error") : "",
  );
  $("store-status").textContent = s.store.status === "ok" ? "" : `store ${s.store.status}`;
}

// ---- sessions ---------------------------------------------------------------------------------

async function refreshSessions() {
  const list = await rpc.call("session/list");
  state.sessions = list.sessions.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  if (!state.selected) {
    const active = state.sessions.find((s) => s.status === "active");
    if (active) select(active.sessionId);
  }
  mark("sessions", "transcript");
}

function sessionOf(id) {
  return state.sessions.find((s) => s.sessionId === id);
}

function renderSessions() {
  replace(
    $("sessions"),
    state.sessions.map((s) =>
      h(
        "li",
        {
          class: `session ${s.status} ${s.sessionId === state.selected ? "selected" : ""}`,
          dataset: { session: s.sessionId },
          onclick: () => select(s.sessionId),
        },
        h("span", { class: "name" }, s.purpose),
        h("span", { class: "meta" }, short(s.sessionId)),
        h("span", { class: `badge ${s.status}` }, s.currentTurnId ? "running" : s.status),
      ),
    ),
  );
}

function select(sessionId) {
  state.selected = sessionId;
  let transcript = state.transcripts.get(sessionId);
  if (!transcript) {
    transcript = new Transcript(sessionId);
    state.transcripts.set(sessionId, transcript);
    if (rpc.connected) loadHistory(transcript);
  }
  mark("sessions", "transcript");
}

async function loadHistory(transcript) {
  // The stored events of the session, page by page; live ones wait in transcript.buffer.
  let after = 0;
  for (let page = 0; page < HISTORY_PAGES; page++) {
    const got = await act("history", () =>
      rpc.call("events/list", { sessionId: transcript.sessionId, after, limit: 2000 }),
    );
    if (!got) return;
    for (const ev of got.events) transcript.apply(ev);
    if (!got.events.length || got.events[got.events.length - 1].seq >= got.lastSeq) break;
    after = got.events[got.events.length - 1].seq;
  }
  transcript.loaded = true;
  for (const ev of transcript.buffer.splice(0)) transcript.apply(ev);
  mark("transcript");
}

function renderSelected() {
  const session = sessionOf(state.selected);
  const transcript = state.transcripts.get(state.selected);
  const head = $("session-head");
  if (!session) {
    head.replaceChildren(h("h2", {}, "No session selected"));
    replace($("transcript"), [h("p", { class: "empty" }, "Create a session, or pick one.")]);
    $("composer").hidden = true;
    return;
  }
  head.replaceChildren(
    h("h2", {}, `${session.purpose} `, h("span", { class: "meta" }, session.sessionId)),
    h(
      "span",
      { class: "meta" },
      [session.model, session.cwd, session.lastTurnStatus && `last turn ${session.lastTurnStatus}`]
        .filter(Boolean)
        .join(" · "),
    ),
    h("button", { id: "fork-session", onclick: () => forkSession(session.sessionId) }, "Fork"),
    session.status === "active"
      ? h("button", { id: "close-session", onclick: () => closeSession(session.sessionId) }, "Close")
      : h("span", { class: "badge closed" }, "closed"),
  );
  const box = $("transcript");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const turns = transcript ? renderTranscript(transcript, state.known) : [];
  replace(box, turns.length ? turns : [h("p", { class: "empty" }, "No turns yet.")]);
  if (atBottom) box.scrollTop = box.scrollHeight;
  $("composer").hidden = session.status !== "active";
  const running = session.currentTurnId;
  $("send").textContent = running ? "Steer" : "Send";
  $("interrupt").hidden = !running;
}

async function closeSession(sessionId) {
  await act("close", () => rpc.call("session/close", { sessionId }));
  refreshSoon("sessions");
}

async function forkSession(sessionId) {
  // A new session on a fork of the thread: Codex keeps the conversation so far.
  const session = await act("fork", () => rpc.call("session/fork", { sessionId }));
  if (session) {
    state.sessions.unshift(session);
    select(session.sessionId);
  }
}

async function createSession(form) {
  const params = { purpose: form.purpose.value.trim() || "general" };
  if (form.cwd.value.trim()) params.cwd = form.cwd.value.trim();
  if (form.approvalPolicy.value) params.approvalPolicy = form.approvalPolicy.value;
  if (form.sandbox.value) params.sandbox = form.sandbox.value;
  const session = await act("new session", () => rpc.call("session/create", params));
  if (session) {
    form.purpose.value = "";
    state.sessions.unshift(session);
    select(session.sessionId);
    $("prompt").focus();
  }
}

async function sendTurn() {
  const session = sessionOf(state.selected);
  const text = $("prompt").value.trim();
  if (!session || !text) return;
  const running = session.currentTurnId;
  const params = { sessionId: session.sessionId, input: text };
  if (running) params.expectedTurnId = running;
  const accepted = await act(running ? "steer" : "send", () => rpc.call("turn/start", params));
  if (accepted) {
    $("prompt").value = "";
    Object.assign(session, accepted.session);
    mark("sessions", "transcript");
  }
}

async function interruptTurn() {
  const result = await act("interrupt", () =>
    rpc.call("turn/interrupt", { sessionId: state.selected }),
  );
  if (result) flash(`turn ${short(result.turnId)} ${result.status}`, false);
}

// ---- approvals --------------------------------------------------------------------------------

async function refreshApprovals() {
  const list = await rpc.call("approval/list", { status: "pending" });
  state.approvals = new Map(list.approvals.map((a) => [a.approvalId, a]));
  for (const a of list.approvals) state.known.set(a.approvalId, a);
  mark("approvals", "transcript");
}

function rememberAnswer(detail) {
  if (!detail) return;
  const known = state.approvals.get(detail.approvalId);
  state.answered.unshift({ ...(known || { approvalId: detail.approvalId }), ...detail });
  state.answered.length = Math.min(state.answered.length, 5);
}

function timeLeft(deadline) {
  if (!deadline) return "no deadline";
  const s = Math.round((new Date(deadline) - Date.now()) / 1000);
  if (s <= 0) return "expiring";
  return s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s left` : `${s}s left`;
}

async function respond(approvalId, decision) {
  const answer = await act("answer", () =>
    rpc.call("approval/respond", { approvalId, decision }),
  );
  if (answer) {
    state.approvals.delete(approvalId);
    mark("approvals");
  }
}

function approvalCard(a) {
  const p = a.params || {};
  const session = sessionOf(a.sessionId);
  const where = p.cwd || (session && session.cwd) || "";
  const why = p.reason || p.justification || "";
  return h(
    "div",
    { class: "card approval", dataset: { approval: a.approvalId } },
    h("div", { class: "what" }, a.summary || a.method),
    h(
      "div",
      { class: "meta" },
      session ? `${session.purpose} ${short(a.sessionId)}` : short(a.sessionId),
      where ? ` · in ${where}` : "",
    ),
    why ? h("div", { class: "why" }, why) : null,
    h("div", { class: "meta countdown", dataset: { deadline: a.deadlineAt || "" } }, timeLeft(a.deadlineAt)),
    h(
      "div",
      { class: "actions" },
      h("button", { class: "accept", onclick: () => respond(a.approvalId, "accept") }, "Accept"),
      h("button", { onclick: () => respond(a.approvalId, "acceptForSession") }, "Accept for session"),
      h("button", { class: "decline", onclick: () => respond(a.approvalId, "decline") }, "Decline"),
    ),
  );
}

function renderInbox() {
  const pending = [...state.approvals.values()].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
  $("inbox-count").textContent = pending.length ? String(pending.length) : "";
  replace($("inbox"), [
    pending.length ? pending.map(approvalCard) : h("p", { class: "empty" }, "Nothing waits for you."),
    state.answered.length ? h("h3", {}, "Recently answered") : null,
    state.answered.map((a) =>
      h(
        "div",
        { class: "card answered" },
        h("span", { class: `badge ${a.decision || ""}` }, a.decision || a.status),
        a.decidedBy ? h("span", { class: "meta" }, ` by ${a.decidedBy} `) : " ",
        a.summary || a.method || short(a.approvalId),
      ),
    ),
  ]);
}

setInterval(() => {
  for (const el of document.querySelectorAll(".countdown")) {
    el.textContent = timeLeft(el.dataset.deadline);
  }
}, 1000);

// ---- runs -------------------------------------------------------------------------------------

async function refreshRuns() {
  const list = await rpc.call("run/list");
  state.runs = list.runs.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).slice(0, 30);
  if (state.run) state.run = state.runs.find((r) => r.runId === state.run.runId) || state.run;
  mark("runs");
}

function renderRuns() {
  replace(
    $("runs"),
    state.runs.map((r) =>
      h(
        "li",
        { class: `run ${r.status}`, onclick: () => ((state.run = r), mark("runs")) },
        h("span", { class: `badge ${r.status}` }, r.status),
        h("span", { class: "name" }, r.prompt.slice(0, 60)),
      ),
    ),
  );
  const r = state.run;
  const box = $("run-detail");
  if (!r) {
    box.replaceChildren();
    return;
  }
  const final = ["completed", "failed", "cancelled", "timed_out", "interrupted"].includes(r.status);
  box.replaceChildren(
    h("div", {}, h("strong", {}, `run ${short(r.runId)} `), h("span", { class: `badge ${r.status}` }, r.status)),
    h("p", { class: "prompt" }, r.prompt),
    r.summary ? h("p", { class: "agent-text" }, r.summary) : null,
    r.error ? h("p", { class: "note error" }, r.error) : null,
    r.result ? h("details", {}, h("summary", {}, "result"), h("pre", {}, JSON.stringify(r.result, null, 2))) : null,
    final ? null : h("button", { onclick: () => cancelRun(r.runId) }, "Cancel run"),
  );
}

async function cancelRun(runId) {
  await act("cancel", () => rpc.call("run/cancel", { runId }));
  refreshSoon("runs");
}

async function createRun(form) {
  const params = { prompt: form.prompt.value.trim() };
  if (!params.prompt) return;
  if (form.cwd.value.trim()) params.cwd = form.cwd.value.trim();
  const run = await act("new run", () => rpc.call("run/create", params));
  if (run) {
    form.prompt.value = "";
    state.run = run;
    refreshSoon("runs");
  }
}

// ---- the event tail ---------------------------------------------------------------------------

function describe(ev) {
  // The daemon's message, plus what a person looks for first in an app-server item event.
  const item = ev.detail && ev.detail.item;
  if (!item || !item.type) return ev.message;
  const what = item.command || item.text || "";
  return `${ev.message} ${item.type}${what ? ": " + String(what).slice(0, 120) : ""}`;
}

function renderTail() {
  const filter = $("tail-filter").value.trim();
  const deltas = $("tail-deltas").checked;
  const mine = $("tail-session").checked;
  const shown = [];
  for (let i = state.tail.length - 1; i >= 0 && shown.length < TAIL_SHOW; i--) {
    const ev = state.tail[i];
    const isDelta = ev.type.endsWith("Delta") || ev.type.endsWith(".delta");
    if (isDelta && !deltas) continue;
    if (mine && ev.sessionId !== state.selected) continue;
    if (filter && !ev.type.startsWith(filter) && !ev.message.includes(filter)) continue;
    shown.push(
      h(
        "div",
        { class: `event ${ev.level}` },
        h("span", { class: "seq" }, ev.seq),
        h("span", { class: "time" }, clock(ev.ts)),
        h("span", { class: "type" }, ev.type),
        h("span", { class: "message" }, describe(ev)),
      ),
    );
  }
  replace($("tail"), shown);
  $("tail-seq").textContent = state.lastSeq === null ? "" : `last seq ${state.lastSeq}`;
}

// ---- wiring -----------------------------------------------------------------------------------

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (e) => {
    e.preventDefault();
    fn(e.target);
  });
}

onSubmit("new-session", createSession);
onSubmit("new-run", createRun);
onSubmit("composer", sendTurn);
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) sendTurn();
});
$("interrupt").addEventListener("click", interruptTurn);
$("restart-child").addEventListener("click", () =>
  act("restart child", () => rpc.call("daemon/restartChild")).then(
    (ok) => ok && flash("restarting the app-server child", false),
  ),
);
for (const id of ["tail-filter", "tail-deltas", "tail-session"]) {
  $(id).addEventListener("input", () => mark("tail"));
}
mark("transcript", "approvals");
window.codexdConsole = { rpc, state }; // for a look from the browser's developer tools
rpc.connect();

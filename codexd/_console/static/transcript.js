// A session's transcript, built from the daemon's events, and the DOM helpers to show it.
//
// Every text that comes from the daemon (agent text, commands, output, diffs) is put into the
// page as text nodes, never as HTML.

// h("div", {class: "x", onclick: f}, child, "text", ...) -> an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function short(id) {
  return id ? String(id).slice(-8) : "";
}

export function clock(ts) {
  const d = new Date(ts);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}

// ---- the model --------------------------------------------------------------------------------

export class Transcript {
  constructor(sessionId) {
    this.sessionId = sessionId;
    this.turns = new Map(); // turnId -> {id, status, error, items: Map, order: [], notes: []}
    this.lastSeq = 0;
    this.loaded = false;
    this.buffer = []; // live events that arrived while the history was loading
  }

  turn(id) {
    let turn = this.turns.get(id);
    if (!turn) {
      turn = { id, status: "accepted", error: null, items: new Map(), order: [], notes: [] };
      this.turns.set(id, turn);
    }
    return turn;
  }

  item(turn, id, type) {
    let item = turn.items.get(id);
    if (!item) {
      item = { id, type, text: "", output: "" };
      turn.items.set(id, item);
      turn.order.push(id);
    }
    return item;
  }

  // Apply one event (in seq order; an event seen before is ignored). True if it changed.
  apply(ev) {
    if (ev.seq <= this.lastSeq) return false;
    this.lastSeq = ev.seq;
    const d = ev.detail || {};
    if (ev.type === "approval.decided") {
      for (const turn of this.turns.values()) {
        const item = turn.items.get(d.approvalId);
        if (item) Object.assign(item, { status: d.decision, decidedBy: d.decidedBy });
        if (item) return true;
      }
      return false;
    }
    const turnId = d.turnId || (d.turn && d.turn.id);
    if (!turnId) return false;
    const turn = this.turn(turnId);
    switch (ev.type) {
      case "turn.accepted":
        if (d.steered) turn.notes.push("steered");
        break;
      case "app-server.turn.started":
      case "app-server.turn.completed":
        turn.status = d.turn.status || turn.status;
        turn.error = d.turn.error || turn.error;
        break;
      case "app-server.item.started":
      case "app-server.item.completed": {
        const src = d.item || {};
        const item = this.item(turn, src.id, src.type);
        const keep = { text: item.text, output: item.output };
        Object.assign(item, src);
        if (src.type === "agentMessage" && !src.text) item.text = keep.text;
        item.output = keep.output;
        break;
      }
      case "app-server.item.agentMessage.delta":
        this.item(turn, d.itemId, "agentMessage").text += d.delta || "";
        break;
      case "app-server.item.commandExecution.outputDelta":
        this.item(turn, d.itemId, "commandExecution").output += d.delta || "";
        break;
      case "app-server.error":
        if (!d.willRetry) turn.status = "failed";
        turn.notes.push(
          `${d.willRetry ? "retrying" : "error"}: ${(d.error && d.error.message) || "error"}`,
        );
        break;
      case "approval.requested": {
        const item = this.item(turn, d.approvalId, "approval");
        Object.assign(item, { approvalId: d.approvalId, method: d.method, status: "pending" });
        break;
      }
      default:
        return false;
    }
    return true;
  }
}

// ---- rendering ---------------------------------------------------------------------------------

function diffView(diff) {
  const pre = h("pre", { class: "diff" });
  for (const line of String(diff || "").split("\n")) {
    let cls = "";
    if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
    else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
    else if (line.startsWith("@@")) cls = "hunk";
    pre.append(h("span", { class: cls }, line + "\n"));
  }
  return pre;
}

function changeKind(change) {
  const kind = change.kind;
  if (!kind) return "";
  return typeof kind === "string" ? kind : kind.type || "";
}

function renderItem(item, approvals) {
  switch (item.type) {
    case "userMessage": {
      const text = (item.content || []).map((c) => c.text || "").join("\n");
      return h("div", { class: "item user" }, h("div", { class: "who" }, "you"), h("p", {}, text));
    }
    case "agentMessage":
      return h(
        "div",
        { class: "item agent" },
        h("div", { class: "who" }, "agent"),
        h("p", { class: "agent-text" }, item.text),
      );
    case "commandExecution": {
      const output = item.aggregatedOutput || item.output || "";
      const exit = item.exitCode === null || item.exitCode === undefined ? "" : `exit ${item.exitCode}`;
      return h(
        "div",
        { class: `item command ${item.status || ""}` },
        h(
          "div",
          { class: "command-head" },
          h("code", {}, "$ " + (item.command || "")),
          h("span", { class: "meta" }, [item.status, exit, item.cwd].filter(Boolean).join(" · ")),
        ),
        output ? h("pre", { class: "output" }, output) : null,
      );
    }
    case "fileChange":
      return h(
        "div",
        { class: "item files" },
        h("div", { class: "who" }, `file changes (${item.status || "proposed"})`),
        (item.changes || []).map((change) =>
          h(
            "div",
            { class: "file" },
            h("div", { class: "path" }, `${changeKind(change)} ${change.path || ""}`),
            diffView(change.diff),
          ),
        ),
      );
    case "reasoning": {
      const text = [...(item.summary || []), ...(item.content || [])].join("\n");
      return text ? h("details", { class: "item reasoning" }, h("summary", {}, "reasoning"), text) : null;
    }
    case "approval": {
      const approval = approvals.get(item.approvalId);
      const what = (approval && approval.summary) || item.method;
      return h(
        "div",
        { class: `item approval ${item.status}` },
        h("span", { class: "badge" }, item.status),
        ` approval: ${what}`,
        item.decidedBy ? h("span", { class: "meta" }, ` (by ${item.decidedBy})`) : null,
      );
    }
    default:
      return h("details", { class: "item other" }, h("summary", {}, item.type || "item"),
        h("pre", {}, JSON.stringify(item, null, 2)));
  }
}

export function renderTranscript(transcript, approvals) {
  const out = [];
  for (const turn of transcript.turns.values()) {
    const status = turn.status === "accepted" ? "starting" : turn.status;
    out.push(
      h(
        "article",
        { class: `turn ${turn.status}`, dataset: { turn: turn.id } },
        h("header", {}, h("span", {}, `turn ${short(turn.id)}`), h("span", { class: "badge" }, status)),
        turn.order.map((id) => renderItem(turn.items.get(id), approvals)),
        turn.notes.map((note) => h("div", { class: "note" }, note)),
        turn.error ? h("div", { class: "note error" }, turn.error.message || JSON.stringify(turn.error)) : null,
      ),
    );
  }
  return out;
}

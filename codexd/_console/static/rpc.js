// JSON-RPC 2.0 over the daemon's WebSocket, with reconnection.
//
// The browser sends the console's session cookie on the handshake (it is HttpOnly: this code
// never sees it), and the page's own Origin; the daemon admits nothing else without a token.

export class RpcError extends Error {
  constructor(error) {
    super(error.message || "error");
    this.code = error.code;
    this.data = error.data;
  }
}

export class Rpc {
  // onOpen(): after each (re)connection; onNotify(method, params); onState(state, detail).
  constructor({ url, onOpen, onNotify, onState }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onNotify = onNotify;
    this.onState = onState;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.backoff = 500;
    this.failures = 0;
  }

  connect() {
    this.onState("connecting", this.failures);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.failures = 0;
      this.onState("open");
      Promise.resolve(this.onOpen()).catch((err) => this.onState("error", err.message));
    };
    ws.onmessage = (msg) => this._receive(msg.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const { reject } of this.pending.values()) reject(new Error("connection lost"));
      this.pending.clear();
      this.failures += 1;
      this.onState("closed", ev.code);
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  call(method, params = {}) {
    if (!this.connected) return Promise.reject(new Error("not connected to the daemon"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }

  _receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.id !== undefined && msg.id !== null && this.pending.has(msg.id)) {
      const { resolve, reject } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) reject(new RpcError(msg.error));
      else resolve(msg.result);
    } else if (msg.method) {
      this.onNotify(msg.method, msg.params || {});
    }
  }
}

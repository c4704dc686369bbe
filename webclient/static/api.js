// The Matrix client-server API with data-center failover.
//
// Every request goes to the data center in use. When it fails — the
// connection cannot be made or breaks, it answers 502/503/504, or it does
// not answer within the attempt timeout — the same request (same method,
// path with its txnId, same body) is sent to the next data center. planb
// promises that a write retried with the same access token and txnId in
// another data center returns the original event, and that a /sync token
// from one data center continues in any other, so this is safe for every
// idempotent request. A POST that is not idempotent (createRoom) is not
// retried after a failure that may have reached the server.
//
// A request that the browser cancels — because the page is going away
// (reload, navigation: pagehide) or for any reason other than the attempt
// timeout — says nothing about the data center and is never counted as its
// failure; otherwise every reload would move to the next data center.
//
// A data center that hangs (accepts connections but does not answer) is
// found two ways: each attempt has a timeout that fits the request (5 s for
// a message, the long-poll plus a few seconds for /sync), and probe() asks
// the /ready of the one in use every few seconds (unless it just answered
// a request); when it does not answer while another does, the page
// switches at once, and the idempotent requests still waiting on the silent
// one are sent again to the new one.
//
// Events (EventTarget): "state" {state, from, to} when the connection state
// changes (ok | switching | offline), "dc" {dc} when the data center in use
// changes, "health" when the recorded failures change (see health()),
// "unauthorized" when the access token is no longer valid.
import { sleep } from './util.js';

/** MatrixError is a Matrix error answer: status, errcode, retryAfterMs. */
export class MatrixError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.name = 'MatrixError';
    this.status = status;
    this.errcode = (body && body.errcode) || (status >= 500 ? 'M_UNAVAILABLE' : 'M_UNKNOWN');
    this.retryAfterMs = body && typeof body.retry_after_ms === 'number' ? body.retry_after_ms : undefined;
    this.body = body;
  }
}

/**
 * UnreachableError means no data center gave an answer within the budget.
 * outcomeUnknown is set for a non-idempotent request that may have reached
 * the server.
 */
export class UnreachableError extends Error {
  constructor(cause, outcomeUnknown = false) {
    super('no data center answers');
    this.name = 'UnreachableError';
    this.cause = cause;
    this.outcomeUnknown = outcomeUnknown;
  }
}

const RETRY_STATUS = new Set([502, 503, 504]);
/** A failed data center is passed over this long while others may work. */
const COOLDOWN_MS = 5000;
const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 4000;
/**
 * START_AVOID_MS: a page (re)loaded this soon after a data center failed
 * starts on another one instead of waiting for it to fail again.
 */
const START_AVOID_MS = 30000;
/** PROBE_INTERVAL_MS: the pause between two rounds of /ready probes. */
const PROBE_INTERVAL_MS = 1000;
/** PROBE_TIMEOUT_MS: a data center whose /ready does not answer in this time is silent. */
const PROBE_TIMEOUT_MS = 2000;
/** SEND_ATTEMPT_MS: one attempt to send a message waits this long for an answer. */
const SEND_ATTEMPT_MS = 5000;
/** SYNC_GRACE_MS: a /sync long-poll may answer this long after its timeout. */
const SYNC_GRACE_MS = 8000;
/**
 * MOVED aborts an attempt still waiting on a data center the page has left:
 * it is sent again to the new one and not counted as a failure.
 */
const MOVED = new DOMException('moved to another data center', 'AbortError');

function trimBase(u) {
  return String(u || '').replace(/\/+$/, '');
}

/**
 * discover reads /.well-known/matrix/client of base and returns
 * {homeserver, dcs: [{name, base_url}]}. A server without
 * org.planb.datacenters is one data center named after its host.
 */
export async function discover(base, signal) {
  const res = await fetch(trimBase(base) + '/.well-known/matrix/client', { signal, cache: 'no-store', credentials: 'omit' });
  if (!res.ok) throw new MatrixError(res.status, null);
  const wk = await res.json();
  const homeserver = trimBase((wk['m.homeserver'] && wk['m.homeserver'].base_url) || base);
  let dcs = Array.isArray(wk['org.planb.datacenters']) ? wk['org.planb.datacenters'] : [];
  dcs = dcs.filter((d) => d && d.base_url).map((d) => ({ name: String(d.name || d.base_url), base_url: trimBase(d.base_url) }));
  if (!dcs.length) dcs = [{ name: new URL(homeserver).host, base_url: homeserver }];
  return { homeserver, dcs };
}

export class Api extends EventTarget {
  /**
   * dcs: [{name, base_url}]; current: the base_url (or name) to start on;
   * failed: {base_url: time (ms)} of recent failures, as health() returned
   * before a reload. The page starts on current unless it failed within
   * START_AVOID_MS and another one has not.
   */
  constructor(dcs, current, failed = {}) {
    super();
    this.dcs = dcs.length ? dcs : [{ name: location.host, base_url: location.origin }];
    this.idx = Math.max(0, this.dcs.findIndex((d) => d.base_url === trimBase(current) || d.name === current));
    this.token = '';
    /** failedAt: index -> time of the last failure (ms). */
    this.failedAt = new Map();
    const now = Date.now();
    this.dcs.forEach((d, i) => {
      const at = Number((failed || {})[d.base_url]);
      if (at && now - at < START_AVOID_MS) this.failedAt.set(i, at);
    });
    if (this.failedAt.has(this.idx)) {
      const healthy = this.dcs.findIndex((_, i) => !this.failedAt.has(i));
      if (healthy >= 0) this.idx = healthy;
    }
    /** leaving: the page is being hidden or unloaded (pagehide). */
    this.leaving = false;
    /** state: ok | switching | offline. */
    this.state = 'ok';
    /** failKind: index -> "net" | "busy" of the last failure. */
    this.failKind = new Map();
    /** retrying counts requests that failed and are being retried. */
    this.retrying = 0;
    /** answeredAt: index -> when its last answer came (ms). */
    this.answeredAt = new Map();
    /** inflight: the idempotent attempts waiting for an answer: {i, ctl}. */
    this.inflight = new Set();
    /** trace: the last attempts, for debugging (planb.chat.api.trace in the console). */
    this.trace = [];
  }

  note(dc, method, path, outcome) {
    this.trace.push(`${new Date().toISOString().slice(11, 23)} ${dc} ${method} ${path.replace(/^\/_matrix\/client\/v3/, '').slice(0, 60)} ${outcome}`);
    if (this.trace.length > 80) this.trace.shift();
  }

  /**
   * setLeaving(true) at pagehide: requests that break from then on are the
   * browser cancelling them, not a data center failing; they wait (they
   * vanish with the page, or carry on if it comes back from the
   * back/forward cache: setLeaving(false) at pageshow).
   */
  setLeaving(on) {
    this.leaving = on;
    if (!on) this.emit('back');
  }

  /** back resolves once the page is shown again (or rejects when signal aborts). */
  back(signal) {
    return new Promise((resolve, reject) => {
      if (!this.leaving) return resolve();
      if (signal?.aborted) return reject(signal.reason);
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.removeEventListener('back', done);
        reject(signal.reason);
      };
      this.addEventListener('back', done, { once: true });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** health returns {base_url: time (ms)} of the recent failures, to persist. */
  health() {
    const out = {};
    for (const [i, at] of this.failedAt) if (this.dcs[i]) out[this.dcs[i].base_url] = at;
    return out;
  }

  /** dc is the data center in use. */
  get dc() {
    return this.dcs[this.idx];
  }

  /** setDataCenters replaces the list, staying on the current one if listed. */
  setDataCenters(dcs) {
    if (!dcs || !dcs.length) return;
    const cur = this.dc && this.dc.base_url;
    this.dcs = dcs;
    this.idx = Math.max(0, dcs.findIndex((d) => d.base_url === cur));
    this.failedAt.clear();
    this.emit('dc', { dc: this.dc });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state, extra = {}) {
    if (this.state === state && !extra.force) return;
    this.state = state;
    this.emit('state', { state, ...extra });
  }

  allFailedRecently() {
    const now = Date.now();
    return this.dcs.every((_, i) => now - (this.failedAt.get(i) || 0) < COOLDOWN_MS);
  }

  /**
   * fail records that data center i failed — kind "net" (no answer) or
   * "busy" (502/503/504) — and moves on if it is the one in use.
   */
  fail(i, kind) {
    const now = Date.now();
    this.failedAt.set(i, now);
    this.failKind.set(i, kind);
    this.emit('health');
    const from = this.dcs[i];
    if (this.idx === i && this.dcs.length > 1) {
      let next = (i + 1) % this.dcs.length;
      for (let k = 1; k < this.dcs.length; k++) {
        const j = (i + k) % this.dcs.length;
        if (now - (this.failedAt.get(j) || 0) >= COOLDOWN_MS) {
          next = j;
          break;
        }
      }
      this.idx = next;
      this.emit('dc', { dc: this.dc, from });
      // What still waits on the one left is sent again to the new one.
      for (const a of this.inflight) if (a.i === i) a.ctl.abort(MOVED);
    }
    // "offline" only when no data center answers at all; one that answers
    // "cannot commit right now" (while the others elect new leaders) is
    // still part of a switch-over.
    const silent = this.allFailedRecently() && this.dcs.every((_, j) => this.failKind.get(j) === 'net');
    this.setState(silent ? 'offline' : 'switching', { from: from.name, to: this.dc.name, force: !silent });
  }

  /**
   * probe checks, every PROBE_INTERVAL_MS until signal aborts, that the data
   * center in use answers: unless it answered a request within the last
   * interval, its /ready is asked. When that gives no answer within
   * PROBE_TIMEOUT_MS (hung or gone), the others are asked, and if one of
   * them answers, the one in use is counted as failed, which switches to
   * another (if none answers, the fault is more likely this device's
   * network, and the requests' own failover decides). The probe uses
   * no-cors: any answer, even an opaque one, shows a data center is alive;
   * only silence counts, since a busy /ready (503) while leaders are
   * elected is no reason to move.
   */
  async probe(signal) {
    while (!signal.aborted) {
      await sleep(PROBE_INTERVAL_MS, signal).catch(() => {});
      if (signal.aborted) return;
      const cur = this.idx;
      if (this.leaving || this.dcs.length < 2 || Date.now() - (this.answeredAt.get(cur) || 0) < PROBE_INTERVAL_MS) continue;
      if (await this.answers(this.dcs[cur].base_url, signal)) continue;
      if (signal.aborted || this.leaving || cur !== this.idx) continue;
      const alive = await Promise.all(this.dcs.map((d, j) => j !== cur && this.answers(d.base_url, signal)));
      if (signal.aborted || this.leaving || cur !== this.idx || !alive.some(Boolean)) continue;
      this.note(this.dcs[cur].name, 'GET', '/ready', 'silent');
      this.fail(cur, 'net');
    }
  }

  /** answers reports whether base's /ready answers within PROBE_TIMEOUT_MS. */
  async answers(base, signal) {
    try {
      const s = AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]);
      await fetch(trimBase(base) + '/ready', { signal: s, cache: 'no-store', credentials: 'omit', mode: 'no-cors' });
      return true;
    } catch {
      return false;
    }
  }

  /** ok records that data center i answered. */
  ok(i) {
    if (this.failedAt.delete(i)) this.emit('health');
    // Recovered once nothing is still failing over.
    if (i === this.idx && this.retrying === 0 && this.state !== 'ok') this.setState('ok', { dc: this.dc.name });
  }

  /**
   * request sends one API request with failover and returns the parsed JSON
   * (or a Blob with opts.as = "blob").
   *
   * opts: query (object), body (JSON value), blob (raw body), contentType,
   * auth (default true), idempotent (default: not POST), budgetMs (how long
   * to keep retrying after the first failure; default 30 s), attemptMs (per
   * attempt without an answer; default 15 s), longPollMs (added to
   * attemptMs), retryQuery (merged into query after a failure: a long-poll
   * is retried with timeout 0, so the new data center answers at once),
   * signal (AbortSignal), as ("json" | "blob").
   *
   * It throws MatrixError for an error answer (or the last 5xx once the
   * budget is spent), UnreachableError when no data center answered, and the
   * signal's reason when aborted.
   */
  async request(method, path, opts = {}) {
    const {
      query, body, blob, contentType, auth = true, idempotent = method !== 'POST',
      budgetMs = 30000, attemptMs = 15000, signal, as = 'json', retryQuery,
    } = opts;
    let { longPollMs = 0 } = opts;
    let firstFail = 0;
    let counted = false; // in this.retrying
    const uncount = () => {
      if (counted) this.retrying--;
      counted = false;
    };
    let backoff = BACKOFF_START_MS;
    let q = query;
    const started = Date.now();
    try {
      for (;;) {
        const r = await this.attempt(method, path, { query: q, longPollMs, body, blob, contentType, auth, attemptMs, signal, as, idempotent });
        if (r.moved) {
          // The page left that data center while this waited: again, now,
          // to the new one (a long-poll without its wait).
          if (retryQuery) {
            q = { ...query, ...retryQuery };
            longPollMs = 0;
          }
          continue;
        }
        if (r.cancelled) {
          // Not the data center's fault: wait for the page to come back
          // (at pagehide), or a moment, and send it again to the same one.
          if (this.leaving) await this.back(signal);
          else if (Date.now() - started >= budgetMs) throw new UnreachableError(new DOMException('cancelled', 'AbortError'));
          else await sleep(BACKOFF_START_MS, signal);
          continue;
        }
        if (r.done) {
          uncount();
          this.ok(r.i);
          if (r.error) throw r.error;
          return r.result;
        }
        const failure = r.failure;
        if (idempotent && !counted) {
          counted = true;
          this.retrying++;
        }
        this.fail(r.i, failure instanceof MatrixError ? 'busy' : 'net');
        if (!idempotent) {
          throw failure instanceof MatrixError ? failure : new UnreachableError(failure, true);
        }
        if (!firstFail) firstFail = Date.now();
        if (retryQuery) {
          q = { ...query, ...retryQuery };
          longPollMs = 0;
        }
        if (Date.now() - firstFail >= budgetMs) {
          throw failure instanceof MatrixError ? failure : new UnreachableError(failure);
        }
        if (this.allFailedRecently()) {
          // Every data center failed within the cooldown: wait before the
          // next round, jittered so that clients do not return in step.
          await sleep(backoff / 2 + Math.random() * (backoff / 2), signal);
          backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        }
      }
    } finally {
      uncount();
    }
  }

  /**
   * attempt sends the request once, to the data center in use. It returns
   * {i, done: true, result | error} for an answer that ends the request
   * (success or a Matrix error other than 502/503/504), {i, cancelled: true}
   * when the browser cancelled it (page going away), or {i, failure}.
   */
  async attempt(method, path, { query, body, blob, contentType, auth, attemptMs, longPollMs, signal, as, idempotent }) {
    if (signal && signal.aborted) throw signal.reason;
    if (this.leaving) await this.back(signal);
    const i = this.idx;
    const url = new URL(trimBase(this.dcs[i].base_url) + path);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
    const headers = {};
    if (auth && this.token) headers.Authorization = 'Bearer ' + this.token;
    let payload;
    if (blob) {
      payload = blob;
      headers['Content-Type'] = contentType || blob.type || 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal.reason);
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctl.abort(new DOMException('no answer in time', 'TimeoutError')), attemptMs + longPollMs);
    const entry = { i, ctl };
    if (idempotent) this.inflight.add(entry);
    let status = 0;
    let result;
    try {
      const res = await fetch(url, { method, headers, body: payload, signal: ctl.signal, cache: 'no-store', credentials: 'omit', mode: 'cors' });
      status = res.status;
      this.answeredAt.set(i, Date.now());
      if (res.ok && as === 'blob') {
        result = await res.blob();
      } else {
        const text = await res.text();
        try {
          result = text ? JSON.parse(text) : {};
        } catch {
          result = null;
        }
      }
    } catch (e) {
      if (signal && signal.aborted) throw signal.reason;
      if (ctl.signal.reason === MOVED) {
        this.note(this.dcs[i].name, method, path, 'moved');
        return { i, moved: true };
      }
      // Our own timer aborts with a TimeoutError; an AbortError (or any
      // error once the page is being hidden) is the browser cancelling.
      if (this.leaving || (e && e.name === 'AbortError')) {
        this.note(this.dcs[i].name, method, path, 'cancelled');
        return { i, cancelled: true };
      }
      this.note(this.dcs[i].name, method, path, String(e.name || e));
      return { i, failure: e }; // a network error or no answer in time
    } finally {
      clearTimeout(timer);
      this.inflight.delete(entry);
      if (signal) signal.removeEventListener('abort', onAbort);
    }
    this.note(this.dcs[i].name, method, path, status);
    if (RETRY_STATUS.has(status)) return { i, failure: new MatrixError(status, result) };
    if (status >= 200 && status < 300) return { i, done: true, result };
    const err = new MatrixError(status, result);
    if (err.errcode === 'M_UNKNOWN_TOKEN' && auth) this.emit('unauthorized', { error: err });
    return { i, done: true, error: err };
  }

  // ---- Matrix endpoints used by the client ----

  static v3(p) {
    return '/_matrix/client/v3' + p;
  }

  login(user, password) {
    return this.request('POST', Api.v3('/login'), {
      auth: false, idempotent: true,
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, initial_device_display_name: 'planb web' },
    });
  }

  /**
   * register signs up with user-interactive auth (m.login.dummy). The first
   * leg costs nothing on the server; the second creates the account.
   */
  async register(username, password) {
    const base = { username, password, initial_device_display_name: 'planb web' };
    let session;
    try {
      return await this.request('POST', Api.v3('/register'), { auth: false, idempotent: true, body: base });
    } catch (e) {
      if (!(e instanceof MatrixError) || e.status !== 401 || !e.body || !e.body.flows) throw e;
      session = e.body.session;
    }
    return this.request('POST', Api.v3('/register'), {
      auth: false, idempotent: true, body: { ...base, auth: { type: 'm.login.dummy', session } },
    });
  }

  logout() {
    return this.request('POST', Api.v3('/logout'), { idempotent: true, body: {}, budgetMs: 5000 });
  }

  sync(since, timeoutMs, filter, signal) {
    return this.request('GET', Api.v3('/sync'), {
      query: { since, timeout: since ? timeoutMs : 0, filter }, longPollMs: since ? timeoutMs : 0, retryQuery: { timeout: 0 },
      budgetMs: Infinity, signal, attemptMs: since ? SYNC_GRACE_MS : 60000,
    });
  }

  /** createRoom is not idempotent: it is sent only to a data center that just answered. */
  async createRoom(body) {
    await this.request('GET', '/_matrix/client/versions', { auth: false, budgetMs: 15000 });
    return this.request('POST', Api.v3('/createRoom'), { body, idempotent: false });
  }

  joinRoom(roomId) {
    return this.request('POST', Api.v3(`/join/${encodeURIComponent(roomId)}`), { body: {}, idempotent: true });
  }

  leaveRoom(roomId) {
    return this.request('POST', Api.v3(`/rooms/${encodeURIComponent(roomId)}/leave`), { body: {}, idempotent: true });
  }

  invite(roomId, userId) {
    return this.request('POST', Api.v3(`/rooms/${encodeURIComponent(roomId)}/invite`), { body: { user_id: userId }, idempotent: true });
  }

  /** sendMessage sends an m.room.message (idempotent by txnId). */
  sendMessage(roomId, txnId, content, signal) {
    return this.sendEvent(roomId, 'm.room.message', txnId, content, signal);
  }

  /** sendEvent sends a room event of any type (idempotent by txnId). */
  sendEvent(roomId, type, txnId, content, signal) {
    return this.request('PUT', Api.v3(`/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`), {
      body: content, budgetMs: Infinity, signal, attemptMs: SEND_ATTEMPT_MS,
    });
  }

  messages(roomId, from, limit) {
    return this.request('GET', Api.v3(`/rooms/${encodeURIComponent(roomId)}/messages`), { query: { from, dir: 'b', limit } });
  }

  /**
   * search finds the messages with the words of term (POST /search,
   * category room_events, newest first): in roomId only, or in every room
   * when roomId is empty; nextBatch continues a previous page. It returns
   * the category's {count, highlights, results, next_batch}. A search only
   * reads, so it may be sent again to another data center.
   */
  async search(term, { roomId = '', nextBatch = '', limit = 0, signal } = {}) {
    const filter = {};
    if (roomId) filter.rooms = [roomId];
    if (limit) filter.limit = limit;
    const res = await this.request('POST', Api.v3('/search'), {
      query: { next_batch: nextBatch }, idempotent: true, budgetMs: 15000, signal,
      body: { search_categories: { room_events: { search_term: term, keys: ['content.body'], order_by: 'recent', filter } } },
    });
    return (res.search_categories && res.search_categories.room_events) || { count: 0, highlights: [], results: [] };
  }

  joinedMembers(roomId) {
    return this.request('GET', Api.v3(`/rooms/${encodeURIComponent(roomId)}/joined_members`));
  }

  /** redact deletes an event (idempotent by txnId). */
  redact(roomId, eventId, txnId, reason) {
    return this.request('PUT', Api.v3(`/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/${encodeURIComponent(txnId)}`), {
      body: reason ? { reason } : {},
    });
  }

  receipt(roomId, eventId) {
    return this.request('POST', Api.v3(`/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(eventId)}`), {
      body: {}, idempotent: true,
    });
  }

  typing(roomId, userId, typing) {
    return this.request('PUT', Api.v3(`/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(userId)}`), {
      body: typing ? { typing: true, timeout: 30000 } : { typing: false }, budgetMs: 3000, attemptMs: 5000,
    });
  }

  profile(userId) {
    return this.request('GET', Api.v3(`/profile/${encodeURIComponent(userId)}`), { auth: false, budgetMs: 5000 });
  }

  /** setProfileField sets my displayname or avatar_url (PUT /profile/{userId}/{field}). */
  setProfileField(userId, field, value) {
    return this.request('PUT', Api.v3(`/profile/${encodeURIComponent(userId)}/${field}`), {
      body: { [field]: value }, budgetMs: 30000,
    });
  }

  /** kick removes userId from the room, saying why (reason may be empty). */
  kick(roomId, userId, reason) {
    return this.request('POST', Api.v3(`/rooms/${encodeURIComponent(roomId)}/kick`), {
      body: reason ? { user_id: userId, reason } : { user_id: userId }, idempotent: true,
    });
  }

  /** sendState sends a state event (PUT /rooms/{roomId}/state/{type}/{stateKey}). */
  sendState(roomId, type, stateKey, content) {
    return this.request('PUT', Api.v3(`/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`), {
      body: content,
    });
  }

  /** forget drops a room I have left from my list for good. */
  forget(roomId) {
    return this.request('POST', Api.v3(`/rooms/${encodeURIComponent(roomId)}/forget`), { body: {}, idempotent: true });
  }

  setAccountData(userId, type, content) {
    return this.request('PUT', Api.v3(`/user/${encodeURIComponent(userId)}/account_data/${encodeURIComponent(type)}`), {
      body: content, budgetMs: 15000,
    });
  }

  /**
   * setRoomMuted mutes a room with a room push rule that does not notify
   * (actions []), or deletes that rule; a rule already gone is no error.
   */
  async setRoomMuted(roomId, muted) {
    const path = Api.v3(`/pushrules/global/room/${encodeURIComponent(roomId)}`);
    if (muted) return this.request('PUT', path, { body: { actions: [] }, budgetMs: 15000 });
    try {
      return await this.request('DELETE', path, { budgetMs: 15000 });
    } catch (e) {
      if (e instanceof MatrixError && e.errcode === 'M_NOT_FOUND') return {};
      throw e;
    }
  }

  // ---- planb's own client API (/_planb/client/v1) ----

  /** incidents returns the outages that affected the user and the compensation rule. */
  incidents() {
    return this.request('GET', '/_planb/client/v1/incidents', { budgetMs: 15000 });
  }

  /**
   * fileReport files a damage report. The same txnId (kept by the caller
   * until an answer comes) returns the report filed the first time, so a
   * retry — here through failover or by the user — never files it twice.
   */
  fileReport(incidentId, txnId, body) {
    return this.request('PUT', `/_planb/client/v1/incidents/${encodeURIComponent(incidentId)}/reports/${encodeURIComponent(txnId)}`, {
      body, budgetMs: 15000,
    });
  }

  /** upload stores a file and returns its mxc:// URI. Retrying makes at worst an unused copy. */
  async upload(file, signal) {
    const res = await this.request('POST', '/_matrix/media/v3/upload', {
      blob: file, contentType: file.type || 'application/octet-stream', query: { filename: file.name }, idempotent: true, budgetMs: Infinity,
      attemptMs: 60000, signal,
    });
    return res.content_uri;
  }

  /** mediaConfig reads the server's media limits ({"m.upload.size": bytes}). */
  mediaConfig() {
    return this.request('GET', '/_matrix/client/v1/media/config', { budgetMs: 15000 });
  }

  /** download fetches an mxc:// URI (authenticated media) as a Blob. */
  download(mxc) {
    const m = /^mxc:\/\/([^/]+)\/([^/?#]+)/.exec(mxc || '');
    if (!m) return Promise.reject(new Error('not an mxc URI: ' + mxc));
    return this.request('GET', `/_matrix/client/v1/media/download/${encodeURIComponent(m[1])}/${encodeURIComponent(m[2])}`, {
      as: 'blob', attemptMs: 60000,
    });
  }
}

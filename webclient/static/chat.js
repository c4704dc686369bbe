// The logged-in app: the top bar with the data center in use and the
// connection status, the chat list, the conversation, the "Report damage"
// view (#/incidents), the /sync loop, the outbox and read receipts,
// desktop notifications (notify.js), message search results opened in
// their room, and the user's language: the switch in the top bar, kept on
// this device and in their account data (which also tells the server the
// language of its notices).
import { discover } from './api.js';
import { avatarEl, avatarSig } from './avatar.js';
import { RoomCache } from './cache.js';
import { forcedLang, lang, setLang, t } from './i18n.js';
import { IncidentPane } from './incidents.js';
import { confirmDialog, ListPane } from './list.js';
import { Media } from './media.js';
import { Model } from './model.js';
import { Notifier } from './notify.js';
import { newTxnId, Outbox } from './outbox.js';
import { profileDialog } from './profile.js';
import { RoomPane } from './room.js';
import { clearOutbox, clearSession, loadLanguageChoice, saveKnownDataCenters, saveLanguageChoice, saveSession } from './store.js';
import { describeError, h, languageButton, localpart, normalizeUserId, relabelDocument, serverOf, sleep } from './util.js';

/** SYNC_TIMEOUT_MS is the /sync long-poll. */
const SYNC_TIMEOUT_MS = 30000;
/** SYNC_FILTER: enough recent messages per room, and every member (for receipts). */
const SYNC_FILTER = JSON.stringify({ room: { timeline: { limit: 30 }, state: { lazy_load_members: false } } });
/**
 * COUNTS_FILTER: a /sync read only for the rooms' notification counts
 * (one event per room, nothing else).
 */
const COUNTS_FILTER = JSON.stringify({
  presence: { types: [] }, account_data: { types: [] },
  room: { timeline: { limit: 1 }, state: { types: [] }, ephemeral: { types: [] }, account_data: { types: [] } },
});
/** How long "now on dcN" stays after a switch. */
const SWITCHED_NOTICE_MS = 6000;
/** Typing: refresh "typing" this often while typing; stop after this idle time. */
const TYPING_REFRESH_MS = 20000;
const TYPING_IDLE_MS = 5000;
/**
 * LANGUAGE_TYPE is the account data that tells the server the user's
 * language ({"language": "ko"|"en"}): it writes incident notices in it.
 */
const LANGUAGE_TYPE = 'org.planb.language';
/** A failed language update is tried again after this long. */
const LANGUAGE_RETRY_MS = 60000;
/** INCIDENTS_HASH is the address of the "Report damage" view. */
const INCIDENTS_HASH = '#/incidents';
/** CACHE_SAVE_MS: the local cache is written at most this often. */
const CACHE_SAVE_MS = 1000;

export class Chat {
  /**
   * session: see store.js; api: an Api with the token set; onLogout(notice)
   * is called after logging out or when the session has ended.
   */
  constructor(root, session, api, { onLogout }) {
    this.root = root;
    this.session = session;
    this.api = api;
    this.onLogout = onLogout;
    this.me = session.userId;
    this.server = serverOf(this.me);
    this.model = new Model(this.me);
    this.outbox = new Outbox(api, this.me);
    this.media = new Media(api);
    this.notifier = new Notifier(this);
    this.abort = new AbortController();
    this.currentRoomId = null;
    this.wantRoom = null;
    this.ready = false;
    this.receiptSent = new Map(); // roomId -> eventId last sent
    this.typingState = { room: null, at: 0, timer: 0 };
    this.switchedTimer = 0;
    this.autoJoining = new Set();
    this.language = { done: false, sending: false, failedAt: 0 };
    this.cache = new RoomCache(this.me);
    this.cacheTimer = 0;
    /** profile: my display name and photo (GET /profile at start). */
    this.profile = { displayname: '', avatarUrl: '' };
    /** base: the connection status (state, text) before the outbox's overlay. */
    this.base = { state: 'connecting', text: '' };
  }

  /**
   * showCached renders the rooms kept in the local cache while the first
   * /sync has not answered (a slow or unreachable data center).
   */
  async showCached(signal) {
    const snap = await this.cache.load();
    if (signal.aborted || this.ready || !this.model.restore(snap)) return;
    this.route(true);
  }

  /** saveCache writes the model to the local cache soon (throttled). */
  saveCache() {
    if (this.cacheTimer || this.abort.signal.aborted) return;
    this.cacheTimer = setTimeout(() => {
      this.cacheTimer = 0;
      if (!this.abort.signal.aborted) this.cache.save(this.model.snapshot());
    }, CACHE_SAVE_MS);
  }

  /** buildShell makes the views (again, after the language changed). */
  buildShell() {
    this.badge = h('span', { id: 'dc-badge', class: 'dc-badge', title: t('dcBadgeTitle') });
    this.status = h('div', { id: 'status', class: 'status', role: 'status', 'aria-live': 'polite', dataset: { state: 'connecting' } });
    const logout = h('button', { type: 'button', id: 'logout', class: 'small', text: t('logout') });
    logout.addEventListener('click', () => this.logout());
    const langBtn = languageButton('lang-btn', (l) => this.chooseLanguage(l));
    // My name and photo; a click edits them.
    this.meAvatar = h('span', { class: 'avatar-slot' });
    this.meName = h('span', { class: 'me-name', text: localpart(this.me) });
    this.meBtn = h('button', { type: 'button', id: 'me', class: 'me-btn', title: this.me, 'aria-haspopup': 'dialog' }, this.meAvatar, this.meName);
    this.meBtn.addEventListener('click', () => profileDialog(this));
    this.list = new ListPane(this);
    this.roomPane = new RoomPane(this);
    const shell = h('div', { class: 'shell', id: 'chat-app' },
      h('header', { class: 'topbar' },
        h('span', { class: 'brand' }, h('img', { src: '/_planb/web/icon.svg', alt: '', width: 24, height: 24 }), h('span', { class: 'brand-name', text: t('appName') })),
        this.badge,
        this.meBtn,
        h('span', { class: 'top-actions' }, this.notifier.button(), langBtn, logout)),
      this.status,
      h('div', { class: 'panes' }, this.list.el, this.roomPane.el, this.incidents.el));
    this.root.replaceChildren(shell);
    this.root.removeAttribute('aria-busy');
    this.renderBadge();
    this.renderMe();
  }

  start() {
    const signal = this.abort.signal;
    this.incidents = new IncidentPane(this);
    this.buildShell();
    this.setStatus('connecting', t('connecting'));

    // The data center in use and the recent failures are kept in the
    // session, so that a reload starts where the page was, if it is healthy.
    this.api.addEventListener('dc', () => {
      this.renderBadge();
      this.session.current = this.api.dc.base_url;
      this.session.failed = this.api.health();
      saveSession(this.session);
    }, { signal });
    this.api.addEventListener('health', () => {
      this.session.failed = this.api.health();
      saveSession(this.session);
    }, { signal });
    // Requests the browser cancels while the page goes away are not failures.
    window.addEventListener('pagehide', () => this.api.setLeaving(true), { signal });
    window.addEventListener('pageshow', () => this.api.setLeaving(false), { signal });
    this.api.addEventListener('state', (e) => this.onApiState(e.detail), { signal });
    this.api.addEventListener('unauthorized', () => this.end(t('errSessionExpired')), { signal });
    this.outbox.addEventListener('change', () => {
      this.renderRoom();
      this.renderStatus();
    }, { signal });
    document.addEventListener('visibilitychange', () => this.onVisible(), { signal });
    window.addEventListener('focus', () => this.onVisible(), { signal });
    window.addEventListener('hashchange', () => this.route(), { signal });

    this.showCached(signal);
    this.loadProfile(signal);
    this.refreshDataCenters();
    this.outbox.run(signal);
    this.api.probe(signal);
    this.syncLoop(signal);
    this.incidents.run(signal);
    this.media.uploadLimit(); // known before the first file is chosen
  }

  /** refreshDataCenters re-reads the list of data centers from the one in use. */
  async refreshDataCenters() {
    try {
      const d = await discover(this.api.dc.base_url, AbortSignal.timeout(8000));
      saveKnownDataCenters(d.homeserver, d.dcs);
      if (JSON.stringify(d.dcs) !== JSON.stringify(this.api.dcs)) {
        this.api.setDataCenters(d.dcs);
        this.session.dcs = d.dcs;
        saveSession(this.session);
      }
    } catch {
      // keep the known list; the failover finds a data center that answers
    }
  }

  /** loadProfile reads my display name and photo (tried again a few times). */
  async loadProfile(signal) {
    for (let i = 0; i < 5 && !signal.aborted; i++) {
      try {
        const p = await this.api.profile(this.me);
        this.setProfile({ displayname: String(p.displayname || ''), avatarUrl: String(p.avatar_url || '') });
        return;
      } catch (e) {
        if (e && e.errcode === 'M_NOT_FOUND') return;
        await sleep(3000, signal).catch(() => {});
      }
    }
  }

  /** setProfile records my profile (loaded or just saved) and shows it. */
  setProfile(p) {
    this.profile = { displayname: p.displayname || '', avatarUrl: p.avatarUrl || '' };
    this.renderMe();
    this.renderRoom();
  }

  /** renderMe shows my name and photo in the top bar. */
  renderMe() {
    const name = this.profile.displayname || localpart(this.me);
    if (this.meName.textContent !== name) this.meName.textContent = name;
    this.meBtn.setAttribute('aria-label', t('myProfileLabel', { name }));
    const sig = avatarSig(name, this.profile.avatarUrl);
    if (this.meAvatar.dataset.sig !== sig) {
      this.meAvatar.dataset.sig = sig;
      this.meAvatar.replaceChildren(avatarEl(this.media, name, this.profile.avatarUrl, 'avatar-xs'));
    }
  }

  renderBadge() {
    const dc = this.api.dc;
    this.badge.textContent = dc.name;
    this.badge.dataset.dc = dc.name;
    this.badge.setAttribute('aria-label', t('onDC', { dc: dc.name }));
    this.badge.dataset.state = this.api.state;
  }

  /** setStatus sets the connection status; renderStatus shows it. */
  setStatus(state, text) {
    this.base = { state, text };
    this.renderStatus();
  }

  /**
   * renderStatus shows the connection status, except that while a message
   * is not yet acknowledged the line says so ("Sending 1 message…") instead
   * of claiming all is well: only "switching", "offline" and "error", which
   * already say that something is wrong, come before it.
   */
  renderStatus() {
    let { state, text } = this.base;
    const n = this.outbox.items.filter((it) => it.state === 'pending' || it.state === 'sending').length;
    if (n && !['switching', 'offline', 'error'].includes(state)) {
      state = 'sending';
      text = t('sendingCount', { n });
    }
    this.status.dataset.state = state;
    if (this.status.textContent !== text) this.status.textContent = text;
    this.badge.dataset.state = this.api.state;
  }

  onApiState({ state, from, to }) {
    clearTimeout(this.switchedTimer);
    if (state === 'switching') {
      this.setStatus('switching', from && to ? t('switchingFromTo', { from, to }) : t('switching'));
    } else if (state === 'offline') {
      this.setStatus('offline', t('offline'));
    } else {
      this.setStatus('switched', t('switched', { dc: this.api.dc.name }));
      this.switchedTimer = setTimeout(() => {
        if (this.base.state === 'switched') this.setStatus('ok', '');
      }, SWITCHED_NOTICE_MS);
    }
    this.renderRoom(); // pending messages say "waiting for a data center"
  }

  async syncLoop(signal) {
    let since;
    let initial = true;
    let backoff = 1000;
    while (!signal.aborted) {
      let res;
      try {
        res = await this.api.sync(since, SYNC_TIMEOUT_MS, SYNC_FILTER, signal);
        backoff = 1000;
      } catch (e) {
        if (signal.aborted || (e && e.errcode === 'M_UNKNOWN_TOKEN')) return;
        this.setStatus('error', t('syncError', { msg: describeError(e) }));
        if (e && e.status >= 400 && e.status < 500 && e.status !== 429 && since) {
          // The server cannot continue from this token: start over.
          since = undefined;
          initial = true;
          this.model = new Model(this.me);
        }
        await sleep(backoff, signal).catch(() => {});
        backoff = Math.min(backoff * 2, 15000);
        continue;
      }
      const diff = this.model.apply(res, initial);
      since = res.next_batch;
      if (initial) {
        initial = false;
        this.ready = true;
        if (this.api.state === 'ok' && this.base.state !== 'switched') this.setStatus('ok', '');
        this.incidents.kick();
      } else if (this.base.state === 'error') {
        this.setStatus('ok', '');
      }
      this.afterSync(diff);
    }
  }

  afterSync(diff) {
    this.settleOutbox();
    this.saveCache();
    for (const room of this.model.rooms.values()) {
      // Direct chats and the server-notices room are joined without asking.
      if (room.membership === 'invite' && (room.inviteDirect || room.isServerNotice) && !this.autoJoining.has(room.id)) {
        this.autoJoining.add(room.id);
        this.acceptInvite(room.id, false);
      }
    }
    this.syncLanguage();
    // A new server notice may be about an incident: read the list again.
    if (diff.incoming.some(({ room }) => room.isServerNotice)) this.incidents.kick();
    this.notifier.notify(diff.notify);
    if (diff.rulesChanged) this.refreshCounts();
    if (diff.incoming.length) {
      const { room, ev } = diff.incoming[diff.incoming.length - 1];
      const c = ev.content || {};
      const body = c.msgtype === 'm.image' ? t('photo') : c.msgtype === 'm.file' ? t('fileNamed', { name: String(c.body || '') }) : String(c.body || '');
      const ann = document.getElementById('announcer');
      if (ann) ann.textContent = t('newMessageFrom', { user: room.displayName(ev.sender), body: body.slice(0, 140) });
    }
    if (this.wantRoom && this.model.rooms.get(this.wantRoom)?.membership === 'join') {
      const id = this.wantRoom;
      this.wantRoom = null;
      this.openRoom(id);
      return;
    }
    if (this.currentRoomId && !this.model.rooms.has(this.currentRoomId)) {
      this.openRoom(null);
      return;
    }
    this.route(true);
  }

  /**
   * refreshCounts reads every room's notification_count again after the
   * user's push rules changed (a room muted here or on another device):
   * the server counts with the new rules, but an incremental /sync only
   * carries the rooms that changed, so the badges would keep the old count.
   */
  async refreshCounts() {
    const model = this.model;
    const seq = model.seq;
    try {
      const res = await this.api.sync(undefined, 0, COUNTS_FILTER, this.abort.signal);
      if (model !== this.model) return;
      model.setCounts(res, seq);
      this.list.update();
      this.updateTitle();
    } catch {
      // the next change of the rooms brings their counts anyway
    }
  }

  /** settleOutbox drops outbox items whose events /sync has brought back. */
  settleOutbox() {
    for (const it of this.outbox.items) {
      // Show a photo we uploaded from its bytes instead of downloading it
      // again: from a URL of the media cache's own, which outlives the
      // outbox's preview (freed soon after the message is sent).
      const url = it.content && it.content.url;
      const file = this.outbox.files.get(it.txnId);
      if (it.kind === 'image' && url && file) this.media.adopt(url, file);
    }
    this.outbox.settle(
      (roomId, eventId) => !!this.model.rooms.get(roomId)?.has(eventId),
      (roomId, txnId) => !!this.model.rooms.get(roomId)?.txnIds.has(txnId));
  }

  pageVisible() {
    return document.visibilityState !== 'hidden';
  }

  onVisible() {
    if (this.pageVisible()) {
      this.markRead();
      this.list.update();
    }
    this.updateTitle();
  }

  /**
   * syncLanguage keeps the language of this page and the user's account
   * data ({"language", "chosen_at"}) in step; it runs after every /sync.
   *
   * A choice made with the switch (on this device: kept in localStorage
   * with its time; on another: chosen_at in the account data) wins over
   * the browser's language, and the newest choice wins over older ones:
   * a newer one in the account data is taken at once (the views change
   * language), a newer one here is written there. Without any choice the
   * page is in the browser's language and writes it once when the account
   * data says another (or none), so that the server's notices come in the
   * language the user reads; not after every change, or two devices in
   * different languages would overwrite each other for ever. ?lang= (for
   * testing) fixes the page's language and is written like the browser's.
   */
  async syncLanguage() {
    const st = this.language;
    if (st.sending || Date.now() - st.failedAt < LANGUAGE_RETRY_MS) return;
    const cur = this.model.accountData.get(LANGUAGE_TYPE) || {};
    const theirs = (cur.language === 'ko' || cur.language === 'en') && Number.isFinite(cur.chosen_at) ? cur : null;
    const mine = forcedLang ? null : loadLanguageChoice();
    let want = null;
    if (theirs && !forcedLang && (!mine || theirs.chosen_at > mine.at)) {
      // chosen on another device (or here, before this page): take it
      saveLanguageChoice(theirs.language, theirs.chosen_at);
      st.done = true;
      if (setLang(theirs.language)) this.relabel();
      return;
    }
    if (mine && (!theirs || mine.at > theirs.chosen_at || mine.language !== theirs.language)) {
      want = { language: mine.language, chosen_at: mine.at };
    } else if (mine || st.done) {
      st.done = true;
      return;
    } else if (cur.language !== lang) {
      want = { language: lang };
    } else {
      st.done = true;
      return;
    }
    st.sending = true;
    try {
      await this.api.setAccountData(this.me, LANGUAGE_TYPE, want);
      this.model.accountData.set(LANGUAGE_TYPE, want);
      st.done = true;
    } catch {
      st.failedAt = Date.now(); // not important enough to bother the user; try again later
    } finally {
      st.sending = false;
    }
  }

  /**
   * chooseLanguage switches the UI to l at once, remembers the choice on
   * this device and writes it to the account data for the other devices.
   */
  chooseLanguage(l) {
    saveLanguageChoice(l, Date.now());
    this.language.failedAt = 0;
    if (setLang(l)) this.relabel();
    document.getElementById('lang-btn')?.focus();
    this.syncLanguage();
  }

  /**
   * relabel builds the views again in the UI language, keeping what they
   * show: the open room with the text being typed, the reply or edit under
   * way, the searches, and the chat's settings and members if they are
   * open (with what is being typed there). The top bar's name and photo
   * are drawn again by buildShell; my profile's dialog, if open, stays
   * as it is (it saves through setProfile, which draws the new top bar).
   */
  relabel() {
    relabelDocument();
    const old = this.roomPane;
    const keep = {
      draft: old.input.value, replyTo: old.replyTo, editing: old.editing,
      listTerm: this.list.search.term, roomTerm: old.search.term, roomSearch: !old.searchBar.hidden,
      settings: old.settings ? old.settings.carry() : null,
    };
    old.settings?.dismiss();
    this.incidents.rebuild();
    this.buildShell();
    this.route(true);
    const pane = this.roomPane;
    if (pane.room && old.room === pane.room) {
      if (keep.editing) pane.setEdit(keep.editing, keep.draft);
      else if (keep.replyTo) pane.setReply(keep.replyTo);
      pane.input.value = keep.draft;
      pane.autosize();
      if (keep.roomSearch) {
        pane.openSearch();
        pane.search.input.value = keep.roomTerm;
        if (keep.roomTerm) pane.search.run(keep.roomTerm);
      }
      if (keep.settings) {
        pane.openSettings();
        pane.settings?.restore(keep.settings);
      }
    }
    if (keep.listTerm) {
      this.list.search.input.value = keep.listTerm;
      this.list.search.run(keep.listTerm);
    }
    const { state } = this.base;
    const again = { connecting: t('connecting'), offline: t('offline'), switching: t('switching'), switched: t('switched', { dc: this.api.dc.name }), ok: '' };
    this.setStatus(state, state in again ? again[state] : this.base.text);
    this.updateTitle();
  }

  /**
   * openResult opens a search result: its room, scrolled to the message
   * (loading older history if needed). from is "room" for the room's own
   * search (which closes), "all" for the chat list's (which stays).
   */
  async openResult(roomId, eventId, from) {
    const room = this.model.rooms.get(roomId);
    if (!room || room.membership !== 'join') return;
    if (from === 'room') this.roomPane.closeSearch();
    if (this.currentRoomId !== roomId) this.openRoom(roomId);
    await this.roomPane.reveal(eventId);
  }

  /** openIncidents shows the "Report damage" view. */
  openIncidents() {
    if (location.hash !== INCIDENTS_HASH) history.pushState(null, '', INCIDENTS_HASH);
    this.route();
    this.incidents.title.focus();
  }

  /** onIncidents is called with the user's incidents each time they are read. */
  onIncidents(incidents) {
    this.list.setIncidents(incidents, location.hash === INCIDENTS_HASH);
    this.renderRoom(); // the notices room offers "Report damage"
  }

  /** openRoom shows a room (null: the list on phones). */
  openRoom(id) {
    const hash = id ? '#/room/' + encodeURIComponent(id) : '#/';
    if (location.hash !== hash) {
      history.pushState(null, '', hash);
    }
    this.route();
    if (id) this.roomPane.input.focus();
  }

  /** route shows what the address names; quiet keeps the focus where it is. */
  route(quiet = false) {
    const incidents = location.hash === INCIDENTS_HASH;
    document.body.classList.toggle('in-incidents', incidents);
    this.incidents.show(incidents);
    this.list.setIncidents(this.incidents.incidents, incidents);
    const m = /^#\/room\/(.+)$/.exec(location.hash);
    const id = m ? decodeURIComponent(m[1]) : null;
    const room = id ? this.model.rooms.get(id) : null;
    if (id && !room && !this.ready) return; // not known yet; route again after the first sync
    // A room I was removed from stays readable until I delete it from the list.
    const shown = room && (room.membership === 'join' || room.membership === 'leave') ? room : null;
    this.currentRoomId = shown ? shown.id : null;
    document.body.classList.toggle('in-room', !!shown);
    this.roomPane.show(shown);
    this.list.update();
    this.markRead();
    this.updateTitle();
    if (!quiet && !shown && !incidents) this.list.el.querySelector('[aria-current="true"], .chat-item')?.focus?.();
  }

  renderRoom() {
    if (this.roomPane && this.roomPane.room) this.roomPane.update();
  }

  updateTitle() {
    let n = 0;
    // The open room counts too while the page is hidden: nobody reads it.
    for (const r of this.model.rooms.values()) if (r.id !== this.currentRoomId || !this.pageVisible()) n += r.unread || 0;
    document.title = n ? `(${n}) ${t('appName')}` : t('appName');
  }

  /** markRead sends a read receipt for the newest message of the open room. */
  async markRead() {
    const room = this.currentRoomId && this.model.rooms.get(this.currentRoomId);
    if (!room || room.membership !== 'join' || !this.pageVisible()) return;
    const ev = room.latestFromOthers(this.me);
    if (!ev) return;
    const mine = room.receipts.get(this.me);
    const at = mine && room.byId.get(mine.eventId);
    if ((at && at.ord >= ev.ord) || this.receiptSent.get(room.id) === ev.event_id) return;
    this.receiptSent.set(room.id, ev.event_id);
    room.unread = 0;
    this.list.update();
    this.updateTitle();
    try {
      await this.api.receipt(room.id, ev.event_id);
      const cur = room.receipts.get(this.me);
      if (!cur || (room.byId.get(cur.eventId)?.ord ?? -Infinity) < ev.ord) room.receipts.set(this.me, { eventId: ev.event_id, ts: Date.now() });
    } catch {
      this.receiptSent.delete(room.id); // try again with the next update
    }
  }

  async loadOlder(room) {
    if (room.loadingOlder || room.reachedStart) return;
    if (!room.prevBatch) {
      room.reachedStart = true;
      this.renderRoom();
      return;
    }
    room.loadingOlder = true;
    this.renderRoom();
    try {
      const from = room.prevBatch;
      const res = await this.api.messages(room.id, from, 30);
      if (room.prevBatch === from) {
        const chunk = res.chunk || [];
        room.add(chunk, true);
        room.prevBatch = res.end;
        if (!res.end || !chunk.length || res.end === from) room.reachedStart = true;
      }
    } catch {
      // keep prevBatch; scrolling up again retries
      await sleep(1000).catch(() => {});
    } finally {
      room.loadingOlder = false;
    }
    if (this.roomPane.room === room) this.roomPane.update();
  }

  typingInput(room, active) {
    const st = this.typingState;
    clearTimeout(st.timer);
    if (!active) {
      if (st.room) {
        this.api.typing(st.room, this.me, false).catch(() => {});
        st.room = null;
      }
      return;
    }
    if (st.room !== room.id || Date.now() - st.at > TYPING_REFRESH_MS) {
      if (st.room && st.room !== room.id) this.api.typing(st.room, this.me, false).catch(() => {});
      st.room = room.id;
      st.at = Date.now();
      this.api.typing(room.id, this.me, true).catch(() => {});
    }
    st.timer = setTimeout(() => this.typingInput(room, false), TYPING_IDLE_MS);
  }

  /** checkUser fails with M_NOT_FOUND (and the user in vars) for an unknown user. */
  async checkUser(userId) {
    try {
      await this.api.profile(userId);
    } catch (e) {
      if (e && e.errcode === 'M_NOT_FOUND') e.vars = { user: userId };
      throw e;
    }
  }

  async startDirect(input) {
    const user = normalizeUserId(input, this.server);
    if (!user || user === this.me) throw Object.assign(new Error(t('errNoSuchUser', { user: user || input })), { errcode: 'M_NOT_FOUND', vars: { user } });
    const existing = this.model.directWith(user);
    if (existing) return this.openRoom(existing.id);
    await this.checkUser(user);
    const res = await this.api.createRoom({ is_direct: true, invite: [user], preset: 'trusted_private_chat' });
    this.openWhenJoined(res.room_id);
  }

  async createGroup(name, inputs) {
    const users = [...new Set(inputs.map((u) => normalizeUserId(u, this.server)).filter((u) => u && u !== this.me))];
    for (const u of users) await this.checkUser(u);
    const res = await this.api.createRoom({ name, invite: users, preset: 'private_chat' });
    this.openWhenJoined(res.room_id);
  }

  openWhenJoined(roomId) {
    if (this.model.rooms.get(roomId)?.membership === 'join') this.openRoom(roomId);
    else this.wantRoom = roomId;
  }

  async invite(roomId, input) {
    const user = normalizeUserId(input, this.server);
    await this.checkUser(user);
    await this.api.invite(roomId, user);
    const ann = document.getElementById('announcer');
    if (ann) ann.textContent = t('invited', { user });
  }

  async leave(roomId) {
    try {
      await this.api.leaveRoom(roomId);
      this.model.rooms.delete(roomId);
      this.openRoom(null);
    } catch (e) {
      this.roomPane.composerError.textContent = describeError(e);
    }
  }

  /**
   * deleteMessage redacts one of the user's messages after asking. The
   * room shows it deleted at once; /sync brings the redaction to everyone.
   */
  async deleteMessage(room, ev) {
    const own = ev.sender === this.me;
    const question = own ? t('deleteConfirm') : t('deleteOthersConfirm', { user: room.displayName(ev.sender) });
    if (!(await confirmDialog('dlg-delete', question, own ? t('deleteMessage') : t('deleteOthers'), true))) return;
    this.roomPane.composerError.textContent = '';
    try {
      const res = await this.api.redact(room.id, ev.event_id, newTxnId());
      room.redact(ev.event_id, { type: 'm.room.redaction', event_id: res.event_id, sender: this.me, redacts: ev.event_id, origin_server_ts: Date.now(), content: {} });
      this.renderRoom();
      this.list.update();
    } catch (e) {
      this.roomPane.composerError.textContent = describeError(e, 'redact');
    }
  }

  /** forget deletes a room I was removed from from my list (POST /forget). */
  async forget(roomId) {
    try {
      await this.api.forget(roomId);
    } catch {
      // gone from this page anyway; an initial /sync does not list it either
    }
    this.model.rooms.delete(roomId);
    this.openRoom(null);
  }

  /**
   * removeReaction redacts one of my reaction events; the chip changes at
   * once, /sync brings the redaction to everyone.
   */
  async removeReaction(room, reactionId) {
    this.roomPane.composerError.textContent = '';
    try {
      const res = await this.api.redact(room.id, reactionId, newTxnId());
      room.redact(reactionId, { type: 'm.room.redaction', event_id: res.event_id, sender: this.me, redacts: reactionId, origin_server_ts: Date.now(), content: {} });
      this.renderRoom();
    } catch (e) {
      this.roomPane.composerError.textContent = describeError(e);
    }
  }

  async acceptInvite(roomId, open = true) {
    const room = this.model.rooms.get(roomId);
    try {
      await this.api.joinRoom(roomId);
      if (open) this.wantRoom = roomId;
    } catch (e) {
      if (room) room.inviteError = describeError(e);
      this.list.update();
    }
  }

  async declineInvite(roomId) {
    try {
      await this.api.leaveRoom(roomId);
      this.model.rooms.delete(roomId);
      this.list.update();
    } catch (e) {
      const room = this.model.rooms.get(roomId);
      if (room) room.inviteError = describeError(e);
      this.list.update();
    }
  }

  async logout() {
    const n = this.outbox.pendingCount();
    if (n && !(await confirmDialog('dlg-logout', t('logoutConfirmPending', { n }), t('logout'), true))) return;
    const api = this.api;
    this.stop();
    try {
      await api.logout();
    } catch {
      // the token dies with the session anyway; nothing else to do
    }
    clearOutbox(this.me);
    await this.cache.clear();
    clearSession();
    this.onLogout('');
  }

  /** end stops the app after the server has ended the session. */
  end(notice) {
    this.stop();
    this.cache.clear();
    clearSession();
    this.onLogout(notice);
  }

  stop() {
    this.abort.abort(new DOMException('stopped', 'AbortError'));
    clearTimeout(this.typingState.timer);
    clearTimeout(this.switchedTimer);
    clearTimeout(this.cacheTimer);
    this.media.release();
    document.body.classList.remove('in-room', 'in-incidents');
    document.title = t('appName');
  }
}

// The conversation: bubbles (own on the right, others on the left) with
// sender, photo, time, day separators and the KakaoTalk-style count of
// members who have not read each message; older history on scroll-up;
// typing; the composer (Enter sends, Shift+Enter is a new line), photos and
// files of any type (refused before the upload when over the server's
// limit); links in messages; replies and edits, with each message's "⋯"
// menu and its reaction chips in msgmenu.js; the header with the topic,
// search in the room, the mute bell, invite, leave and the settings (≡).
import { avatarEl, avatarSig } from './avatar.js';
import { dayKey, fmtDay, fmtSize, fmtTime, t } from './i18n.js';
import { confirmDialog, formDialog, notice } from './list.js';
import { fileChip, imageButton, openLightbox, saveBlob } from './media.js';
import { RoomSettings } from './members.js';
import { isRedacted, replyTarget } from './model.js';
import { messageActions, toggleActions, updateReactions } from './msgmenu.js';
import { bellIcon } from './notify.js';
import { tooLarge } from './outbox.js';
import { searchIcon, SearchView } from './search.js';
import { describeError, h, linkify, lockIcon, reconcile, sleep, stripReplyFallback } from './util.js';

/** The distance from the bottom (px) within which the view follows new messages. */
const FOLLOW_PX = 60;
/** Scrolling closer than this (px) to the top loads older messages. */
const OLDER_PX = 120;
/** A quoted message is cut to this many characters. */
const QUOTE_CHARS = 120;
/** Showing a search result loads at most this many pages of older history. */
const REVEAL_PAGES = 20;
/** …and waits at most this long for them (ms). */
const REVEAL_MS = 60000;

/** isFileType: messages shown as a file chip. */
function isFileType(msgtype) {
  return msgtype === 'm.file' || msgtype === 'm.audio' || msgtype === 'm.video';
}

/** snippet is the one-line summary of a message quoted by a reply. */
function snippet(ev) {
  if (isRedacted(ev)) return t('deleted');
  const c = ev.content || {};
  if (c.msgtype === 'm.image') return t('photo');
  if (isFileType(c.msgtype)) return t('fileNamed', { name: String(c.body || '') });
  const body = replyTarget(ev) ? stripReplyFallback(String(c.body || '')) : String(c.body || '');
  const line = body.split('\n').find((l) => l.trim()) || '';
  return line.length > QUOTE_CHARS ? line.slice(0, QUOTE_CHARS) + '…' : line;
}

/** removedText says who removed me from room, and why if they said. */
function removedText(room) {
  const text = t(room.banned ? 'bannedFromChat' : 'removedFromChat', { user: room.displayName(room.removedBy) });
  return room.removedReason ? t('withReason', { text, reason: room.removedReason }) : text;
}

export class RoomPane {
  constructor(chat) {
    this.chat = chat;
    this.room = null;
    this.stick = true;

    const back = h('button', { type: 'button', id: 'back', class: 'icon back', 'aria-label': t('back'), text: '‹' });
    back.addEventListener('click', () => chat.openRoom(null));
    this.title = h('h2', { id: 'room-title' });
    this.members = h('span', { id: 'room-members', class: 'muted' });
    this.topic = h('span', { id: 'room-topic', class: 'muted room-topic' });
    this.lock = h('span', { id: 'room-encrypted', class: 'room-lock muted', title: t('encryptedChatTitle'), hidden: true }, lockIcon(), h('span', { text: t('encryptedChat') }));
    const invite = h('button', { type: 'button', id: 'invite-btn', class: 'small', text: t('invite') });
    const leave = h('button', { type: 'button', id: 'leave-btn', class: 'small danger', text: t('leave') });
    const settings = h('button', { type: 'button', id: 'settings-btn', class: 'icon', 'aria-label': t('chatSettingsLabel'), title: t('chatSettingsLabel'), 'aria-haspopup': 'dialog', text: '≡' });
    invite.addEventListener('click', () => this.inviteDialog());
    leave.addEventListener('click', () => this.leave());
    settings.addEventListener('click', () => this.openSettings());
    this.inviteBtn = invite;
    this.leaveBtn = leave;
    this.settingsBtn = settings;
    /** settings: the open settings dialog (members.js), or null. */
    this.settings = null;
    // Search in this room: a bar under the header; the results take the
    // place of the timeline until one is opened or the search is closed.
    this.searchBtn = h('button', { type: 'button', id: 'room-search-btn', class: 'icon', 'aria-label': t('searchOpen'), title: t('searchOpen'), 'aria-expanded': 'false', 'aria-controls': 'room-search-bar' }, searchIcon());
    this.search = new SearchView(chat, {
      id: 'room-search', placeholder: t('searchRoom'),
      onToggle: (on) => {
        this.timeline.hidden = on;
        this.typing.hidden = on;
      },
    });
    const closeSearch = h('button', { type: 'button', id: 'room-search-close', class: 'icon', 'aria-label': t('searchClose'), title: t('searchClose'), text: '×' });
    closeSearch.addEventListener('click', () => this.closeSearch(true));
    this.searchBar = h('div', { id: 'room-search-bar', class: 'room-search-bar', hidden: true }, this.search.form, closeSearch);
    this.searchBtn.addEventListener('click', () => (this.searchBar.hidden ? this.openSearch() : this.closeSearch(true)));
    this.searchBar.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        this.closeSearch(true);
      }
    });
    // Mute: a room push rule that does not notify (the server's counts,
    // badges and notifications then leave the room out).
    this.muteBtn = h('button', { type: 'button', id: 'mute-btn', class: 'small icon mute-btn' });
    this.muteBtn.addEventListener('click', () => this.toggleMute());
    // The actions are one group: on a narrow phone it goes under the title
    // as a whole rather than squeezing the title to a letter.
    this.header = h('header', { class: 'room-head' }, back,
      h('div', { class: 'room-titles' }, this.title, h('span', { class: 'room-sub' }, this.lock, this.members, this.topic)),
      h('div', { class: 'room-actions' }, this.searchBtn, this.muteBtn, invite, leave, settings));

    this.items = h('div', { class: 'items' });
    this.timeline = h('div', { id: 'timeline', class: 'timeline', role: 'log', 'aria-live': 'off', 'aria-labelledby': 'room-title', tabindex: '0' }, this.items);
    this.timeline.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.typing = h('p', { id: 'typing', class: 'typing', 'aria-live': 'polite' });

    this.input = h('textarea', { id: 'composer', name: 'message', rows: '1', placeholder: t('message'), 'aria-label': t('message'), enterkeyhint: 'send' });
    this.file = h('input', { id: 'file-input', type: 'file', multiple: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
    const attach = h('button', { type: 'button', id: 'attach-btn', class: 'icon', 'aria-label': t('attachFile'), title: t('attachFile'), text: '+' });
    const send = h('button', { type: 'submit', id: 'send-btn', class: 'primary', text: t('send') });
    this.composerError = h('p', { class: 'error', role: 'alert', id: 'composer-error' });
    // The message being replied to, above the composer.
    this.replyTo = null;
    this.replyName = h('span', { class: 'reply-name' });
    this.replyText = h('span', { class: 'reply-text' });
    const cancelReply = h('button', { type: 'button', id: 'reply-cancel', class: 'icon', 'aria-label': t('cancelReply'), title: t('cancelReply'), text: '×' });
    cancelReply.addEventListener('click', () => {
      this.setReply(null);
      this.setEdit(null);
      this.input.focus();
    });
    this.replyBar = h('div', { id: 'reply-bar', class: 'reply-bar', hidden: true },
      h('div', { class: 'reply-bar-text' }, this.replyName, this.replyText), cancelReply);
    this.form = h('form', { id: 'composer-form', class: 'composer', 'aria-label': t('message') }, attach, this.file, this.input, send);
    attach.addEventListener('click', () => this.file.click());
    this.file.addEventListener('change', () => {
      this.sendFiles([...this.file.files]);
      this.file.value = '';
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && (this.replyTo || this.editing)) {
        e.preventDefault();
        if (this.editing) this.input.value = '';
        this.setReply(null);
        this.setEdit(null);
        return;
      }
      // isComposing: Enter that ends a Korean (IME) composition must not send.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.input.addEventListener('input', () => {
      this.autosize();
      if (this.input.getAttribute('aria-invalid') === 'true' && !tooLarge({ msgtype: 'm.text', body: this.input.value })) {
        this.input.removeAttribute('aria-invalid');
        this.composerError.textContent = '';
      }
      if (this.room) chat.typingInput(this.room, this.input.value !== '');
    });
    this.input.addEventListener('paste', (e) => {
      const files = [...((e.clipboardData && e.clipboardData.files) || [])];
      if (files.length) {
        e.preventDefault();
        this.sendFiles(files);
      }
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      // Blank lines around the message are not part of it.
      const text = this.input.value.replace(/^(?:[ \t]*\n)+/, '').replace(/\s+$/, '');
      if (!this.room || !text) return;
      if (this.editing) {
        this.saveEdit(text);
        return;
      }
      const relatesTo = this.replyTo ? { 'm.in_reply_to': { event_id: this.replyTo.event_id } } : undefined;
      if (tooLarge({ msgtype: 'm.text', body: text, ...(relatesTo ? { 'm.relates_to': relatesTo } : {}) })) {
        // Refused before it is queued: the text stays to be shortened.
        this.composerError.textContent = t('errMessageTooLong');
        this.input.setAttribute('aria-invalid', 'true');
        this.input.focus();
        return;
      }
      this.composerError.textContent = '';
      this.input.removeAttribute('aria-invalid');
      this.stick = true;
      chat.outbox.addText(this.room.id, text, relatesTo);
      this.setReply(null);
      this.input.value = '';
      this.autosize();
      chat.typingInput(this.room, false);
      this.input.focus();
    });

    // In place of the composer where the user cannot write (the server
    // notices room; power levels that forbid it).
    this.readOnlyText = h('p', { id: 'read-only-text' });
    this.reportBtn = h('button', { type: 'button', id: 'notices-report', class: 'small', hidden: true, text: t('reportDamage') });
    this.reportBtn.addEventListener('click', () => chat.openIncidents());
    this.forgetBtn = h('button', { type: 'button', id: 'forget-btn', class: 'small danger', hidden: true, text: t('forgetChat') });
    this.forgetBtn.addEventListener('click', () => chat.forget(this.room.id));
    this.readOnly = h('div', { id: 'read-only', class: 'read-only', hidden: true }, this.readOnlyText, this.reportBtn, this.forgetBtn);

    this.placeholder = h('div', { id: 'no-room', class: 'no-room muted' }, h('p', { text: t('chooseChat') }));
    this.body = h('div', { class: 'room-body', hidden: true }, this.header, this.searchBar, this.search.results, this.timeline, this.typing, this.composerError, this.replyBar, this.form, this.readOnly);
    this.el = h('section', { class: 'room-pane', 'aria-labelledby': 'room-title' }, this.placeholder, this.body);
    // Files dropped on the conversation are sent like chosen ones.
    this.body.addEventListener('dragover', (e) => {
      if (!this.form.hidden && [...(e.dataTransfer?.types || [])].includes('Files')) e.preventDefault();
    });
    this.body.addEventListener('drop', (e) => {
      const files = [...(e.dataTransfer?.files || [])];
      if (this.form.hidden || !files.length) return;
      e.preventDefault();
      this.sendFiles(files);
    });
  }

  /** openSearch shows the room's search bar and puts the focus in it. */
  openSearch() {
    this.searchBar.hidden = false;
    this.searchBtn.setAttribute('aria-expanded', 'true');
    this.search.input.focus();
  }

  /** closeSearch hides the room's search (focus: back to the button). */
  closeSearch(focus = false) {
    this.search.close();
    this.search.roomId = this.room ? this.room.id : null;
    this.searchBar.hidden = true;
    this.searchBtn.setAttribute('aria-expanded', 'false');
    if (focus) this.searchBtn.focus();
  }

  /**
   * reveal scrolls to a message of the open room and marks it, loading
   * older history until it is there (at most REVEAL_PAGES pages). It
   * returns whether the message is shown.
   */
  async reveal(eventId) {
    const room = this.room;
    if (!room) return false;
    let pages = 0;
    const until = Date.now() + REVEAL_MS;
    while (!room.has(eventId) && !room.reachedStart && pages < REVEAL_PAGES && Date.now() < until) {
      if (room.loadingOlder) {
        await sleep(100); // a page asked for by the scroll is on its way
      } else {
        await this.chat.loadOlder(room);
        pages++;
      }
      if (this.room !== room) return false;
    }
    if (!room.has(eventId)) {
      this.composerError.textContent = t('searchNotShown');
      return false;
    }
    this.update();
    return this.jumpTo(eventId);
  }

  /** setReply makes the next message a reply to ev (null: not a reply). */
  setReply(ev) {
    this.replyTo = ev;
    if (ev) this.editing = null;
    this.replyBar.hidden = !ev && !this.editing;
    if (!ev) return;
    this.replyName.textContent = ev.sender === this.chat.me ? t('replyingToMe') : t('replyingTo', { user: this.room.displayName(ev.sender) });
    this.replyText.textContent = snippet(ev);
    this.input.focus();
  }

  /**
   * setEdit puts the composer to editing ev, one of my text messages,
   * whose shown text is text (null: not editing).
   */
  setEdit(ev, text = '') {
    this.editing = ev;
    if (ev) this.replyTo = null;
    this.replyBar.hidden = !ev && !this.replyTo;
    this.replyBar.classList.toggle('editing', !!ev);
    if (!ev) return;
    this.replyName.textContent = t('editingMessage');
    this.replyText.textContent = text;
    this.input.value = text;
    this.autosize();
    this.input.focus();
  }

  /** saveEdit sends text as the replacement of the message being edited. */
  saveEdit(text) {
    const ev = this.editing;
    const shown = this.room.relations().edits.get(ev.event_id);
    const old = (shown ? shown.content['m.new_content'] : ev.content).body;
    if (text !== old) {
      if (tooLarge({ msgtype: 'm.text', body: '* ' + text, 'm.new_content': { msgtype: 'm.text', body: text }, 'm.relates_to': { rel_type: 'm.replace', event_id: ev.event_id } })) {
        this.composerError.textContent = t('errMessageTooLong');
        this.input.setAttribute('aria-invalid', 'true');
        return;
      }
      this.chat.outbox.addEdit(this.room.id, ev.event_id, text);
    }
    this.composerError.textContent = '';
    this.input.removeAttribute('aria-invalid');
    this.setEdit(null);
    this.input.value = '';
    this.autosize();
    this.chat.typingInput(this.room, false);
    this.input.focus();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight, 160) + 'px';
  }

  /**
   * sendFiles queues photos and files, each checked first against the
   * server's upload limit: one over it is refused here, never uploaded.
   */
  async sendFiles(files) {
    const room = this.room;
    if (!room || !files.length) return;
    this.composerError.textContent = '';
    const limit = await this.chat.media.uploadLimit();
    const refused = [];
    for (const f of files) {
      if (limit && f.size > limit) {
        // Sizes that round alike ("256 KB" over "256 KB") say the bytes.
        const size = fmtSize(f.size) === fmtSize(limit) ? t('bytes', { n: f.size.toLocaleString() }) : fmtSize(f.size);
        refused.push(t('errFileTooLarge', { name: f.name, size, limit: fmtSize(limit) }));
        continue;
      }
      this.stick = true;
      await this.chat.outbox.addFile(room.id, f); // in the order chosen
    }
    this.composerError.textContent = refused.join(' ');
  }

  /** toggleMute mutes the room or lets it notify again. */
  async toggleMute() {
    const room = this.room;
    if (!room || this.muteBtn.dataset.busy) return;
    const model = this.chat.model;
    const mute = !model.muted(room.id);
    this.muteBtn.dataset.busy = 'true';
    this.composerError.textContent = '';
    try {
      await this.chat.api.setRoomMuted(room.id, mute);
      // Shown at once; the next /sync brings the rules (and the counts).
      const rules = structuredClone(model.accountData.get('m.push_rules') || {});
      rules.global = rules.global || {};
      const list = (rules.global.room || []).filter((r) => r.rule_id !== room.id);
      if (mute) list.unshift({ rule_id: room.id, actions: [], enabled: true, default: false });
      rules.global.room = list;
      model.accountData.set('m.push_rules', rules);
      const ann = document.getElementById('announcer');
      if (ann) ann.textContent = mute ? t('mutedRoom') : t('unmutedRoom');
    } catch (e) {
      this.composerError.textContent = describeError(e);
    } finally {
      delete this.muteBtn.dataset.busy;
      this.update();
    }
  }

  updateMute(room) {
    const muted = this.chat.model.muted(room.id);
    if (this.muteBtn.dataset.muted === String(muted)) return;
    this.muteBtn.dataset.muted = String(muted);
    this.muteBtn.replaceChildren(bellIcon(!muted));
    this.muteBtn.setAttribute('aria-pressed', String(muted));
    this.muteBtn.setAttribute('aria-label', t('muteRoom'));
    this.muteBtn.title = muted ? t('mutedTitle') : t('unmutedTitle');
  }

  /** show switches to room (or none). */
  show(room) {
    const changed = room !== this.room;
    this.room = room;
    this.placeholder.hidden = !!room;
    this.body.hidden = !room;
    if (changed) {
      this.settings?.dlg.close();
      this.closeSearch();
      this.items.replaceChildren();
      this.stick = true;
      this.input.value = '';
      this.input.removeAttribute('aria-invalid');
      this.setReply(null);
      this.setEdit(null);
      this.composerError.textContent = '';
      this.autosize();
    }
    this.update();
  }

  atBottom() {
    const el = this.timeline;
    return el.scrollHeight - el.scrollTop - el.clientHeight < FOLLOW_PX;
  }

  onScroll() {
    this.stick = this.atBottom();
    if (this.room && this.timeline.scrollTop < OLDER_PX) this.chat.loadOlder(this.room);
  }

  /** update renders the current room again, keeping the reader's place. */
  update() {
    const room = this.room;
    if (!room) return;
    const chat = this.chat;
    const me = chat.me;
    this.title.textContent = room.title(me);
    this.members.textContent = t('members', { n: room.joinedCount() });
    if (this.topic.textContent !== room.topic) this.topic.textContent = room.topic;
    this.topic.title = room.topic;
    this.topic.hidden = !room.topic;
    const notices = room.isServerNotice;
    const removed = room.membership === 'leave';
    const cannotSend = notices || removed || !room.canSend(me);
    // The web client can neither encrypt nor decrypt: typing here would
    // send plain text into a chat its members believe is private.
    const encrypted = room.encrypted && !notices && !removed;
    const readOnly = cannotSend || encrypted;
    this.el.classList.toggle('server-notices', notices);
    this.members.hidden = notices;
    this.lock.hidden = !room.encrypted;
    this.inviteBtn.hidden = notices || cannotSend;
    this.muteBtn.hidden = notices || removed;
    this.updateMute(room);
    this.leaveBtn.hidden = notices || removed;
    this.settingsBtn.hidden = notices || removed;
    // Search results open in a joined room only (chat.openResult).
    this.searchBtn.hidden = removed;
    if (removed && !this.searchBar.hidden) this.closeSearch();
    this.form.hidden = readOnly;
    if (readOnly && this.replyTo) this.setReply(null);
    if (readOnly && this.editing) this.setEdit(null);
    this.readOnly.hidden = !readOnly;
    this.readOnlyText.textContent = notices ? t('noticesReadOnly')
      : removed ? removedText(room) : encrypted ? t('encryptedReadOnly') : t('cannotSend');
    this.readOnly.classList.toggle('removed', removed);
    this.reportBtn.hidden = !notices || chat.incidents.incidents.length === 0;
    this.forgetBtn.hidden = !removed;
    this.settings?.update();

    const el = this.timeline;
    const follow = this.stick || this.atBottom();
    const fromBottom = el.scrollHeight - el.scrollTop;

    const items = [{
      key: 'top',
      create: () => h('p', { class: 'timeline-top muted' }),
      update: (p) => {
        p.textContent = room.loadingOlder ? t('loadingOlder') : room.reachedStart ? t('beginning') : '';
      },
    }];
    const rel = room.relations();
    let prevDay = '';
    let prevSender = '';
    const addDay = (ts) => {
      const dk = dayKey(ts);
      if (dk === prevDay) return;
      prevDay = dk;
      prevSender = '';
      items.push({
        key: 'day-' + dk,
        create: () => h('div', { class: 'day', role: 'separator' }, h('span', { text: fmtDay(ts) })),
      });
    };
    for (const ev of room.timeline) {
      if (!room.shows(ev, me)) continue;
      addDay(ev.origin_server_ts);
      if (ev.type !== 'm.room.message' && ev.type !== 'm.room.encrypted') {
        prevSender = '';
        items.push({
          key: ev.event_id,
          create: () => h('div', { class: 'notice-row', dataset: { eventId: ev.event_id } }, h('span')),
          update: (row) => {
            // Names change with the members' profiles.
            const text = notice(room, ev, me);
            if (row.firstChild.textContent !== text) row.firstChild.textContent = text;
          },
        });
        continue;
      }
      const showSender = ev.sender !== me && ev.sender !== prevSender;
      prevSender = ev.sender;
      items.push({
        key: ev.event_id,
        create: () => this.messageEl(room, ev),
        update: (row) => this.updateMessage(row, room, ev, showSender, rel),
      });
    }
    for (const it of chat.outbox.forRoom(room.id)) {
      if (it.eventId && room.has(it.eventId)) continue;
      addDay(it.ts);
      prevSender = me;
      items.push({
        key: 'txn-' + it.txnId,
        create: () => this.pendingEl(it),
        update: (row) => this.updatePending(row, it),
      });
    }
    reconcile(this.items, items);

    if (follow) {
      el.scrollTop = el.scrollHeight;
      this.stick = true;
    } else {
      el.scrollTop = el.scrollHeight - fromBottom; // older messages came in above
    }
    this.updateTyping();
    // Fill the screen: fetch older history while nothing scrolls yet.
    if (!room.reachedStart && !room.loadingOlder && el.scrollHeight <= el.clientHeight + OLDER_PX) chat.loadOlder(room);
  }

  updateTyping() {
    const room = this.room;
    const others = (room.typing || []).filter((u) => u !== this.chat.me).map((u) => room.displayName(u));
    let text = '';
    if (others.length === 1) text = t('typingOne', { a: others[0] });
    else if (others.length === 2) text = t('typingTwo', { a: others[0], b: others[1] });
    else if (others.length > 2) text = t('typingMany');
    if (this.typing.textContent !== text) this.typing.textContent = text;
    this.typing.dataset.users = others.join(',');
  }

  /** bubbleContent shows ev, with content (its newest edit's) if given. */
  bubbleContent(ev, content) {
    const c = content || ev.content || {};
    if (ev.type === 'm.room.encrypted' && !isRedacted(ev)) {
      return h('span', { class: 'body encrypted', title: t('encryptedChatTitle') }, lockIcon(), h('span', { text: t('encryptedMessage') }));
    }
    if (isRedacted(ev) || !c.msgtype) return h('span', { class: 'body deleted', text: t('deleted') });
    const media = this.chat.media;
    if (c.msgtype === 'm.image' && c.url) {
      const info = c.info || {};
      return imageButton(() => media.url(c.url), {
        name: c.body, w: info.w, h: info.h, onOpen: openLightbox, onBroken: (u) => media.forget(c.url, u),
      });
    }
    if (isFileType(c.msgtype) && c.url) {
      // Sound and video from other clients are offered as files too.
      const info = c.info || {};
      const name = String(c.filename || c.body || '');
      return fileChip({ name, size: info.size }, () => media.save(c.url, name));
    }
    // m.server_notice and every other text: always text, never HTML
    // (formatted_body is not used), newlines kept by the bubble's style,
    // web addresses as links built from the text.
    let text = typeof c.body === 'string' ? c.body : t('unsupported');
    if (replyTarget(ev)) text = stripReplyFallback(text);
    return h('span', { class: 'body' }, linkify(c.msgtype === 'm.emote' ? `* ${text}` : text));
  }

  /** quoteEl is the quote of the message a reply answers; a click shows it. */
  quoteEl(targetId) {
    const q = h('button', { type: 'button', class: 'reply-quote', dataset: { target: targetId } },
      h('span', { class: 'reply-name' }), h('span', { class: 'reply-text' }));
    q.addEventListener('click', () => this.jumpTo(targetId));
    return q;
  }

  updateQuote(q, room) {
    const orig = room.byId.get(q.dataset.target);
    let name = t('originalNotLoaded');
    if (orig) name = orig.sender === this.chat.me ? t('replyToMe') : t('replyTo', { user: room.displayName(orig.sender) });
    const text = orig ? snippet(orig) : '';
    const [n, tx] = q.children;
    if (n.textContent !== name) n.textContent = name;
    if (tx.textContent !== text) tx.textContent = text;
    tx.hidden = !text;
    q.setAttribute('aria-label', `${name}: ${text}. ${t('jumpToOriginal')}`);
    q.disabled = !orig;
  }

  /** jumpTo scrolls to a loaded message and highlights it. */
  jumpTo(eventId) {
    const row = [...this.items.children].find((r) => r.dataset.eventId === eventId);
    if (!row) return false;
    this.stick = false;
    row.scrollIntoView({ block: 'center' });
    row.classList.remove('flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('flash');
    setTimeout(() => row.classList.remove('flash'), 1600);
    return true;
  }

  messageEl(room, ev) {
    const mine = ev.sender === this.chat.me;
    const c = ev.content || {};
    const kind = c.msgtype === 'm.server_notice' ? ' server-notice' : '';
    const target = replyTarget(ev);
    const more = h('button', { type: 'button', class: 'msg-more', 'aria-label': t('messageActions'), title: t('messageActions'), 'aria-expanded': 'false', text: '⋯' });
    const actions = h('div', { class: 'msg-actions', hidden: true });
    more.addEventListener('click', () => toggleActions(this, room, ev, more, actions));
    return h('div', { class: `row ${mine ? 'mine' : 'theirs'}${kind}`, dataset: { eventId: ev.event_id, sender: ev.sender } },
      mine ? null : h('span', { class: 'msg-avatar avatar-slot', hidden: true }),
      h('span', { class: 'sender', hidden: true, text: room.displayName(ev.sender) }),
      h('div', { class: 'line' },
        h('div', { class: `bubble${c.msgtype === 'm.image' ? ' image' : isFileType(c.msgtype) ? ' file' : ''}` }, target ? this.quoteEl(target) : null, this.bubbleContent(ev)),
        h('div', { class: 'meta' },
          h('span', { class: 'unread' }),
          h('time', { datetime: new Date(ev.origin_server_ts).toISOString(), text: fmtTime(ev.origin_server_ts) })),
        more),
      h('div', { class: 'reactions', hidden: true }),
      actions);
  }

  updateMessage(row, room, ev, showSender, rel) {
    const sender = row.querySelector('.sender');
    showSender = showSender && !room.isServerNotice; // the room's name says who writes
    sender.hidden = !showSender;
    const name = room.displayName(ev.sender);
    if (showSender && sender.textContent !== name) sender.textContent = name;
    // The sender's photo (or initial) at the first of their messages in a row.
    const slot = row.querySelector('.msg-avatar');
    if (slot) {
      slot.hidden = !showSender;
      row.classList.toggle('with-avatar', !room.isServerNotice);
      const sig = avatarSig(name, room.avatarOf(ev.sender));
      if (showSender && slot.dataset.sig !== sig) {
        slot.dataset.sig = sig;
        slot.replaceChildren(avatarEl(this.chat.media, name, room.avatarOf(ev.sender), 'avatar-sm'));
      }
    }
    const bubble = row.querySelector('.bubble');
    if (isRedacted(ev) && row.dataset.redacted !== 'true') {
      // Deleted, here or live by someone else: the content goes away.
      row.dataset.redacted = 'true';
      bubble.className = 'bubble';
      bubble.replaceChildren(this.bubbleContent(ev));
      const actions = row.querySelector('.msg-actions');
      actions.hidden = true;
      actions.replaceChildren();
    }
    const edit = !isRedacted(ev) && rel.edits.get(ev.event_id);
    if (edit && row.dataset.edit !== edit.event_id) {
      // Edited, here or by the sender elsewhere: the newest text, marked.
      row.dataset.edit = edit.event_id;
      const q = bubble.querySelector('.reply-quote');
      bubble.replaceChildren(...[q, this.bubbleContent(ev, edit.content['m.new_content']),
        h('span', { class: 'edited muted', text: t('edited') })].filter(Boolean));
    }
    updateReactions(this.chat, row, room, ev, rel.reactions.get(ev.event_id));
    bubble.querySelector('.image-button.broken')?.retry(); // shown again: fetch again
    const can = messageActions(this.chat.me, room, ev);
    const more = row.querySelector('.msg-more');
    more.hidden = !can.reply && !can.del && !can.react;
    const quote = bubble.querySelector('.reply-quote');
    if (quote) this.updateQuote(quote, room);
    const n = room.unreadBy(ev);
    const u = row.querySelector('.unread');
    if (u.dataset.unread !== String(n)) {
      u.dataset.unread = String(n);
      u.textContent = n ? String(n) : '';
      if (n) {
        u.setAttribute('aria-label', t('unreadByLabel', { n }));
        u.title = t('unreadBy', { n });
      } else {
        u.removeAttribute('aria-label');
        u.removeAttribute('title');
      }
    }
  }

  pendingEl(it) {
    const chat = this.chat;
    let content;
    if (it.kind === 'image') {
      const src = () => chat.outbox.previews.get(it.txnId) || (it.content && it.content.url ? chat.media.url(it.content.url) : Promise.reject(new Error('lost')));
      content = imageButton(src, { name: it.name, w: it.w, h: it.h, onOpen: openLightbox });
    } else if (it.kind === 'file') {
      content = fileChip({ name: it.name, size: it.size }, async () => {
        const file = chat.outbox.files.get(it.txnId);
        if (file) saveBlob(file, it.name);
        else if (it.content && it.content.url) await chat.media.save(it.content.url, it.name);
        else throw new Error('lost');
      });
    } else {
      content = h('span', { class: 'body' }, linkify(it.content.body));
    }
    const target = replyTarget(it);
    const retry = h('button', { type: 'button', class: 'link retry', text: t('retry') });
    const discard = h('button', { type: 'button', class: 'link discard', text: t('discard') });
    retry.addEventListener('click', () => chat.outbox.retry(it.txnId));
    discard.addEventListener('click', () => chat.outbox.discard(it.txnId));
    return h('div', { class: 'row mine pending', dataset: { txnId: it.txnId } },
      h('div', { class: 'line' },
        h('div', { class: `bubble${it.kind === 'image' ? ' image' : it.kind === 'file' ? ' file' : ''}` }, target ? this.quoteEl(target) : null, content),
        h('div', { class: 'meta' }, h('span', { class: 'state', role: 'status' }), h('time', { text: fmtTime(it.ts) }))),
      h('div', { class: 'failed-actions', hidden: true }, retry, discard));
  }

  updatePending(row, it) {
    const state = row.querySelector('.state');
    let text = '';
    if (it.state === 'failed') text = t('failed', { msg: it.error || '' });
    else if (it.state === 'sent') text = '';
    else if (this.chat.api.state !== 'ok') text = t('waiting');
    else if ((it.kind === 'image' || it.kind === 'file') && !it.content) text = t('uploading');
    else text = t('pending');
    if (state.textContent !== text) state.textContent = text;
    row.dataset.state = it.state;
    row.classList.toggle('failed', it.state === 'failed');
    row.querySelector('.failed-actions').hidden = it.state !== 'failed';
    // Failed for good (too large): it can only be deleted.
    row.querySelector('.retry').hidden = !!it.permanent;
    const quote = row.querySelector('.reply-quote');
    if (quote && this.room) this.updateQuote(quote, this.room);
  }

  /** openSettings opens the chat's settings and members (members.js). */
  openSettings() {
    const room = this.room;
    if (!room || room.membership !== 'join') return;
    this.settings?.dlg.close();
    const s = new RoomSettings(this.chat, room);
    s.onClose = () => {
      if (this.settings === s) this.settings = null;
      this.settingsBtn.focus();
    };
    this.settings = s;
  }

  inviteDialog() {
    const room = this.room;
    if (!room) return;
    formDialog({
      id: 'dlg-invite', title: t('inviteTitle'), submitText: t('invite'), errorCtx: 'invite',
      fields: [{ id: 'invite-user', label: t('inviteUser'), required: true }],
      onSubmit: (v) => this.chat.invite(room.id, v['invite-user']),
    });
  }

  async leave() {
    const room = this.room;
    if (!room) return;
    if (!(await confirmDialog('dlg-leave', t('leaveConfirm', { name: room.title(this.chat.me) }), t('leave'), true))) return;
    this.chat.leave(room.id);
  }
}

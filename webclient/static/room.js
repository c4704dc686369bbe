// The conversation: bubbles (own on the right, others on the left) with
// sender, time, day separators and the KakaoTalk-style count of members who
// have not read each message; older history on scroll-up; typing; the
// composer (Enter sends, Shift+Enter is a new line) and images.
import { dayKey, fmtDay, fmtTime, t } from './i18n.js';
import { confirmDialog, formDialog, notice } from './list.js';
import { imageButton, openLightbox } from './media.js';
import { h, reconcile } from './util.js';

/** The distance from the bottom (px) within which the view follows new messages. */
const FOLLOW_PX = 60;
/** Scrolling closer than this (px) to the top loads older messages. */
const OLDER_PX = 120;

export class RoomPane {
  constructor(chat) {
    this.chat = chat;
    this.room = null;
    this.stick = true;

    const back = h('button', { type: 'button', id: 'back', class: 'icon back', 'aria-label': t('back'), text: '‹' });
    back.addEventListener('click', () => chat.openRoom(null));
    this.title = h('h2', { id: 'room-title' });
    this.members = h('span', { id: 'room-members', class: 'muted' });
    const invite = h('button', { type: 'button', id: 'invite-btn', class: 'small', text: t('invite') });
    const leave = h('button', { type: 'button', id: 'leave-btn', class: 'small danger', text: t('leave') });
    invite.addEventListener('click', () => this.inviteDialog());
    leave.addEventListener('click', () => this.leave());
    this.inviteBtn = invite;
    this.leaveBtn = leave;
    this.header = h('header', { class: 'room-head' }, back,
      h('div', { class: 'room-titles' }, this.title, this.members), invite, leave);

    this.items = h('div', { class: 'items' });
    this.timeline = h('div', { id: 'timeline', class: 'timeline', role: 'log', 'aria-live': 'off', 'aria-labelledby': 'room-title', tabindex: '0' }, this.items);
    this.timeline.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.typing = h('p', { id: 'typing', class: 'typing', 'aria-live': 'polite' });

    this.input = h('textarea', { id: 'composer', name: 'message', rows: '1', placeholder: t('message'), 'aria-label': t('message'), enterkeyhint: 'send' });
    this.file = h('input', { id: 'file-input', type: 'file', accept: 'image/*', multiple: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
    const attach = h('button', { type: 'button', id: 'attach-btn', class: 'icon', 'aria-label': t('attachImage'), title: t('attachImage'), text: '+' });
    const send = h('button', { type: 'submit', id: 'send-btn', class: 'primary', text: t('send') });
    this.composerError = h('p', { class: 'error', role: 'alert', id: 'composer-error' });
    this.form = h('form', { id: 'composer-form', class: 'composer', 'aria-label': t('message') }, attach, this.file, this.input, send);
    attach.addEventListener('click', () => this.file.click());
    this.file.addEventListener('change', () => {
      this.sendFiles([...this.file.files]);
      this.file.value = '';
    });
    this.input.addEventListener('keydown', (e) => {
      // isComposing: Enter that ends a Korean (IME) composition must not send.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.input.addEventListener('input', () => {
      this.autosize();
      if (this.room) chat.typingInput(this.room, this.input.value !== '');
    });
    this.input.addEventListener('paste', (e) => {
      const files = [...((e.clipboardData && e.clipboardData.files) || [])].filter((f) => f.type.startsWith('image/'));
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
      this.composerError.textContent = '';
      this.stick = true;
      chat.outbox.addText(this.room.id, text);
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
    this.readOnly = h('div', { id: 'read-only', class: 'read-only', hidden: true }, this.readOnlyText, this.reportBtn);

    this.placeholder = h('div', { id: 'no-room', class: 'no-room muted' }, h('p', { text: t('chooseChat') }));
    this.body = h('div', { class: 'room-body', hidden: true }, this.header, this.timeline, this.typing, this.composerError, this.form, this.readOnly);
    this.el = h('section', { class: 'room-pane', 'aria-labelledby': 'room-title' }, this.placeholder, this.body);
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight, 160) + 'px';
  }

  sendFiles(files) {
    if (!this.room) return;
    this.composerError.textContent = '';
    for (const f of files) {
      if (!f.type.startsWith('image/')) {
        this.composerError.textContent = t('errNotImage');
        continue;
      }
      this.stick = true;
      this.chat.outbox.addImage(this.room.id, f);
    }
  }

  /** show switches to room (or none). */
  show(room) {
    const changed = room !== this.room;
    this.room = room;
    this.placeholder.hidden = !!room;
    this.body.hidden = !room;
    if (changed) {
      this.items.replaceChildren();
      this.stick = true;
      this.input.value = '';
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
    const notices = room.isServerNotice;
    const readOnly = notices || !room.canSend(me);
    this.el.classList.toggle('server-notices', notices);
    this.members.hidden = notices;
    this.inviteBtn.hidden = notices || readOnly;
    this.leaveBtn.hidden = notices;
    this.form.hidden = readOnly;
    this.readOnly.hidden = !readOnly;
    this.readOnlyText.textContent = notices ? t('noticesReadOnly') : t('cannotSend');
    this.reportBtn.hidden = !notices || chat.incidents.incidents.length === 0;

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
      if (ev.type !== 'm.room.message') {
        prevSender = '';
        items.push({ key: ev.event_id, create: () => h('div', { class: 'notice-row', dataset: { eventId: ev.event_id } }, h('span', { text: notice(room, ev, me) })) });
        continue;
      }
      const showSender = ev.sender !== me && ev.sender !== prevSender;
      prevSender = ev.sender;
      items.push({
        key: ev.event_id,
        create: () => this.messageEl(room, ev),
        update: (row) => this.updateMessage(row, room, ev, showSender),
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

  bubbleContent(ev) {
    const c = ev.content || {};
    if (!c.msgtype) return h('span', { class: 'body deleted', text: t('deleted') });
    if (c.msgtype === 'm.image' && c.url) {
      const info = c.info || {};
      return imageButton(this.chat.media.url(c.url), { name: c.body, w: info.w, h: info.h, onOpen: openLightbox });
    }
    // m.server_notice and every other text: always text, never HTML
    // (formatted_body is not used), newlines kept by the bubble's style.
    const text = typeof c.body === 'string' ? c.body : t('unsupported');
    return h('span', { class: 'body', text: c.msgtype === 'm.emote' ? `* ${text}` : text });
  }

  messageEl(room, ev) {
    const mine = ev.sender === this.chat.me;
    const c = ev.content || {};
    const kind = c.msgtype === 'm.server_notice' ? ' server-notice' : '';
    return h('div', { class: `row ${mine ? 'mine' : 'theirs'}${kind}`, dataset: { eventId: ev.event_id, sender: ev.sender } },
      h('span', { class: 'sender', hidden: true, text: room.displayName(ev.sender) }),
      h('div', { class: 'line' },
        h('div', { class: `bubble${c.msgtype === 'm.image' ? ' image' : ''}` }, this.bubbleContent(ev)),
        h('div', { class: 'meta' },
          h('span', { class: 'unread' }),
          h('time', { datetime: new Date(ev.origin_server_ts).toISOString(), text: fmtTime(ev.origin_server_ts) }))));
  }

  updateMessage(row, room, ev, showSender) {
    const sender = row.firstElementChild;
    showSender = showSender && !room.isServerNotice; // the room's name says who writes
    sender.hidden = !showSender;
    if (showSender) sender.textContent = room.displayName(ev.sender);
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
      const src = chat.outbox.previews.get(it.txnId) || (it.content && it.content.url ? chat.media.url(it.content.url) : Promise.reject(new Error('lost')));
      content = imageButton(src, { name: it.name, w: it.w, h: it.h, onOpen: openLightbox });
    } else {
      content = h('span', { class: 'body', text: it.content.body });
    }
    const retry = h('button', { type: 'button', class: 'link retry', text: t('retry') });
    const discard = h('button', { type: 'button', class: 'link discard', text: t('discard') });
    retry.addEventListener('click', () => chat.outbox.retry(it.txnId));
    discard.addEventListener('click', () => chat.outbox.discard(it.txnId));
    return h('div', { class: 'row mine pending', dataset: { txnId: it.txnId } },
      h('div', { class: 'line' },
        h('div', { class: `bubble${it.kind === 'image' ? ' image' : ''}` }, content),
        h('div', { class: 'meta' }, h('span', { class: 'state', role: 'status' }), h('time', { text: fmtTime(it.ts) }))),
      h('div', { class: 'failed-actions', hidden: true }, retry, discard));
  }

  updatePending(row, it) {
    const state = row.querySelector('.state');
    let text = '';
    if (it.state === 'failed') text = t('failed', { msg: it.error || '' });
    else if (it.state === 'sent') text = '';
    else if (this.chat.api.state !== 'ok') text = t('waiting');
    else if (it.kind === 'image' && !it.content) text = t('uploading');
    else text = t('pending');
    if (state.textContent !== text) state.textContent = text;
    row.dataset.state = it.state;
    row.classList.toggle('failed', it.state === 'failed');
    row.querySelector('.failed-actions').hidden = it.state !== 'failed';
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

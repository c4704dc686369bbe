// The chat list (sorted by the latest message, with unread badges and the
// last message) and the dialogs that start chats.
import { avatarEl, avatarSig, initialOf } from './avatar.js';
import { fmtListTime, t } from './i18n.js';
import { SearchView } from './search.js';
import { describeError, h, localpart, lockIcon, reconcile } from './util.js';

/** preview is the one-line summary of an event for the chat list. */
export function preview(room, ev, me) {
  if (!ev) return '';
  const edit = ev.type === 'm.room.message' && ev.content && room.relations().edits.get(ev.event_id);
  const c = (edit && edit.content['m.new_content']) || ev.content || {};
  const who = ev.sender === me ? t('you') : room.displayName(ev.sender);
  if (ev.type === 'm.room.encrypted') return `${who}: ${t('encryptedMessage')}`;
  if (ev.type === 'm.room.message') {
    if (!c.msgtype) return t('deleted');
    if (c.msgtype === 'm.server_notice') return String(c.body || '').split('\n')[0];
    if (c.msgtype === 'm.image') return `${who}: ${t('photo')}`;
    if (c.msgtype === 'm.file' || c.msgtype === 'm.audio' || c.msgtype === 'm.video') return `${who}: ${t('fileNamed', { name: String(c.body || '') })}`;
    return room.isDirect(me) && ev.sender !== me ? String(c.body || '') : `${who}: ${c.body || ''}`;
  }
  return notice(room, ev, me);
}

/**
 * notice is the sentence for a membership or room event. When the user is
 * the one who acted (or was acted on), the sentence is written for that:
 * Korean says "내가 …" / "…님이 나를 …", not "나님이 …".
 */
export function notice(room, ev, me) {
  const c = ev.content || {};
  const name = (u) => room.displayName(u);
  const byMe = ev.sender === me;
  switch (ev.type) {
    case 'm.room.create':
      return byMe ? t('createdMe') : t('created', { user: name(ev.sender) });
    case 'm.room.name':
      return byMe ? t('renamedMe', { name: c.name || '' }) : t('renamed', { user: name(ev.sender), name: c.name || '' });
    case 'm.room.topic':
      return byMe ? t('topicMe', { topic: c.topic || '' }) : t('topicSet', { user: name(ev.sender), topic: c.topic || '' });
    case 'm.room.member': {
      const target = ev.state_key;
      const targetName = c.displayname || name(target);
      const why = (text) => (typeof c.reason === 'string' && c.reason.trim() ? t('withReason', { text, reason: c.reason.trim() }) : text);
      // acted is the sentence of key for one member acting on another:
      // key+"Me" when I acted, key+"You" when it was done to me.
      const acted = (key) => {
        if (byMe) return why(t(key + 'Me', { target: name(target) }));
        if (target === me) return why(t(key + 'You', { user: name(ev.sender) }));
        return why(t(key, { user: name(ev.sender), target: name(target) }));
      };
      const prev = ev.unsigned && ev.unsigned.prev_content && ev.unsigned.prev_content.membership;
      switch (c.membership) {
        case 'join':
          return target === me ? t('joinedMe') : t('joined', { user: targetName });
        case 'invite':
          if (byMe) return t('invitedUserMe', { target: targetName });
          if (target === me) return t('invitedMe', { user: name(ev.sender) });
          return t('invitedUser', { user: name(ev.sender), target: targetName });
        case 'leave':
          if (ev.sender === target) {
            if (prev === 'invite') return target === me ? t('declinedMe') : t('declined', { user: name(target) });
            return target === me ? t('leftMe') : t('left', { user: name(target) });
          }
          if (prev === 'ban') return acted('unbanned');
          if (prev === 'invite') return acted('uninvited');
          return acted('kicked');
        case 'ban':
          return acted('banned');
      }
    }
  }
  return t('unsupported');
}

/**
 * formDialog opens a modal form. fields: [{id, label, value, type}];
 * onSubmit(values) may throw to show an error (ctx/vars go to
 * describeError). The dialog closes when onSubmit resolves.
 */
export function formDialog({ id, title, fields, submitText, onSubmit, errorCtx = '' }) {
  const inputs = fields.map((f) => h('input', { id: f.id, name: f.id, type: f.type || 'text', value: f.value || '', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: f.required ? true : null }));
  const err = h('p', { class: 'error', role: 'alert', id: id + '-error' });
  const ok = h('button', { type: 'submit', class: 'primary', id: id + '-submit', text: submitText });
  const cancel = h('button', { type: 'button', id: id + '-cancel', text: t('cancel') });
  const form = h('form', { method: 'dialog', novalidate: true },
    h('h2', { id: id + '-title', text: title }),
    fields.map((f, i) => h('div', { class: 'field' }, h('label', { for: f.id, text: f.label }), inputs[i])),
    err, h('div', { class: 'actions' }, cancel, ok));
  const dlg = h('dialog', { id, class: 'form-dialog', 'aria-labelledby': id + '-title' }, form);
  cancel.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    ok.disabled = true;
    const values = Object.fromEntries(fields.map((f, i) => [f.id, inputs[i].value.trim()]));
    try {
      await onSubmit(values);
      dlg.close();
    } catch (ex) {
      err.textContent = describeError(ex, errorCtx, ex.vars || {});
      inputs[0].focus();
    } finally {
      ok.disabled = false;
    }
  });
  document.body.append(dlg);
  dlg.showModal();
  inputs[0].focus();
  return dlg;
}

/**
 * confirmDialog asks a yes/no question in a modal dialog (not
 * window.confirm, which blocks the page and cannot be styled or labelled)
 * and resolves to true when confirmed.
 */
export function confirmDialog(id, text, okText, danger = false) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', id: id + '-ok', class: danger ? 'primary danger-fill' : 'primary', text: okText });
    const cancel = h('button', { type: 'button', id: id + '-cancel', text: t('cancel') });
    const msg = h('p', { id: id + '-text', text });
    const dlg = h('dialog', { id, class: 'form-dialog', role: 'alertdialog', 'aria-describedby': id + '-text' }, msg, h('div', { class: 'actions' }, cancel, ok));
    let answer = false;
    ok.addEventListener('click', () => {
      answer = true;
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

function avatar(name, notices = false) {
  if (notices) return h('span', { class: 'avatar notices', 'aria-hidden': 'true', text: '!' });
  return h('span', { class: 'avatar', 'aria-hidden': 'true', text: initialOf(name) });
}

/** peerOf is the other person of a 1:1 chat ("" for a group). */
function peerOf(room, me) {
  if (!room.isDirect(me)) return '';
  return room.activeMembers().find((u) => u !== me) || '';
}

/** ListPane is the left column. chat is the controller (chat.js). */
export class ListPane {
  constructor(chat) {
    this.chat = chat;
    this.list = h('ul', { id: 'chat-list', class: 'chat-list', 'aria-labelledby': 'chats-title' });
    this.empty = h('p', { class: 'empty muted', id: 'no-chats', text: t('noChats') });
    const newChat = h('button', { type: 'button', id: 'new-chat', class: 'primary small', text: t('newChat') });
    const newGroup = h('button', { type: 'button', id: 'new-group', class: 'small', text: t('newGroup') });
    newChat.addEventListener('click', () => this.newChatDialog());
    newGroup.addEventListener('click', () => this.newGroupDialog());
    // "Report damage", shown only to users whom an outage affected.
    this.incidentsBadge = h('span', { class: 'badge', id: 'incidents-badge' });
    this.incidentsSub = h('span', { class: 'incidents-sub' });
    this.incidentsBtn = h('button', { type: 'button', id: 'incidents-btn', class: 'incidents-banner', hidden: true },
      h('span', { class: 'incidents-top' }, h('span', { class: 'incidents-name', text: t('reportDamage') }), this.incidentsBadge),
      this.incidentsSub);
    this.incidentsBtn.addEventListener('click', () => this.chat.openIncidents());
    // Search in every room: the results take the place of the chat list.
    this.search = new SearchView(chat, {
      id: 'search', placeholder: t('searchAll'), clearable: true,
      onToggle: (on) => {
        this.list.hidden = on;
        this.empty.hidden = on || this.chat.model.sorted().length > 0;
      },
    });
    this.el = h('nav', { class: 'list-pane', 'aria-labelledby': 'chats-title' },
      h('div', { class: 'list-head' }, h('h2', { id: 'chats-title', text: t('chats') }), newChat, newGroup),
      h('div', { class: 'list-search' }, this.search.form),
      this.incidentsBtn, this.search.results, this.list, this.empty);
  }

  /** setIncidents shows the banner for the user's incidents (none: hidden). */
  setIncidents(incidents, current) {
    const n = incidents.length;
    const b = this.incidentsBtn;
    b.hidden = n === 0;
    b.dataset.count = String(n);
    b.dataset.ongoing = String(incidents.some((mi) => !mi.incident.ended_at));
    this.incidentsBadge.textContent = String(n);
    this.incidentsSub.textContent = n === 1 ? t('incidentsBannerOne') : t('incidentsBannerMany', { n });
    b.setAttribute('aria-label', `${t('reportDamage')}. ${this.incidentsSub.textContent}`);
    if (current) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }

  update() {
    const { model, me } = this.chat;
    const rooms = model.sorted();
    this.empty.hidden = rooms.length > 0 || this.search.shown;
    reconcile(this.list, rooms.map((room) => ({
      key: room.id + '|' + room.membership,
      create: () => (room.membership === 'invite' ? this.inviteItem(room) : this.roomItem(room)),
      update: (li) => (room.membership === 'invite' ? this.updateInvite(li, room) : this.updateRoom(li, room)),
    })));
  }

  roomItem(room) {
    const btn = h('button', { type: 'button', class: 'chat-item', dataset: { roomId: room.id } },
      h('span', { class: 'avatar-slot' }),
      h('span', { class: 'chat-main' },
        h('span', { class: 'chat-top' }, h('span', { class: 'lock', title: t('encryptedChatTitle'), hidden: true }, lockIcon()),
          h('span', { class: 'chat-name' }), h('time', { class: 'chat-time' })),
        h('span', { class: 'chat-bottom' }, h('span', { class: 'chat-preview' }), h('span', { class: 'badge', hidden: true }))));
    btn.addEventListener('click', () => this.chat.openRoom(room.id));
    return h('li', {}, btn);
  }

  updateRoom(li, room) {
    const { me } = this.chat;
    const btn = li.firstElementChild;
    const title = room.title(me);
    const last = room.last(me);
    const unread = this.chat.currentRoomId === room.id && this.chat.pageVisible() ? 0 : room.unread;
    const notices = room.isServerNotice;
    btn.classList.toggle('notices-room', notices);
    btn.querySelector('.chat-name').textContent = title;
    btn.querySelector('.lock').hidden = !room.encrypted;
    const slot = btn.querySelector('.avatar-slot');
    // A 1:1 chat shows the other person's photo; a group its initial.
    const peer = notices ? '' : peerOf(room, me);
    const letter = notices ? 'n:' : peer ? 'p:' + avatarSig(title, room.avatarOf(peer)) : 'r:' + initialOf(title);
    if (slot.dataset.letter !== letter) {
      slot.replaceChildren(peer ? avatarEl(this.chat.media, title, room.avatarOf(peer)) : avatar(title, notices));
      slot.dataset.letter = letter;
    }
    btn.querySelector('.chat-preview').textContent = preview(room, last, me);
    const time = btn.querySelector('.chat-time');
    time.textContent = fmtListTime(room.lastTs());
    if (room.lastTs()) time.dateTime = new Date(room.lastTs()).toISOString();
    const badge = btn.querySelector('.badge');
    badge.hidden = !unread;
    badge.textContent = unread > 99 ? '99+' : String(unread);
    badge.dataset.unread = String(unread);
    const label = [title, unread ? t('unreadBadge', { n: unread }) : '', preview(room, last, me)].filter(Boolean).join('. ');
    btn.setAttribute('aria-label', label);
    if (this.chat.currentRoomId === room.id) btn.setAttribute('aria-current', 'true');
    else btn.removeAttribute('aria-current');
  }

  inviteItem(room) {
    const accept = h('button', { type: 'button', class: 'primary small accept', text: t('accept') });
    const decline = h('button', { type: 'button', class: 'small decline', text: t('decline') });
    accept.addEventListener('click', () => this.chat.acceptInvite(room.id));
    decline.addEventListener('click', () => this.chat.declineInvite(room.id));
    return h('li', { class: 'invite-item', dataset: { roomId: room.id } },
      h('span', { class: 'avatar-slot' }),
      h('span', { class: 'chat-main' }, h('span', { class: 'chat-name' }), h('span', { class: 'chat-preview' }),
        h('span', { class: 'error', role: 'alert' })),
      h('span', { class: 'invite-actions' }, accept, decline));
  }

  updateInvite(li, room) {
    const title = room.title(this.chat.me);
    li.querySelector('.chat-name').textContent = title;
    li.querySelector('.chat-preview').textContent = t('invitedBy', { user: room.displayName(room.inviter) || localpart(room.inviter) });
    li.querySelector('.error').textContent = room.inviteError || '';
    const slot = li.querySelector('.avatar-slot');
    if (!slot.firstChild) slot.append(avatar(title, room.isServerNotice));
  }

  newChatDialog() {
    formDialog({
      id: 'dlg-new-chat', title: t('newChatTitle'), submitText: t('start'), errorCtx: 'invite',
      fields: [{ id: 'new-chat-user', label: t('newChatUser', { server: this.chat.server }), required: true }],
      onSubmit: (v) => this.chat.startDirect(v['new-chat-user']),
    });
  }

  newGroupDialog() {
    formDialog({
      id: 'dlg-new-group', title: t('newGroupTitle'), submitText: t('create'), errorCtx: 'invite',
      fields: [{ id: 'new-group-name', label: t('groupName'), required: true }, { id: 'new-group-members', label: t('groupMembers') }],
      onSubmit: (v) => this.chat.createGroup(v['new-group-name'], v['new-group-members'].split(/[\s,]+/).filter(Boolean)),
    });
  }
}

// The chat's settings and members (the ≡ of the conversation's header): its
// name (m.room.name) and topic (m.room.topic), editable by those whose power
// level allows it; the joined members with their names, photos and power
// marks; and removing a member (a kick, with a reason) for those who may.
// The controls a user may not use are not shown; a refusal by the server
// (403) is said in the dialog.
import { avatarEl, avatarSig } from './avatar.js';
import { t } from './i18n.js';
import { describeError, h, reconcile } from './util.js';

/** TOPIC_MAX: the longest topic the dialog takes (characters). */
const TOPIC_MAX = 500;
const NAME_MAX = 100;

/** powerMark is the mark next to a member with power level n ("" for none). */
export function powerMark(n) {
  if (n >= 100) return t('roleAdmin');
  if (n >= 50) return t('roleModerator');
  return '';
}

/** RoomSettings is the open settings dialog of one room. */
export class RoomSettings {
  constructor(chat, room) {
    this.chat = chat;
    this.room = room;
    /** kicking: the open removal dialog {userId, reason (its input), dlg}, or null. */
    this.kicking = null;
    this.nameInput = h('input', { id: 'settings-name', type: 'text', maxlength: String(NAME_MAX), autocomplete: 'off', value: room.name });
    this.topicInput = h('textarea', { id: 'settings-topic', rows: '2', maxlength: String(TOPIC_MAX), text: room.topic });
    this.nameText = h('p', { id: 'settings-name-text', class: 'settings-value' });
    this.topicText = h('p', { id: 'settings-topic-text', class: 'settings-value' });
    this.hint = h('p', { id: 'settings-hint', class: 'muted small-text', text: t('settingsAdminsOnly') });
    this.save = h('button', { type: 'submit', id: 'settings-save', class: 'primary small', text: t('save') });
    this.err = h('p', { class: 'error', role: 'alert', id: 'settings-error' });
    this.saved = h('p', { class: 'ok', role: 'status', id: 'settings-saved' });
    this.nameLabel = h('label', { id: 'settings-name-label', for: 'settings-name', text: t('chatName') });
    this.topicLabel = h('label', { id: 'settings-topic-label', for: 'settings-topic', text: t('chatTopic') });
    this.nameText.setAttribute('aria-labelledby', 'settings-name-label settings-name-text');
    this.topicText.setAttribute('aria-labelledby', 'settings-topic-label settings-topic-text');
    this.form = h('form', { id: 'settings-form', class: 'settings-form', novalidate: true },
      h('div', { class: 'field' }, this.nameLabel, this.nameInput, this.nameText),
      h('div', { class: 'field' }, this.topicLabel, this.topicInput, this.topicText),
      this.hint, this.err, this.saved, h('div', { class: 'actions' }, this.save));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveSettings();
    });
    this.count = h('h3', { id: 'members-title' });
    this.list = h('ul', { id: 'member-list', class: 'member-list', 'aria-labelledby': 'members-title' });
    this.memberErr = h('p', { class: 'error', role: 'alert', id: 'members-error' });
    const close = this.closeBtn = h('button', { type: 'button', id: 'dlg-settings-close', class: 'icon', 'aria-label': t('close'), title: t('close'), text: '×' });
    this.title = h('h2', { id: 'dlg-settings-title', text: t('chatSettings') });
    this.dlg = h('dialog', { id: 'dlg-settings', class: 'form-dialog settings-dialog', 'aria-labelledby': 'dlg-settings-title' },
      h('div', { class: 'settings-head' }, this.title, close),
      this.form, h('section', { class: 'members', 'aria-labelledby': 'members-title' }, this.count, this.memberErr, this.list));
    close.addEventListener('click', () => this.dlg.close());
    this.dlg.addEventListener('close', () => {
      this.dlg.remove();
      this.onClose?.();
    });
    document.body.append(this.dlg);
    this.update();
    this.dlg.showModal();
    close.focus();
  }

  /** update shows the room as it is now (called after every /sync). */
  update() {
    const { room } = this;
    const me = this.chat.me;
    if (room.membership !== 'join') {
      this.dlg.close();
      return;
    }
    const canName = room.canSetState(me, 'm.room.name');
    const canTopic = room.canSetState(me, 'm.room.topic');
    this.nameInput.hidden = !canName;
    this.nameText.hidden = canName;
    this.topicInput.hidden = !canTopic;
    this.topicText.hidden = canTopic;
    this.nameText.textContent = room.name || t('noChatName');
    this.topicText.textContent = room.topic || t('noTopic');
    this.nameText.classList.toggle('muted', !room.name);
    this.topicText.classList.toggle('muted', !room.topic);
    this.save.hidden = !canName && !canTopic;
    this.hint.hidden = canName && canTopic;

    const members = [...room.members].filter(([, m]) => m.membership === 'join').map(([id]) => id);
    members.sort((a, b) => room.powerOf(b) - room.powerOf(a) || (a === me ? -1 : b === me ? 1 : 0) ||
      room.displayName(a).localeCompare(room.displayName(b)));
    this.count.textContent = t('membersCount', { n: members.length });
    reconcile(this.list, members.map((id) => ({
      key: id,
      create: () => this.memberEl(id),
      update: (li) => this.updateMember(li, id),
    })));
  }

  memberEl(id) {
    const kick = h('button', { type: 'button', class: 'small danger member-kick', text: t('kick') });
    kick.addEventListener('click', () => this.kickDialog(id));
    return h('li', { class: 'member', dataset: { userId: id } },
      h('span', { class: 'avatar-slot' }),
      h('span', { class: 'member-main' },
        h('span', { class: 'member-top' }, h('span', { class: 'member-name' }), h('span', { class: 'member-role' })),
        h('span', { class: 'member-id muted', text: id })),
      kick);
  }

  updateMember(li, id) {
    const { room } = this;
    const me = this.chat.me;
    const name = room.displayName(id);
    const shown = id === me ? t('meMark', { name }) : name;
    const n = li.querySelector('.member-name');
    if (n.textContent !== shown) n.textContent = shown;
    const role = powerMark(room.powerOf(id));
    const r = li.querySelector('.member-role');
    r.textContent = role;
    r.hidden = !role;
    li.dataset.power = String(room.powerOf(id));
    const slot = li.querySelector('.avatar-slot');
    const sig = avatarSig(name, room.avatarOf(id));
    if (slot.dataset.sig !== sig) {
      slot.dataset.sig = sig;
      slot.replaceChildren(avatarEl(this.chat.media, name, room.avatarOf(id), 'avatar-md'));
    }
    const kick = li.querySelector('.member-kick');
    // Not offered unless my power level allows it (the button is absent).
    kick.hidden = !room.canKick(me, id);
    kick.setAttribute('aria-label', t('kickLabel', { user: name }));
  }

  async saveSettings() {
    const { room } = this;
    const me = this.chat.me;
    this.err.textContent = '';
    this.saved.textContent = '';
    const name = this.nameInput.value.trim();
    const topic = this.topicInput.value.trim();
    const jobs = [];
    if (room.canSetState(me, 'm.room.name') && name !== room.name) jobs.push(['m.room.name', { name }]);
    if (room.canSetState(me, 'm.room.topic') && topic !== room.topic) jobs.push(['m.room.topic', { topic }]);
    if (!jobs.length) return;
    this.save.disabled = true;
    try {
      for (const [type, content] of jobs) {
        await this.chat.api.sendState(room.id, type, '', content);
        room.applyState({ type, state_key: '', content });
      }
      this.saved.textContent = t('settingsSaved');
      this.chat.renderRoom();
      this.chat.list.update();
    } catch (e) {
      this.err.textContent = describeError(e, 'settings');
    } finally {
      this.save.disabled = false;
    }
  }

  /**
   * kickDialog asks for the reason and removes the member. Reached from
   * the member's button, which is shown only to whom the room allows it;
   * the server's refusal is said in the dialog.
   */
  kickDialog(userId) {
    const { room } = this;
    const name = room.displayName(userId);
    const reason = h('input', { id: 'kick-reason', type: 'text', maxlength: '200', autocomplete: 'off' });
    const err = h('p', { class: 'error', role: 'alert', id: 'dlg-kick-error' });
    const ok = h('button', { type: 'submit', id: 'dlg-kick-ok', class: 'primary danger-fill', text: t('kick') });
    const cancel = h('button', { type: 'button', id: 'dlg-kick-cancel', text: t('cancel') });
    const form = h('form', { method: 'dialog', novalidate: true },
      h('h2', { id: 'dlg-kick-title', text: t('kickTitle', { user: name }) }),
      h('p', { class: 'muted', text: t('kickExplain') }),
      h('div', { class: 'field' }, h('label', { for: 'kick-reason', text: t('kickReason') }), reason),
      err, h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { id: 'dlg-kick', class: 'form-dialog', 'aria-labelledby': 'dlg-kick-title' }, form);
    const kicking = this.kicking = { userId, reason, dlg };
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (this.kicking === kicking) this.kicking = null;
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      ok.disabled = true;
      try {
        await this.chat.api.kick(room.id, userId, reason.value.trim());
        dlg.close();
        this.update();
        this.closeBtn.focus(); // the member's button is gone
      } catch (ex) {
        err.textContent = describeError(ex, 'kick', { user: name });
      } finally {
        ok.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
    reason.focus();
    return dlg;
  }

  /**
   * carry is what the dialog holds that is not saved yet: the name and
   * topic being typed and the removal being asked about, for restore on
   * the dialog that replaces this one (after the language changed).
   */
  carry() {
    return {
      name: this.nameInput.value, topic: this.topicInput.value,
      kick: this.kicking ? { userId: this.kicking.userId, reason: this.kicking.reason.value } : null,
    };
  }

  /** restore puts back what carry took from the dialog this one replaces. */
  restore(c) {
    this.nameInput.value = c.name;
    this.topicInput.value = c.topic;
    if (c.kick && this.room.members.get(c.kick.userId)?.membership === 'join') {
      this.kickDialog(c.kick.userId);
      this.kicking.reason.value = c.kick.reason;
    }
  }

  /** dismiss closes the dialog and the removal dialog over it, if any. */
  dismiss() {
    this.kicking?.dlg.close();
    this.dlg.close();
  }
}

// The "⋯" menu of each message (react, reply, edit, delete, offered as
// the room's power levels and the message allow) and the reactions shown
// as chips under it, for the conversation (room.js).
import { t } from './i18n.js';
import { isRedacted } from './model.js';
import { h } from './util.js';

/** QUICK_REACTIONS are the reactions offered in a message's menu. */
const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

/**
 * messageActions: reply and react in a room the user may write in;
 * delete their own messages, and others' when their power level reaches
 * the room's redact level (an admin); edit their own text messages.
 */
export function messageActions(me, room, ev) {
  const c = ev.content || {};
  if (isRedacted(ev) || room.isServerNotice || !c.msgtype || room.membership !== 'join') return { reply: false, del: false, react: false, edit: false };
  const send = room.canSend(me);
  const del = ev.sender === me || room.canRedactOthers(me);
  return { reply: send, del, react: send, edit: send && ev.sender === me && (c.msgtype === 'm.text' || c.msgtype === 'm.emote') };
}

/** toggleActions opens (or closes) the actions under a message of pane (a RoomPane). */
export function toggleActions(pane, room, ev, more, actions) {
  const open = actions.hidden;
  more.setAttribute('aria-expanded', String(open));
  actions.hidden = !open;
  if (!open) {
    actions.replaceChildren();
    return;
  }
  const can = messageActions(pane.chat.me, room, ev);
  const close = () => {
    actions.hidden = true;
    actions.replaceChildren();
    more.setAttribute('aria-expanded', 'false');
  };
  const reply = can.reply ? h('button', { type: 'button', class: 'small msg-reply', text: t('reply') }) : null;
  const del = can.del ? h('button', { type: 'button', class: 'small danger msg-delete', text: ev.sender === pane.chat.me ? t('deleteMessage') : t('deleteOthers') }) : null;
  const edit = can.edit ? h('button', { type: 'button', class: 'small msg-edit', text: t('editMessage') }) : null;
  edit?.addEventListener('click', () => {
    close();
    const e = room.relations().edits.get(ev.event_id);
    pane.setEdit(ev, String((e ? e.content['m.new_content'] : ev.content).body || ''));
  });
  const reacts = can.react ? h('div', { class: 'msg-reacts', role: 'group', 'aria-label': t('react') },
    ...QUICK_REACTIONS.map((key) => {
      const b = h('button', { type: 'button', class: 'icon msg-react', dataset: { key }, 'aria-label': t('reactWith', { key }), text: key });
      b.addEventListener('click', () => {
        close();
        toggleReaction(pane.chat, room, ev, key, true);
        more.focus();
      });
      return b;
    })) : null;
  reply?.addEventListener('click', () => {
    close();
    pane.setReply(ev);
  });
  del?.addEventListener('click', async () => {
    close();
    await pane.chat.deleteMessage(room, ev);
    (more.hidden ? pane.input : more).focus();
  });
  actions.replaceChildren(...[reacts, reply, edit, del].filter(Boolean));
  (reacts?.firstElementChild || reply || del)?.focus();
}

/**
 * toggleReaction adds my reaction key to ev, or (when I have it and
 * onlyAdd is not set) removes it by redacting my reaction event.
 */
export function toggleReaction(chat, room, ev, key, onlyAdd = false) {
  const mine = room.relations().reactions.get(ev.event_id)?.get(key)?.get(chat.me);
  if (mine && !onlyAdd) chat.removeReaction(room, mine);
  else if (!mine) chat.outbox.addReaction(room.id, ev.event_id, key);
}

/** updateReactions shows the reactions to ev as chips with counts. */
export function updateReactions(chat, row, room, ev, byKey) {
  const box = row.querySelector('.reactions');
  const me = chat.me;
  const list = isRedacted(ev) || !byKey ? [] : [...byKey].filter(([, s]) => s.size);
  const sig = list.map(([k, s]) => `${k}:${s.size}:${s.has(me)}`).join(',');
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.hidden = !list.length;
  box.replaceChildren(...list.map(([key, senders]) => {
    const mine = senders.has(me);
    const names = [...senders.keys()].map((u) => (u === me ? t('you') : room.displayName(u))).join(', ');
    const b = h('button', {
      type: 'button', class: `small reaction${mine ? ' mine' : ''}`, dataset: { key, count: String(senders.size) },
      'aria-pressed': String(mine), title: names, 'aria-label': t('reactionLabel', { key, n: senders.size, names }),
    }, h('span', { class: 'reaction-key', text: key }), h('span', { class: 'reaction-count', text: String(senders.size) }));
    b.disabled = !room.canSend(me) || room.isServerNotice;
    b.addEventListener('click', () => toggleReaction(chat, room, ev, key));
    return b;
  }));
}

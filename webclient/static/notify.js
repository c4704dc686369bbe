// Desktop notifications with a short sound, for new messages the server
// says notify: a room's unread_notifications.notification_count grew in
// /sync (so muted rooms and push rules are the server's to decide, and the
// badge and the notification agree). None for one's own messages, or for
// the room open in a visible tab.
//
// They are off until the user turns them on with the bell in the top bar
// (a click, which lets the page ask for permission and start audio); the
// choice is kept in localStorage. The sound is made with WebAudio: one
// oscillator, two quick notes, no audio file.
import { t } from './i18n.js';
import { h, icon } from './util.js';

/** BELL is the bell's outline and clapper (24×24); SLASH crosses it out. */
const BELL = ['M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15z', 'M10 20.5a2 2 0 0 0 4 0'];
const SLASH = 'M4 3l16 18';

/** bellIcon is the bell, crossed out when off. */
export function bellIcon(on) {
  return on ? icon('bell', 24, 24, ...BELL) : icon('bell', 24, 24, ...BELL, SLASH);
}

/** PREF_KEY holds "on" or "off" in localStorage. */
const PREF_KEY = 'planb.notify';
/** BODY_CHARS: a notification shows at most this much of the message. */
const BODY_CHARS = 140;

export class Notifier {
  constructor(chat) {
    this.chat = chat;
    /** audio: the AudioContext, made at the first click or sound. */
    this.audio = null;
    this.btn = null;
    /** armed: the first gesture's audio unlock is registered. */
    this.armed = false;
  }

  supported() {
    return typeof window.Notification === 'function';
  }

  wanted() {
    try {
      return localStorage.getItem(PREF_KEY) === 'on';
    } catch {
      return false;
    }
  }

  setWanted(on) {
    try {
      localStorage.setItem(PREF_KEY, on ? 'on' : 'off');
    } catch {
      // storage full or blocked: the choice lasts for this page only
    }
  }

  /** on reports whether notifications are to be shown. */
  on() {
    return this.supported() && this.wanted() && window.Notification.permission === 'granted';
  }

  /** button returns the bell toggle for the top bar. */
  button() {
    this.btn = h('button', { type: 'button', id: 'notify-btn', class: 'small icon notify-btn' });
    this.btn.hidden = !this.supported();
    this.btn.addEventListener('click', () => this.toggle());
    // After a reload the chime may only start from a user gesture: the
    // first click or key on the page unlocks it (armed once: the button is
    // made again when the language changes).
    if (!this.armed) {
      this.armed = true;
      const unlock = () => {
        if (this.on()) this.unlockAudio();
      };
      window.addEventListener('pointerdown', unlock, { once: true, capture: true });
      window.addEventListener('keydown', unlock, { once: true, capture: true });
    }
    this.render();
    return this.btn;
  }

  render() {
    if (!this.btn) return;
    const on = this.on();
    this.btn.replaceChildren(bellIcon(on));
    this.btn.setAttribute('aria-pressed', String(on));
    this.btn.setAttribute('aria-label', t('notifications'));
    this.btn.title = on ? t('notifyOnTitle') : t('notifyOffTitle');
  }

  /** toggle turns notifications on (asking for permission) or off; a click calls it. */
  async toggle() {
    this.unlockAudio();
    let msg;
    if (this.on()) {
      this.setWanted(false);
      msg = t('notifyTurnedOff');
    } else {
      let perm = window.Notification.permission;
      if (perm === 'default') {
        try {
          perm = await window.Notification.requestPermission();
        } catch {
          perm = 'denied';
        }
      }
      this.setWanted(perm === 'granted');
      msg = perm === 'granted' ? t('notifyTurnedOn') : t('notifyDenied');
    }
    this.render();
    if (!this.on() && window.Notification.permission === 'denied') this.btn.title = msg;
    const ann = document.getElementById('announcer');
    if (ann) ann.textContent = msg;
  }

  /** unlockAudio makes (or resumes) the AudioContext during a user gesture. */
  unlockAudio() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    try {
      if (!this.audio) this.audio = new AC();
      if (this.audio.state === 'suspended') this.audio.resume().catch(() => {});
    } catch {
      this.audio = null;
    }
    return this.audio;
  }

  /**
   * notify shows one notification per room in list ([{room, ev}], from
   * Model.apply's notify) and plays the sound once.
   */
  notify(list) {
    this.render(); // permission may have changed in the browser's settings
    if (!list || !list.length || !this.on()) return;
    const chat = this.chat;
    let shown = 0;
    for (const { room, ev } of list) {
      if (ev.sender === chat.me) continue;
      if (chat.pageVisible() && room.id === chat.currentRoomId) continue;
      try {
        const n = new window.Notification(room.title(chat.me), {
          body: bodyOf(room, ev, chat.me), tag: room.id, icon: '/_planb/web/icon.svg', lang: document.documentElement.lang || undefined,
        });
        n.addEventListener('click', () => {
          window.focus();
          chat.openRoom(room.id);
          n.close();
        });
        shown++;
      } catch (e) {
        console.warn('planb: notification failed', e);
      }
    }
    if (shown) this.beep();
  }

  /** beep plays a short two-note chime (about 0.3 s). */
  beep() {
    const ctx = this.unlockAudio();
    if (!ctx) return;
    try {
      const t0 = ctx.currentTime + 0.01;
      const gain = ctx.createGain();
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.2, t0 + 0.02);
      gain.gain.setValueAtTime(0.2, t0 + 0.12);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.32);
      gain.connect(ctx.destination);
      const osc = ctx.createOscillator();
      osc.type = 'sine';
      osc.frequency.setValueAtTime(880, t0);
      osc.frequency.setValueAtTime(1320, t0 + 0.12);
      osc.connect(gain);
      osc.addEventListener('ended', () => gain.disconnect());
      osc.start(t0);
      osc.stop(t0 + 0.34);
    } catch (e) {
      console.warn('planb: notification sound failed', e);
    }
  }
}

/** bodyOf is the notification text for ev in room. */
function bodyOf(room, ev, me) {
  const c = ev.content || {};
  let body;
  if (c.msgtype === 'm.image') body = t('photo');
  else if (c.msgtype === 'm.file') body = t('fileNamed', { name: String(c.body || '') });
  else body = String(c.body || '');
  if (body.length > BODY_CHARS) body = body.slice(0, BODY_CHARS) + '…';
  return room.isDirect(me) ? body : `${room.displayName(ev.sender)}: ${body}`;
}

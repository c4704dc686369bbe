// The outbox: messages typed but not yet acknowledged by a data center.
//
// Each message gets its transaction ID once, when it is typed, and is
// persisted with it before the first attempt. It is sent with PUT
// /rooms/{room}/send/m.room.message/{txnId}, retried (with failover) until a
// data center acknowledges it; planb returns the original event for a
// repeated txnId, in any data center, so a message is stored exactly once
// however many attempts it takes. Messages leave the outbox when /sync
// brings their event back.
//
// A message larger than a Matrix event may be (65,536 bytes of JSON, the
// envelope included) is refused before it is queued (tooLarge); one the
// server refuses as too large (M_TOO_LARGE, 413) fails for good: sending
// it again cannot succeed, so it can only be deleted.
//
// Reactions (m.reaction) and edits (an m.room.message replacing another)
// go the same way; they are not shown as messages of their own.
//
// Photos and other files are uploaded first, then sent as m.image or
// m.file (body: the file's name; info: mimetype and size).
//
// Items: {txnId, roomId, kind: "text"|"image"|"file"|"reaction"|"edit", content, ts, state, eventId,
// error, permanent, name, mimetype, size, w, h}. state: pending | sending |
// sent | failed; permanent: failed for good (no retry). Files live only in
// memory until uploaded.
import { loadOutbox, saveOutbox } from './store.js';
import { describeError, randomId, sleep } from './util.js';
import { t } from './i18n.js';

/**
 * MAX_CONTENT_BYTES is the largest message content sent: the spec limits a
 * whole event to 65,536 bytes, and the envelope (IDs, sender, signatures,
 * hashes, unsigned data) needs room of its own.
 */
export const MAX_CONTENT_BYTES = 60000;

const utf8 = new TextEncoder();

/**
 * contentBytes is the size of content as the server measures it: UTF-8
 * JSON, where the server escapes <, > and & as \u003c (six bytes, not one)
 * and U+2028/U+2029 as \u2028 (six, not three).
 */
export function contentBytes(content) {
  const json = JSON.stringify(content);
  const html = (json.match(/[<>&]/g) || []).length;
  const seps = (json.match(/[\u2028\u2029]/g) || []).length;
  return utf8.encode(json).length + 5 * html + 3 * seps;
}

/** tooLarge reports whether content is over MAX_CONTENT_BYTES. */
export function tooLarge(content) {
  return contentBytes(content) > MAX_CONTENT_BYTES;
}

/** refusedAsTooLarge reports whether the server refused a request for its size. */
function refusedAsTooLarge(e) {
  return !!e && (e.errcode === 'M_TOO_LARGE' || e.status === 413);
}

/** isUpload reports whether an item is a photo or file still to upload. */
function isUpload(it) {
  return (it.kind === 'image' || it.kind === 'file') && !it.content;
}

/** PREVIEW_KEEP_MS: a sent photo's preview is freed this long after its event came back. */
const PREVIEW_KEEP_MS = 60000;

/** newTxnId returns a transaction ID unique to this browser. */
export function newTxnId() {
  return 'pbw' + Date.now().toString(36) + randomId(10);
}

export class Outbox extends EventTarget {
  constructor(api, userId) {
    super();
    this.api = api;
    this.userId = userId;
    /** files: txnId -> File (not persisted). */
    this.files = new Map();
    /** previews: txnId -> object URL of the file. */
    this.previews = new Map();
    /** previewKeepMs: see PREVIEW_KEEP_MS (tests shorten it). */
    this.previewKeepMs = PREVIEW_KEEP_MS;
    this.items = loadOutbox(userId).map((it) => {
      if (it.state === 'sending') it.state = 'pending'; // resend with the same txnId
      if (isUpload(it) && it.state !== 'sent') {
        it.state = 'failed';
        it.error = t(it.kind === 'image' ? 'imageLost' : 'fileLost');
      }
      if (it.state !== 'sent' && it.content && tooLarge(it.content)) {
        // Queued by an older version that did not check the size.
        Object.assign(it, { state: 'failed', permanent: true, error: t('errMessageTooLong') });
      }
      return it;
    });
    this.kickResolve = null;
  }

  changed() {
    const ok = saveOutbox(this.userId, this.items.map(({ ...it }) => it));
    if (!ok) console.warn('planb: the outbox could not be saved to localStorage');
    this.dispatchEvent(new CustomEvent('change'));
  }

  kick() {
    if (this.kickResolve) {
      this.kickResolve();
      this.kickResolve = null;
    }
  }

  /**
   * addText queues a text message and returns its item; relatesTo is its
   * m.relates_to (a reply). The caller checks tooLarge first.
   */
  addText(roomId, body, relatesTo) {
    const content = { msgtype: 'm.text', body };
    if (relatesTo) content['m.relates_to'] = relatesTo;
    const it = { txnId: newTxnId(), roomId, kind: 'text', content, ts: Date.now(), state: 'pending' };
    this.items.push(it);
    this.changed();
    this.kick();
    return it;
  }

  /** addReaction queues an m.reaction with key to the event eventId. */
  addReaction(roomId, eventId, key) {
    const dup = this.items.find((i) => i.kind === 'reaction' && i.roomId === roomId && i.state !== 'failed' &&
      i.content['m.relates_to'].event_id === eventId && i.content['m.relates_to'].key === key);
    if (dup) return dup;
    const content = { 'm.relates_to': { rel_type: 'm.annotation', event_id: eventId, key } };
    return this.push({ txnId: newTxnId(), roomId, kind: 'reaction', type: 'm.reaction', content, ts: Date.now(), state: 'pending' });
  }

  /**
   * addEdit queues a replacement of the text message eventId with body
   * (m.new_content; the body outside it is the "* new text" fallback).
   * The caller checks tooLarge first.
   */
  addEdit(roomId, eventId, body) {
    const content = {
      msgtype: 'm.text', body: '* ' + body,
      'm.new_content': { msgtype: 'm.text', body },
      'm.relates_to': { rel_type: 'm.replace', event_id: eventId },
    };
    return this.push({ txnId: newTxnId(), roomId, kind: 'edit', content, ts: Date.now(), state: 'pending' });
  }

  push(it) {
    this.items.push(it);
    this.changed();
    this.kick();
    return it;
  }

  /**
   * addFile queues a file: it is uploaded, then sent as m.image (an image
   * this browser can decode) or m.file (anything else). The caller checks
   * the server's size limit first.
   */
  async addFile(roomId, file) {
    let w, h;
    let image = false;
    if ((file.type || '').startsWith('image/')) {
      try {
        const bmp = await createImageBitmap(file);
        w = bmp.width;
        h = bmp.height;
        bmp.close();
        image = true;
      } catch {
        // not decodable here: sent as a file
      }
    }
    const it = {
      txnId: newTxnId(), roomId, kind: image ? 'image' : 'file', content: null, ts: Date.now(), state: 'pending',
      name: file.name || (image ? 'image' : 'file'), mimetype: file.type || 'application/octet-stream', size: file.size, w, h,
    };
    this.files.set(it.txnId, file);
    if (image) this.previews.set(it.txnId, URL.createObjectURL(file));
    this.items.push(it);
    this.changed();
    this.kick();
    return it;
  }

  /** forRoom returns the items of roomId still to show as local echoes. */
  forRoom(roomId) {
    return this.items.filter((it) => it.roomId === roomId && (it.kind === 'text' || it.kind === 'image' || it.kind === 'file'));
  }

  /** pendingCount counts items not yet acknowledged. */
  pendingCount() {
    return this.items.filter((it) => it.state !== 'sent').length;
  }

  /**
   * settle removes the items whose event /sync has delivered: has(eventId)
   * and txnSeen(txnId) ask the room model.
   */
  settle(has, txnSeen) {
    const before = this.items.length;
    this.items = this.items.filter((it) => {
      const done = (it.eventId && has(it.roomId, it.eventId)) || txnSeen(it.roomId, it.txnId);
      if (done) this.forget(it.txnId);
      return !done;
    });
    if (this.items.length !== before) this.changed();
  }

  forget(txnId) {
    this.files.delete(txnId);
    const url = this.previews.get(txnId);
    if (url) setTimeout(() => URL.revokeObjectURL(url), this.previewKeepMs); // the echo may still show it
    this.previews.delete(txnId);
  }

  retry(txnId) {
    const it = this.items.find((i) => i.txnId === txnId);
    if (!it || it.state !== 'failed' || it.permanent) return;
    if (isUpload(it) && !this.files.has(txnId)) return;
    it.state = 'pending';
    it.error = undefined;
    this.changed();
    this.kick();
  }

  discard(txnId) {
    this.items = this.items.filter((i) => i.txnId !== txnId || i.state === 'sent');
    this.forget(txnId);
    this.changed();
  }

  /** run sends queued items in order until signal aborts. */
  async run(signal) {
    while (!signal.aborted) {
      const it = this.items.find((i) => i.state === 'pending');
      if (!it) {
        await new Promise((resolve) => {
          this.kickResolve = resolve;
          signal.addEventListener('abort', resolve, { once: true });
        });
        continue;
      }
      it.state = 'sending';
      this.changed();
      try {
        if (isUpload(it)) {
          const file = this.files.get(it.txnId);
          if (!file) throw new Error(t(it.kind === 'image' ? 'imageLost' : 'fileLost'));
          const uri = await this.api.upload(file, signal);
          const info = { mimetype: it.mimetype, size: it.size };
          if (it.w && it.h) Object.assign(info, { w: it.w, h: it.h });
          it.content = { msgtype: it.kind === 'image' ? 'm.image' : 'm.file', body: it.name, url: uri, info };
          this.changed(); // the upload is done: a reload resends only the event
        }
        const res = await this.api.sendEvent(it.roomId, it.type || 'm.room.message', it.txnId, it.content, signal);
        it.eventId = res.event_id;
        if (it.state === 'sending') it.state = 'sent';
        if (this.items.includes(it)) this.changed();
      } catch (e) {
        if (signal.aborted) return;
        if (refusedAsTooLarge(e)) {
          // Sending it again would be refused again: failed for good.
          Object.assign(it, { state: 'failed', permanent: true, error: isUpload(it) ? t('errTooLarge') : t('errMessageTooLong') });
          if (this.items.includes(it)) this.changed();
          continue;
        }
        if (e && e.errcode === 'M_LIMIT_EXCEEDED') {
          it.state = 'pending';
          await sleep(e.retryAfterMs || 1000, signal).catch(() => {});
          continue;
        }
        it.state = 'failed';
        it.error = describeError(e, 'send');
        if (this.items.includes(it)) this.changed();
      }
    }
  }
}

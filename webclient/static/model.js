// The rooms as the client knows them, built from /sync and /messages: state
// (names, members), the loaded timeline, receipts, typing and unread counts.
import { localpart, serverOf } from './util.js';
import { t } from './i18n.js';

/** NOTICE_TAG marks the server-notices room (room account data m.tag). */
export const NOTICE_TAG = 'm.server_notice';

/** noticesUserOf returns the user that sends server notices on me's server. */
export function noticesUserOf(me) {
  return '@notices:' + serverOf(me);
}

/**
 * isRedacted reports whether ev was deleted: redacted_because in its
 * unsigned data (from the server, or applied by Room.redact).
 */
export function isRedacted(ev) {
  return !!(ev && ev.unsigned && ev.unsigned.redacted_because);
}

/**
 * replyTarget returns the event ID ev replies to (rich replies:
 * m.relates_to.m.in_reply_to.event_id), or "".
 */
export function replyTarget(ev) {
  const rel = ev && ev.content && ev.content['m.relates_to'];
  const id = rel && rel['m.in_reply_to'] && rel['m.in_reply_to'].event_id;
  return typeof id === 'string' ? id : '';
}

/** relation returns ev's m.relates_to if it has rel_type rel and an event_id, or null. */
function relation(ev, rel) {
  const r = ev && ev.content && ev.content['m.relates_to'];
  return r && r.rel_type === rel && typeof r.event_id === 'string' ? r : null;
}

/**
 * isReplacement reports whether ev is an edit of another message (m.replace);
 * edits are not shown as messages of their own.
 */
export function isReplacement(ev) {
  return !!(ev && ev.type === 'm.room.message' && relation(ev, 'm.replace'));
}

/** num is v when it is a number, else d. */
function num(v, d) {
  return typeof v === 'number' ? v : d;
}

/** Room is one room the user is in or invited to. */
export class Room {
  constructor(id, me) {
    this.id = id;
    this.me = me;
    /** tags: the room's tags (room account data m.tag). */
    this.tags = new Set();
    /** powerLevels: the content of m.room.power_levels, if known. */
    this.powerLevels = null;
    this.membership = 'join';
    this.name = '';
    /** topic: the content of m.room.topic. */
    this.topic = '';
    /**
     * encrypted: the room has m.room.encryption (once on, it stays on).
     * The web client neither decrypts nor encrypts: it says so.
     */
    this.encrypted = false;
    this.creator = '';
    this.createdTs = 0;
    /** members: userId -> {membership, displayname, avatarUrl}. */
    this.members = new Map();
    /** timeline: loaded events, oldest first; each has a numeric ord. */
    this.timeline = [];
    /** byId: eventId -> event of the timeline. */
    this.byId = new Map();
    /** txnIds: transaction IDs of this device's events seen in the timeline. */
    this.txnIds = new Set();
    /**
     * redactions: eventId -> the m.room.redaction of an event not loaded
     * yet (older history arrives newest first, so after its redaction).
     */
    this.redactions = new Map();
    this.prevBatch = undefined;
    this.reachedStart = false;
    this.loadingOlder = false;
    /** receipts: userId -> {eventId, ts} (m.read). */
    this.receipts = new Map();
    /** lastOwn: userId -> ord of the newest loaded event they sent. */
    this.lastOwn = new Map();
    this.typing = [];
    this.unread = 0;
    this.inviter = '';
    this.inviteDirect = false;
    this.summary = null;
    /**
     * removedBy: who removed me (kick or ban) while membership is "leave";
     * the room stays listed, read-only, until I delete it from the list.
     */
    this.removedBy = '';
    this.removedReason = '';
    /** banned: removedBy banned me (not only removed). */
    this.banned = false;
  }

  /**
   * isServerNotice: the room where the server writes to the user (tagged
   * m.server_notice, or made by the server's notices user).
   */
  get isServerNotice() {
    const n = noticesUserOf(this.me);
    return this.tags.has(NOTICE_TAG) || this.inviter === n || this.creator === n;
  }

  /** powerOf is a user's power level (m.room.power_levels; the creator's 100 without one). */
  powerOf(user) {
    const pl = this.powerLevels;
    if (!pl) return user === this.creator ? 100 : 0;
    return num((pl.users || {})[user], num(pl.users_default, 0));
  }

  /** level is the power level an action needs ("kick", "ban", "redact", "invite"). */
  level(action) {
    const pl = this.powerLevels || {};
    return num(pl[action], action === 'invite' ? 0 : 50);
  }

  /** canSend reports whether the room's power levels let me send messages. */
  canSend(me) {
    const pl = this.powerLevels;
    if (!pl) return true;
    return this.powerOf(me) >= num((pl.events || {})['m.room.message'], num(pl.events_default, 0));
  }

  /** canSetState reports whether my power level lets me send the state event type. */
  canSetState(me, type) {
    const pl = this.powerLevels;
    if (!pl) return true; // the server decides
    return this.powerOf(me) >= num((pl.events || {})[type], num(pl.state_default, 50));
  }

  /**
   * canKick reports whether I may remove target: my power level reaches
   * the kick level and is above theirs (the spec's auth rules).
   */
  canKick(me, target) {
    if (target === me || this.membership !== 'join') return false;
    const mine = this.powerOf(me);
    return mine >= this.level('kick') && this.powerOf(target) < mine;
  }

  /** canRedactOthers reports whether I may delete other people's messages. */
  canRedactOthers(me) {
    return this.membership === 'join' && this.powerOf(me) >= this.level('redact');
  }

  /** avatarOf returns a member's avatar (an mxc:// URI) or "". */
  avatarOf(userId) {
    const m = this.members.get(userId);
    return (m && m.avatarUrl) || '';
  }

  /**
   * redact applies a redaction to eventId: its content is gone (as the
   * server strips it) and unsigned.redacted_because says why.
   */
  redact(eventId, because) {
    const ev = this.byId.get(eventId);
    if (!ev) {
      this.redactions.set(eventId, because);
      return;
    }
    if (isRedacted(ev)) return;
    ev.content = {};
    ev.unsigned = { ...(ev.unsigned || {}), redacted_because: because };
  }

  /**
   * relations aggregates the loaded reactions and edits, from the timeline
   * (redacted ones have no content and so drop out). It returns
   * {reactions: eventId -> Map key -> Map sender -> reaction event ID,
   * edits: eventId -> the newest replacement by the original's sender}.
   */
  relations() {
    const reactions = new Map();
    const edits = new Map();
    for (const ev of this.timeline) {
      if (isRedacted(ev)) continue;
      const ann = ev.type === 'm.reaction' && relation(ev, 'm.annotation');
      if (ann && typeof ann.key === 'string') {
        let byKey = reactions.get(ann.event_id);
        if (!byKey) reactions.set(ann.event_id, (byKey = new Map()));
        let bySender = byKey.get(ann.key);
        if (!bySender) byKey.set(ann.key, (bySender = new Map()));
        if (!bySender.has(ev.sender)) bySender.set(ev.sender, ev.event_id);
        continue;
      }
      const rep = isReplacement(ev) && relation(ev, 'm.replace');
      if (rep && ev.content['m.new_content'] && typeof ev.content['m.new_content'] === 'object') {
        const orig = this.byId.get(rep.event_id);
        // Only the original sender's edits count; the timeline is oldest first.
        if (orig && orig.sender === ev.sender && !isReplacement(orig)) edits.set(rep.event_id, ev);
      }
    }
    return { reactions, edits };
  }

  /** has reports whether the event is loaded. */
  has(eventId) {
    return this.byId.has(eventId);
  }

  /** activeMembers are the joined and invited members' IDs. */
  activeMembers() {
    const out = [];
    for (const [id, m] of this.members) {
      if (m.membership === 'join' || m.membership === 'invite') out.push(id);
    }
    return out;
  }

  joinedCount() {
    let n = 0;
    for (const m of this.members.values()) if (m.membership === 'join') n++;
    return n || (this.summary && this.summary['m.joined_member_count']) || 0;
  }

  /** displayName returns the room-specific name of a user. */
  displayName(userId) {
    const m = this.members.get(userId);
    return (m && m.displayname) || localpart(userId);
  }

  /** title is the room's name, or the other members' names. */
  title(me) {
    if (this.isServerNotice) return t('serverNotices');
    if (this.name) return this.name;
    let others = this.activeMembers().filter((u) => u !== me);
    if (!others.length && this.summary && this.summary['m.heroes']) others = this.summary['m.heroes'];
    if (!others.length && this.inviter && this.membership === 'invite') others = [this.inviter];
    if (!others.length) return t('emptyChat');
    return others.map((u) => this.displayName(u)).sort().join(', ');
  }

  /** isDirect: a room without a name between two people. */
  isDirect(me) {
    if (this.membership === 'invite') return this.inviteDirect;
    return !this.name && this.activeMembers().length <= 2 && this.activeMembers().some((u) => u !== me);
  }

  /**
   * shows tells which timeline events the conversation shows: messages,
   * and room events that matter to the reader. A 1:1 chat, like KakaoTalk,
   * shows only someone leaving; a group also shows who joined or was
   * invited. Creating the room and the creator's own join are not news.
   */
  shows(ev, me) {
    if (ev.type === 'm.room.message') return !isReplacement(ev);
    if (ev.type === 'm.room.encrypted') return true; // shown as "encrypted message"
    if (this.isServerNotice) return false; // only the notices themselves
    if (ev.type === 'm.room.name') return !!(ev.content && ev.content.name);
    if (ev.type === 'm.room.topic') return !!(ev.content && ev.content.topic);
    if (ev.type !== 'm.room.member') return false;
    const m = ev.content && ev.content.membership;
    const prev = ev.unsigned && ev.unsigned.prev_content && ev.unsigned.prev_content.membership;
    if (m === prev) return false; // a profile change
    if (m === 'leave' || m === 'ban') return true;
    if (this.isDirect(me)) return false;
    return !(m === 'join' && ev.state_key === this.creator && !prev);
  }

  /** last is the newest shown event. */
  last(me) {
    for (let i = this.timeline.length - 1; i >= 0; i--) {
      if (this.shows(this.timeline[i], me)) return this.timeline[i];
    }
    return null;
  }

  /** lastTs orders the chat list. */
  lastTs() {
    const l = this.last(this.me);
    return (l && l.origin_server_ts) || this.createdTs || 0;
  }

  applyState(ev) {
    const c = ev.content || {};
    switch (ev.type) {
      case 'm.room.name':
        this.name = typeof c.name === 'string' ? c.name : '';
        break;
      case 'm.room.create':
        this.creator = c.creator || ev.sender;
        this.createdTs = ev.origin_server_ts || this.createdTs;
        break;
      case 'm.room.topic':
        this.topic = typeof c.topic === 'string' ? c.topic : '';
        break;
      case 'm.room.encryption':
        this.encrypted = this.encrypted || typeof c.algorithm === 'string';
        break;
      case 'm.room.member': {
        const av = typeof c.avatar_url === 'string' && c.avatar_url.startsWith('mxc://') ? c.avatar_url : '';
        this.members.set(ev.state_key, {
          membership: c.membership, displayname: typeof c.displayname === 'string' ? c.displayname : '', avatarUrl: av,
        });
        break;
      }
      case 'm.room.power_levels':
        this.powerLevels = c;
        break;
    }
  }

  /** add puts events at the end (sync) or the start (older history). */
  add(events, atStart = false) {
    // Going backwards (/messages dir=b) the events come newest first, and
    // each gets an ord below the one before; at the end they come oldest
    // first. Either way the timeline stays oldest first.
    const list = events;
    let ord = atStart ? (this.timeline.length ? this.timeline[0].ord : 0) : (this.timeline.length ? this.timeline[this.timeline.length - 1].ord : 0);
    const added = [];
    for (const ev of list) {
      if (!ev.event_id || this.byId.has(ev.event_id)) continue;
      ord += atStart ? -1 : 1;
      const e = { ...ev, ord };
      this.byId.set(e.event_id, e);
      const pending = this.redactions.get(e.event_id);
      if (pending) {
        this.redactions.delete(e.event_id);
        this.redact(e.event_id, pending);
      }
      if (e.type === 'm.room.redaction') {
        // The target is named at the top level before room v11 and in
        // content since.
        const target = e.redacts || (e.content && e.content.redacts);
        if (target) this.redact(target, e);
      }
      if (e.unsigned && e.unsigned.transaction_id) this.txnIds.add(e.unsigned.transaction_id);
      added.push(e);
      const prev = this.lastOwn.get(e.sender);
      if (prev === undefined || prev < ord) this.lastOwn.set(e.sender, ord);
    }
    if (atStart) this.timeline = [...added.reverse(), ...this.timeline];
    else this.timeline.push(...added);
    return added;
  }

  /** reset drops the loaded timeline (after a gap in /sync). */
  reset() {
    this.timeline = [];
    this.byId.clear();
    this.lastOwn.clear();
    this.redactions.clear();
    this.reachedStart = false;
  }

  /**
   * hasRead reports whether user has read ev: they sent it or something
   * later, or their read receipt is at or after it. A receipt for an event
   * that is not loaded is compared by time.
   */
  hasRead(user, ev) {
    if (ev.sender === user) return true;
    const own = this.lastOwn.get(user);
    if (own !== undefined && own >= ev.ord) return true;
    const r = this.receipts.get(user);
    if (!r) return false;
    const at = this.byId.get(r.eventId);
    if (at) return at.ord >= ev.ord;
    return r.ts >= ev.origin_server_ts;
  }

  /**
   * unreadBy counts the members (joined or invited) who have not read ev:
   * the number KakaoTalk users expect next to each message.
   */
  unreadBy(ev) {
    let n = 0;
    for (const u of this.activeMembers()) if (!this.hasRead(u, ev)) n++;
    return n;
  }

  /** latestFromOthers is the newest loaded event someone else sent. */
  latestFromOthers(me) {
    for (let i = this.timeline.length - 1; i >= 0; i--) {
      if (this.timeline[i].sender !== me) return this.timeline[i];
    }
    return null;
  }
}

/** SNAPSHOT_EVENTS: the last events of each room the local cache keeps. */
const SNAPSHOT_EVENTS = 50;

/** Model holds every room; apply() takes a /sync response. */
export class Model {
  constructor(me) {
    this.me = me;
    /** rooms: roomId -> Room (joined and invited). */
    this.rooms = new Map();
    /** accountData: type -> content of the user's global account data. */
    this.accountData = new Map();
    /**
     * fromCache: the rooms came from the local cache (restore), not yet
     * from a /sync; the first /sync then replaces what it contradicts.
     */
    this.fromCache = false;
  }

  /**
   * snapshot returns what the local cache keeps (cache.js): every room
   * with its state, receipts and its last `limit` events, and the account
   * data. It is structured-clonable.
   */
  snapshot(limit = SNAPSHOT_EVENTS) {
    const rooms = [...this.rooms.values()].filter((r) => r.membership !== 'leave').map((r) => ({
      id: r.id, membership: r.membership, name: r.name, topic: r.topic, encrypted: r.encrypted, creator: r.creator, createdTs: r.createdTs,
      tags: [...r.tags], powerLevels: r.powerLevels, members: [...r.members], receipts: [...r.receipts],
      unread: r.unread, inviter: r.inviter, inviteDirect: r.inviteDirect, summary: r.summary,
      events: r.timeline.slice(-limit).map(({ ord, ...ev }) => ev),
    }));
    return { v: 1, savedAt: Date.now(), rooms, accountData: [...this.accountData] };
  }

  /** restore fills an empty model from a snapshot; it returns whether it did. */
  restore(snap) {
    if (!snap || snap.v !== 1 || !Array.isArray(snap.rooms) || this.rooms.size) return false;
    for (const s of snap.rooms) {
      if (!s || !s.id) continue;
      const r = this.room(s.id);
      Object.assign(r, {
        membership: s.membership || 'join', name: s.name || '', topic: s.topic || '', encrypted: !!s.encrypted, creator: s.creator || '', createdTs: s.createdTs || 0,
        tags: new Set(s.tags || []), powerLevels: s.powerLevels || null, members: new Map(s.members || []),
        receipts: new Map(s.receipts || []), unread: s.unread || 0, inviter: s.inviter || '',
        inviteDirect: !!s.inviteDirect, summary: s.summary || null,
      });
      r.add(s.events || []);
    }
    for (const [k, v] of snap.accountData || []) this.accountData.set(k, v);
    this.fromCache = true;
    return true;
  }

  room(id) {
    let r = this.rooms.get(id);
    if (!r) {
      r = new Room(id, this.me);
      this.rooms.set(id, r);
    }
    return r;
  }

  /**
   * apply merges a /sync response. It returns {rooms: Set of changed room
   * IDs, incoming: [{room, ev}] new messages from others, invites: [room],
   * notify: [{room, ev}] for each room whose notification_count the server
   * raised with a new message from someone else, ev the newest of them,
   * rulesChanged: the user's push rules changed (not in the first sync)}.
   */
  apply(res, initial) {
    const cached = initial && this.fromCache;
    this.fromCache = false;
    const changed = new Set();
    const incoming = [];
    const invites = [];
    const notify = [];
    let rulesChanged = false;
    this.seq = (this.seq || 0) + 1;
    for (const ev of (res.account_data && res.account_data.events) || []) {
      if (ev && ev.type) this.accountData.set(ev.type, ev.content || {});
      if (ev && ev.type === 'm.push_rules' && !initial) rulesChanged = true;
    }
    const rooms = res.rooms || {};
    if (cached) {
      // The first /sync lists every room: cached ones it does not name are
      // gone (left while this page was away).
      for (const id of [...this.rooms.keys()]) {
        if (!(rooms.join || {})[id] && !(rooms.invite || {})[id] && this.rooms.delete(id)) changed.add(id);
      }
    }
    for (const [id, jr] of Object.entries(rooms.join || {})) {
      const r = this.room(id);
      r.membership = 'join';
      r.removedBy = '';
      changed.add(id);
      for (const ev of (jr.account_data && jr.account_data.events) || []) {
        if (ev.type === 'm.tag') r.tags = new Set(Object.keys((ev.content && ev.content.tags) || {}));
      }
      for (const ev of (jr.state && jr.state.events) || []) r.applyState(ev);
      const tl = jr.timeline || {};
      // A gap: after the cached events (first /sync) or since the last one.
      if (tl.limited && (!initial || cached)) r.reset();
      // Whether older history exists is learnt from /messages (see app.js).
      if (r.prevBatch === undefined || tl.limited) r.prevBatch = tl.prev_batch;
      for (const ev of tl.events || []) {
        if (ev.state_key !== undefined) r.applyState(ev);
      }
      const added = r.add(tl.events || []);
      let newest = null;
      if (!initial) {
        for (const ev of added) {
          if (ev.sender !== this.me && ev.type === 'm.room.message' && !isReplacement(ev)) {
            incoming.push({ room: r, ev });
            newest = ev;
          }
        }
      }
      for (const ev of (jr.ephemeral && jr.ephemeral.events) || []) {
        if (ev.type === 'm.typing') r.typing = (ev.content && ev.content.user_ids) || [];
        if (ev.type === 'm.receipt') {
          for (const [eventId, byType] of Object.entries(ev.content || {})) {
            for (const [user, rc] of Object.entries((byType && byType['m.read']) || {})) {
              const old = r.receipts.get(user);
              const ts = (rc && rc.ts) || 0;
              if (!old || ts >= old.ts) r.receipts.set(user, { eventId, ts });
            }
          }
        }
      }
      if (jr.unread_notifications) {
        const before = r.unread || 0;
        r.unread = jr.unread_notifications.notification_count || 0;
        r.countSeq = this.seq;
        if (newest && r.unread > before) notify.push({ room: r, ev: newest });
      }
      if (jr.summary) r.summary = jr.summary;
    }
    for (const [id, ir] of Object.entries(rooms.invite || {})) {
      const r = this.room(id);
      const wasInvite = r.membership === 'invite';
      r.membership = 'invite';
      r.removedBy = '';
      changed.add(id);
      for (const ev of (ir.invite_state && ir.invite_state.events) || []) {
        r.applyState(ev);
        if (ev.type === 'm.room.member' && ev.state_key === this.me) {
          r.inviter = ev.sender;
          r.inviteDirect = !!(ev.content && ev.content.is_direct);
        }
      }
      if (!wasInvite) invites.push(r);
    }
    for (const [id, lr] of Object.entries(rooms.leave || {})) {
      const r = this.rooms.get(id);
      if (!r) continue;
      changed.add(id);
      // Removed by someone else (kicked or banned): the room stays listed,
      // read-only, with the notice of who removed me; left by me: gone.
      const events = (lr.timeline && lr.timeline.events) || [];
      const mine = [...events].reverse().find((ev) => ev.type === 'm.room.member' && ev.state_key === this.me);
      const m = mine && mine.content && mine.content.membership;
      if (!mine || mine.sender === this.me || (m !== 'leave' && m !== 'ban') || r.membership !== 'join') {
        this.rooms.delete(id);
        continue;
      }
      for (const ev of (lr.state && lr.state.events) || []) r.applyState(ev);
      for (const ev of events) if (ev.state_key !== undefined) r.applyState(ev);
      r.add(events);
      r.membership = 'leave';
      r.removedBy = mine.sender;
      r.banned = m === 'ban';
      r.removedReason = typeof mine.content.reason === 'string' ? mine.content.reason : '';
      r.typing = [];
      r.unread = 0;
    }
    return { rooms: changed, incoming, invites, notify, rulesChanged };
  }

  /**
   * muted reports whether the user's push rules mute roomId: an enabled
   * room rule (its ID is the room's) whose actions do not notify.
   */
  muted(roomId) {
    const rules = this.accountData.get('m.push_rules');
    const list = (rules && rules.global && rules.global.room) || [];
    const r = list.find((x) => x && x.rule_id === roomId);
    return !!r && r.enabled !== false && !(r.actions || []).includes('notify');
  }

  /**
   * setCounts takes the notification counts of a /sync read for them alone,
   * asked for when apply had run seq times: a room whose count a later
   * apply brought keeps that newer one.
   */
  setCounts(res, seq) {
    for (const [id, jr] of Object.entries((res.rooms && res.rooms.join) || {})) {
      const r = this.rooms.get(id);
      if (r && jr.unread_notifications && !((r.countSeq || 0) > seq)) r.unread = jr.unread_notifications.notification_count || 0;
    }
  }

  /** sorted returns invites first, then rooms by their latest message. */
  sorted() {
    return [...this.rooms.values()].sort((a, b) => {
      if ((a.membership === 'invite') !== (b.membership === 'invite')) return a.membership === 'invite' ? -1 : 1;
      return b.lastTs() - a.lastTs() || a.id.localeCompare(b.id);
    });
  }

  /** directWith finds an existing 1:1 room with user. */
  directWith(user) {
    for (const r of this.rooms.values()) {
      if (r.membership === 'join' && r.isDirect(this.me) && r.activeMembers().includes(user)) return r;
    }
    return null;
  }
}

// Message search (POST /search): a search field and its results — the
// room, the sender, the time and the text with the matched words marked —
// with "More results" through next_batch; a click opens the message in its
// room. The chat list has one for every room, a room's header one for that
// room. Texts of messages are only ever text nodes (the marks are <mark>
// elements made around slices of the text), never HTML.
import { fmtResultTime, t } from './i18n.js';
import { replyTarget } from './model.js';
import { describeError, h, icon, localpart, stripReplyFallback } from './util.js';

/** PAGE is how many results one request asks for. */
const PAGE = 20;
/** A result's text is cut to about this many characters around its first match. */
const EXCERPT_CHARS = 240;
/** …keeping this many before the first match. */
const EXCERPT_BEFORE = 40;

const WORD_RE = /[\p{L}\p{N}\p{Mn}\p{Mc}]+/gu;
const ONE_CHAR_WORD_RE = /[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}]/u;

/**
 * wordSpans splits text into words the way the server's index does
 * (projection/searchindex.go): runs of letters, digits and marks, each
 * Han, Hiragana or Katakana character a word of its own. It returns
 * [{start, end, word}] with offsets into text.
 */
export function wordSpans(text) {
  const out = [];
  for (const m of text.matchAll(WORD_RE)) {
    let at = m.index;
    let start = at;
    let cur = '';
    for (const ch of m[0]) {
      if (ONE_CHAR_WORD_RE.test(ch)) {
        if (cur) out.push({ start, end: at, word: cur });
        out.push({ start: at, end: at + ch.length, word: ch });
        cur = '';
      } else {
        if (!cur) start = at;
        cur += ch;
      }
      at += ch.length;
    }
    if (cur) out.push({ start, end: at, word: cur });
  }
  return out;
}

/** termWords are the lower-case words of a search term. */
export function termWords(term) {
  return [...new Set(wordSpans(term).map((s) => s.word.toLowerCase()))];
}

/**
 * matchLength is how much of word a search matches, from its start: a term
 * word of two or more characters matches the words it begins, one of one
 * character only itself (as on the server); highlights are the words the
 * server says matched. 0 when nothing does.
 */
function matchLength(word, terms, highlights) {
  const lw = word.toLowerCase();
  let n = 0;
  for (const tw of terms) {
    const one = [...tw].length === 1;
    if (one ? lw === tw : lw.startsWith(tw)) n = Math.max(n, tw.length);
  }
  if (!n && highlights.has(lw)) n = word.length;
  // A word whose lower case has another length: mark all of it.
  if (n && lw.length !== word.length) n = word.length;
  return n;
}

/**
 * highlight returns text as a DocumentFragment of text nodes and <mark>
 * elements around the parts the search matched, cut to an excerpt around
 * the first match when the text is long.
 */
export function highlight(text, terms, highlights = new Set()) {
  let spans = wordSpans(text).map((s) => ({ ...s, n: matchLength(s.word, terms, highlights) })).filter((s) => s.n);
  let shown = text;
  let prefix = '';
  if (text.length > EXCERPT_CHARS) {
    const from = spans.length && spans[0].start > EXCERPT_BEFORE ? spans[0].start - EXCERPT_BEFORE : 0;
    // Start at a word's edge, not inside a word.
    let cut = from;
    while (cut > 0 && cut < text.length && /[\p{L}\p{N}]/u.test(text[cut - 1])) cut--;
    if (cut > 0) prefix = '…';
    shown = text.slice(cut, cut + EXCERPT_CHARS) + (cut + EXCERPT_CHARS < text.length ? '…' : '');
    spans = spans.map((s) => ({ ...s, start: s.start - cut })).filter((s) => s.start >= 0 && s.start + s.n <= EXCERPT_CHARS);
  }
  const frag = document.createDocumentFragment();
  if (prefix) frag.append(prefix);
  let at = 0;
  for (const s of spans) {
    if (s.start > at) frag.append(document.createTextNode(shown.slice(at, s.start)));
    frag.append(h('mark', { text: shown.slice(s.start, s.start + s.n) }));
    at = s.start + s.n;
  }
  if (at < shown.length) frag.append(document.createTextNode(shown.slice(at)));
  return frag;
}

/** resultText is the text a result shows: an edit's new text, a reply without its quote. */
function resultText(ev) {
  const c = ev.content || {};
  const nc = c['m.new_content'];
  if (nc && typeof nc.body === 'string') return nc.body;
  const body = typeof c.body === 'string' ? c.body : '';
  return replyTarget(ev) ? stripReplyFallback(body) : body;
}

/** targetOf is the message a result stands for: an edit stands for the edited message. */
function targetOf(ev) {
  const r = (ev.content || {})['m.relates_to'];
  return r && r.rel_type === 'm.replace' && r.event_id ? r.event_id : ev.event_id;
}

/** describeSearchError says why a search failed. */
function describeSearchError(e) {
  if (e && e.errcode === 'M_INVALID_PARAM' && /too broad/i.test(e.message || '')) return t('searchTooBroad');
  return t('searchError', { msg: describeError(e) });
}

/** searchIcon is a magnifying glass (no icon font or emoji needed; app.css styles it). */
export function searchIcon() {
  return icon('search-icon', 24, 24, 'M17 10.5a6.5 6.5 0 1 1-13 0a6.5 6.5 0 1 1 13 0z', 'M15.5 15.5 21 21');
}

/**
 * SearchView is a search field and its results. chat is the controller
 * (chat.js); roomId limits the search to one room (null: every room); id
 * prefixes the elements' IDs; onToggle(shown) is called when the results
 * appear or go.
 */
export class SearchView {
  constructor(chat, { roomId = null, id, placeholder, clearable = false, onToggle = () => {} }) {
    this.chat = chat;
    this.roomId = roomId;
    this.onToggle = onToggle;
    this.term = '';
    this.next = '';
    this.busy = null; // the AbortController of the request under way
    this.shown = false;

    this.input = h('input', {
      type: 'search', id: id + '-input', name: 'q', placeholder, 'aria-label': placeholder,
      autocomplete: 'off', enterkeyhint: 'search', spellcheck: 'false',
    });
    const go = h('button', { type: 'submit', id: id + '-go', class: 'small', text: t('searchGo') });
    // clearable: an × that ends the search (the room's bar has its own close).
    this.clearBtn = clearable ? h('button', { type: 'button', id: id + '-clear', class: 'icon search-clear', hidden: true, 'aria-label': t('searchClear'), title: t('searchClear'), text: '×' }) : null;
    this.clearBtn?.addEventListener('click', () => {
      this.close();
      this.input.focus();
    });
    this.form = h('form', { id: id + '-form', class: 'search-form', role: 'search' }, this.input, this.clearBtn, go);
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.run(this.input.value);
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && (this.shown || this.input.value)) {
        e.preventDefault();
        e.stopPropagation();
        this.close();
      }
    });
    this.input.addEventListener('input', () => {
      if (!this.input.value.trim() && this.shown) this.close(false);
    });
    this.state = h('p', { id: id + '-state', class: 'search-state muted', role: 'status' });
    this.list = h('ul', { id: id + '-list', class: 'search-list', 'aria-label': placeholder });
    this.moreBtn = h('button', { type: 'button', id: id + '-more', class: 'small search-more', hidden: true, text: t('searchMore') });
    this.moreBtn.addEventListener('click', () => this.more());
    this.results = h('div', { id: id + '-results', class: 'search-results', hidden: true }, this.state, this.list, this.moreBtn);
  }

  setShown(on) {
    if (this.shown === on) return;
    this.shown = on;
    this.results.hidden = !on;
    if (this.clearBtn) this.clearBtn.hidden = !on;
    this.onToggle(on);
  }

  /** close ends the search: no results, an empty field (focus kept there unless blur). */
  close(empty = true) {
    if (this.busy) this.busy.abort();
    this.busy = null;
    this.term = '';
    this.next = '';
    if (empty) this.input.value = '';
    this.list.replaceChildren();
    this.state.textContent = '';
    this.moreBtn.hidden = true;
    this.setShown(false);
  }

  /** run searches for term from the first page. */
  run(term) {
    term = String(term || '').trim();
    if (!term) {
      this.close();
      return Promise.resolve();
    }
    this.term = term;
    this.next = '';
    this.list.replaceChildren();
    this.terms = termWords(term);
    this.setShown(true);
    return this.page();
  }

  /** more shows the next page of results. */
  more() {
    if (!this.next || this.busy) return Promise.resolve();
    return this.page();
  }

  async page() {
    if (this.busy) this.busy.abort();
    const ctl = new AbortController();
    this.busy = ctl;
    const first = !this.next;
    this.state.textContent = t('searching');
    this.results.setAttribute('aria-busy', 'true');
    this.moreBtn.disabled = true;
    try {
      const res = await this.chat.api.search(this.term, { roomId: this.roomId, nextBatch: this.next, limit: PAGE, signal: ctl.signal });
      if (ctl.signal.aborted) return;
      const highlights = new Set((res.highlights || []).map((w) => String(w).toLowerCase()));
      const seen = new Set([...this.list.children].map((li) => li.dataset.key));
      for (const r of res.results || []) {
        const ev = r && r.result;
        if (!ev || !ev.event_id || seen.has(ev.event_id)) continue;
        seen.add(ev.event_id);
        this.list.append(this.item(ev, highlights));
      }
      const n = this.list.children.length;
      // count is the server's estimate of all the results; at least those
      // shown. A full page has a next_batch even when nothing follows: no
      // "More results" once count says all are shown.
      const total = Math.max(n, Number.isFinite(res.count) ? res.count : 0);
      this.next = Number.isFinite(res.count) && res.count <= n ? '' : res.next_batch || '';
      this.moreBtn.hidden = !this.next;
      if (!n) this.state.textContent = t('searchNone', { term: this.term });
      else this.state.textContent = total === 1 ? t('searchCountOne') : t('searchCount', { n: total });
      this.state.dataset.count = String(n);
      if (!first) this.list.children[n - (res.results || []).length]?.querySelector('a')?.focus();
    } catch (e) {
      if (ctl.signal.aborted) return;
      this.state.textContent = describeSearchError(e);
      this.state.dataset.error = 'true';
      return;
    } finally {
      if (this.busy === ctl) {
        this.busy = null;
        this.results.removeAttribute('aria-busy');
        this.moreBtn.disabled = false;
      }
    }
    delete this.state.dataset.error;
  }

  /**
   * item is one result: a link to the message's room (a link, not a
   * button: its text may take several lines) that opens it at the message.
   */
  item(ev, highlights) {
    const { model, me } = this.chat;
    const room = model.rooms.get(ev.room_id);
    const roomName = room ? room.title(me) : ev.room_id;
    const sender = ev.sender === me ? t('you') : room ? room.displayName(ev.sender) : localpart(ev.sender);
    const when = fmtResultTime(ev.origin_server_ts);
    const text = resultText(ev);
    const target = targetOf(ev);
    const btn = h('a', { href: '#/room/' + encodeURIComponent(ev.room_id), class: 'search-result', dataset: { eventId: target, roomId: ev.room_id } },
      h('span', { class: 'sr-top' },
        this.roomId ? null : h('span', { class: 'sr-room', text: roomName }),
        h('span', { class: 'sr-sender', text: sender }),
        h('time', { class: 'sr-time', datetime: new Date(ev.origin_server_ts).toISOString(), text: when })),
      h('span', { class: 'sr-body' }, highlight(text, this.terms, highlights)));
    btn.setAttribute('aria-label', t('searchResultLabel', { room: roomName, sender, time: when, body: text.slice(0, 200) }));
    btn.addEventListener('click', (e) => {
      e.preventDefault();
      this.chat.openResult(ev.room_id, target, this.roomId ? 'room' : 'all');
    });
    return h('li', { dataset: { key: ev.event_id } }, btn);
  }
}

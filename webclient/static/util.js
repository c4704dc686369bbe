// Small DOM and error helpers shared by the views.
import { lang, t } from './i18n.js';

/**
 * h creates an element. attrs: class, text, dataset, on<event> listeners,
 * true for boolean attributes, anything else as an attribute. Children are
 * nodes or strings (always text, never HTML).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/**
 * reconcile makes container's children follow items, in order, reusing the
 * element of every key that is already there: items are
 * {key, create() -> Element, update?(el)}. Reusing elements keeps focus,
 * scroll anchors and loaded images, and lets screen readers hear only what
 * is new.
 */
export function reconcile(container, items) {
  const old = new Map();
  for (const el of container.children) {
    if (el.dataset.key) old.set(el.dataset.key, el);
  }
  let at = container.firstElementChild;
  const keep = new Set();
  for (const it of items) {
    let el = old.get(it.key);
    if (!el) {
      el = it.create();
      el.dataset.key = it.key;
    }
    if (it.update) it.update(el);
    keep.add(el);
    if (el !== at) container.insertBefore(el, at);
    else at = at.nextElementSibling;
  }
  for (const el of [...container.children]) {
    if (!keep.has(el)) el.remove();
  }
}

/**
 * URL_RE finds web addresses in text: http:// or https:// (not inside a
 * word) up to a space, a quote, < or >, or Hangul (Korean text written right
 * after an address, "https://example.org에서", is not part of it).
 */
const URL_RE = /\bhttps?:\/\/[^\s<>"\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+/gi;
const CLOSERS = { ')': '(', ']': '[', '}': '{' };

/**
 * trimUrl drops the punctuation that ends a sentence rather than the
 * address: "see https://a.example/x." and "(https://a.example/x)" link
 * without the dot or the parenthesis, "https://a.example/wiki/A_(b)" keeps it.
 */
function trimUrl(u) {
  const count = (s, ch) => s.split(ch).length - 1;
  for (;;) {
    const last = u[u.length - 1];
    if (/[.,;:!?'*~…“”‘’«»。、]/.test(last)) {
      u = u.slice(0, -1);
    } else if (CLOSERS[last] && count(u, CLOSERS[last]) < count(u, last)) {
      u = u.slice(0, -1);
    } else {
      return u;
    }
  }
}

/**
 * linkify returns text as a DocumentFragment of text nodes and links, built
 * with DOM calls (never HTML): every http(s) address becomes
 * <a href target=_blank rel="noopener noreferrer">, showing the address as
 * written. No other scheme (javascript:, data:, …) is ever a link.
 */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const m of text.matchAll(URL_RE)) {
    const shown = trimUrl(m[0]);
    let href = '';
    try {
      const u = new URL(shown);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.hostname) href = u.href;
    } catch {
      // not an address after all: stays text
    }
    if (!href) continue;
    if (m.index > at) frag.append(document.createTextNode(text.slice(at, m.index)));
    frag.append(h('a', { href, target: '_blank', rel: 'noopener noreferrer', text: shown }));
    at = m.index + shown.length;
  }
  if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

/**
 * stripReplyFallback drops the "> <@user> quoted text" lines that older
 * clients put at the start of a reply's body (the quote is shown from the
 * original event instead).
 */
export function stripReplyFallback(body) {
  if (!body.startsWith('> ')) return body;
  const lines = body.split('\n');
  let i = 0;
  while (i < lines.length && lines[i].startsWith('> ')) i++;
  return i < lines.length && lines[i] === '' ? lines.slice(i + 1).join('\n') : body;
}

/** relabelDocument puts the page's own texts (title, skip link) in the UI language. */
export function relabelDocument() {
  document.documentElement.lang = lang;
  document.title = t('appName');
  const skip = document.getElementById('skip-link');
  if (skip) skip.textContent = t('skipToComposer');
}

/**
 * languageButton is the switch to the other language, named in that
 * language; onChoose(l) is called with it.
 */
export function languageButton(id, onChoose) {
  const other = lang === 'ko' ? 'en' : 'ko';
  const b = h('button', { type: 'button', id, class: 'small lang-btn', dataset: { lang: other }, title: t('language'), 'aria-label': t('switchLanguage') },
    h('span', { lang: other, text: other === 'ko' ? '한국어' : 'English' }));
  b.addEventListener('click', () => onChoose(other));
  return b;
}

/** sleep waits ms, or rejects when signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const id = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(id);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** randomId returns n random characters of [a-z0-9]. */
export function randomId(n = 12) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return [...a].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
}

/**
 * describeError turns an error of api.js into a sentence for the user;
 * ctx says what was being done ("login", "register", "invite") so that the
 * same error code can read right in each place.
 */
export function describeError(err, ctx = '', vars = {}) {
  if (!err) return '';
  if (err.name === 'UnreachableError') return err.outcomeUnknown ? t('errOutcomeUnknown') : t('errUnreachable');
  const code = err.errcode;
  switch (code) {
    case 'M_FORBIDDEN':
      if (ctx === 'login') return t('errWrongPassword');
      if (ctx === 'register') return t('errRegistrationDisabled');
      if (ctx === 'kick') return t('errKickForbidden', { user: vars.user || '', msg: err.message });
      if (ctx === 'settings') return t('errSettingsForbidden', { msg: err.message });
      if (ctx === 'redact') return t('errRedactForbidden', { msg: err.message });
      return t('errForbidden', { msg: err.message });
    case 'M_USER_IN_USE':
      return t('errUserTaken');
    case 'M_INVALID_USERNAME':
      return t('errBadUsername');
    case 'M_LIMIT_EXCEEDED':
      return err.retryAfterMs ? t('errRateLimited', { s: Math.ceil(err.retryAfterMs / 1000) }) : t('errRateLimitedShort');
    case 'M_UNAVAILABLE':
      return t('errUnavailable');
    case 'M_UNKNOWN_TOKEN':
      return t('errSessionExpired');
    case 'M_TOO_LARGE':
      return ctx === 'send' ? t('errMessageTooLong') : t('errTooLarge');
    case 'M_WEAK_PASSWORD':
      return t('errWeakPassword', { msg: err.message });
    case 'M_NOT_FOUND':
      if (ctx === 'invite' && vars.user) return t('errNoSuchUser', { user: vars.user });
      break;
  }
  if (code) return t('errGeneric', { msg: err.message, code });
  return String(err.message || err);
}

/** localpart returns "bob" of "@bob:server". */
export function localpart(userId) {
  const m = /^@([^:]+)/.exec(userId || '');
  return m ? m[1] : userId;
}

/** serverOf returns "server" of "@bob:server". */
export function serverOf(userId) {
  const i = (userId || '').indexOf(':');
  return i < 0 ? '' : userId.slice(i + 1);
}

/**
 * normalizeUserId turns what a person typed ("bob", "@bob",
 * "@bob:example.org") into a full user ID on myServer by default.
 */
export function normalizeUserId(input, myServer) {
  let s = String(input || '').trim();
  if (!s) return '';
  if (!s.startsWith('@')) s = '@' + s;
  if (!s.includes(':')) s += ':' + myServer;
  return s.toLowerCase();
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** icon makes a decorative SVG icon (viewBox 0 0 w h) of the path data ds; app.css styles it. */
/** lockIcon is the padlock of an encrypted chat. */
export function lockIcon() {
  return icon('lock-icon', 16, 16, 'M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 0 0-4 0v2z');
}

export function icon(cls, w, h, ...ds) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of ds) {
    const p = document.createElementNS(SVG_NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

// Images and files: authenticated media is fetched with the access token
// (through the failover transport, so from any data center that answers;
// media is replicated) and shown from blob: URLs that this module owns.
//
// An image that does not load — no data center had it yet, the network
// broke, a blob: URL went away — is fetched again: a few times with a
// growing pause while it is on screen, and again whenever its room is
// shown anew (retry()). A photo the user sent is shown from the bytes they
// chose (adopt), not from the outbox's preview, which is dropped soon
// after the message is sent.
import { fmtSize, t } from './i18n.js';
import { h, icon } from './util.js';

/** THUMB is the largest thumbnail edge in CSS pixels. */
const THUMB = 240;
/** RETRY_MS: the first pause before an image that failed is fetched again; it doubles up to RETRY_MAX_MS. */
const RETRY_MS = 2000;
const RETRY_MAX_MS = 30000;
/** LIMIT_TTL_MS: the server's upload limit is read again after this long. */
const LIMIT_TTL_MS = 10 * 60 * 1000;
/** SAVED_URL_MS: a downloaded file's blob: URL is freed this long after the save starts. */
const SAVED_URL_MS = 60000;

export class Media {
  constructor(api) {
    this.api = api;
    /** urls: mxc -> Promise of an object URL. */
    this.urls = new Map();
    /** limit: {bytes, at} of the server's m.upload.size (bytes 0: unknown). */
    this.limit = { bytes: 0, at: 0 };
  }

  /** url returns a Promise of an object URL for mxc (cached). */
  url(mxc) {
    let p = this.urls.get(mxc);
    if (!p) {
      p = this.api.download(mxc).then((blob) => URL.createObjectURL(blob));
      p.catch(() => {
        if (this.urls.get(mxc) === p) this.urls.delete(mxc); // try again next time
      });
      this.urls.set(mxc, p);
    }
    return p;
  }

  /**
   * adopt shows mxc from blob, the bytes the user uploaded, instead of
   * downloading them again. The URL is this cache's own (freed at logout).
   */
  adopt(mxc, blob) {
    if (!this.urls.has(mxc)) this.urls.set(mxc, Promise.resolve(URL.createObjectURL(blob)));
  }

  /** forget drops mxc's URL when it did not load (url fetches it again). */
  forget(mxc, url) {
    const p = this.urls.get(mxc);
    if (!p) return;
    p.then((u) => {
      if (u !== url || this.urls.get(mxc) !== p) return;
      this.urls.delete(mxc);
      URL.revokeObjectURL(u);
    }, () => {});
  }

  /**
   * uploadLimit returns the server's largest upload in bytes (GET
   * /_matrix/client/v1/media/config, m.upload.size), read again every
   * LIMIT_TTL_MS; 0 when no data center could say.
   */
  async uploadLimit() {
    if (this.limit.bytes && Date.now() - this.limit.at < LIMIT_TTL_MS) return this.limit.bytes;
    try {
      const cfg = await this.api.mediaConfig();
      const n = Number(cfg && cfg['m.upload.size']);
      if (n > 0) this.limit = { bytes: n, at: Date.now() };
    } catch {
      // keep what we knew; the server still refuses what is too large
    }
    return this.limit.bytes;
  }

  /** save downloads mxc (authenticated, with failover) and saves it as name. */
  async save(mxc, name) {
    saveBlob(await this.api.download(mxc), name);
  }

  /** release frees every object URL (at logout). */
  release() {
    for (const p of this.urls.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    this.urls.clear();
  }
}

/** saveBlob makes the browser save blob as a file called name. */
export function saveBlob(blob, name) {
  const u = URL.createObjectURL(blob);
  const a = h('a', { href: u, download: name || 'file', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(u), SAVED_URL_MS);
}

/** thumbSize fits w×h into the thumbnail box. */
export function thumbSize(w, h) {
  if (!w || !h) return { w: THUMB, h: Math.round(THUMB * 0.75) };
  const s = Math.min(1, THUMB / Math.max(w, h));
  return { w: Math.max(1, Math.round(w * s)), h: Math.max(1, Math.round(h * s)) };
}

/**
 * imageButton renders a thumbnail that opens the full image. load returns
 * an object URL or a Promise of one; it is called again when the image
 * fails (onBroken(url) is told first, to drop a URL that does not load).
 * The button's retry() fetches a broken image again at once.
 */
export function imageButton(load, { name, w, h: ht, onOpen, onBroken }) {
  const size = thumbSize(w, ht);
  const img = h('img', { class: 'thumb', alt: name || t('photo'), width: size.w, height: size.h, decoding: 'async' });
  const btn = h('button', { type: 'button', class: 'image-button', 'aria-label': t('openImage', { name: name || '' }) }, img);
  let url = '';
  let pause = RETRY_MS;
  let timer = 0;
  let loading = false;
  const attempt = () => {
    clearTimeout(timer);
    timer = 0;
    loading = true;
    Promise.resolve().then(load).then((u) => {
      url = u;
      if (img.getAttribute('src') === u && img.complete && img.naturalWidth) {
        loaded();
        return;
      }
      img.src = u;
    }, failed);
  };
  const loaded = () => {
    loading = false;
    pause = RETRY_MS;
    btn.classList.remove('broken');
    btn.dataset.loaded = 'true';
  };
  const failed = () => {
    loading = false;
    btn.classList.add('broken');
    delete btn.dataset.loaded;
    if (timer) return;
    // While it is on screen (or about to be: the first failure may come
    // before the row is added), fetch it again after a pause.
    timer = setTimeout(() => {
      timer = 0;
      if (btn.isConnected) attempt();
    }, pause);
    pause = Math.min(pause * 2, RETRY_MAX_MS);
  };
  img.addEventListener('load', loaded);
  img.addEventListener('error', () => {
    if (!url) return;
    if (onBroken) onBroken(url);
    failed();
  });
  btn.addEventListener('click', () => {
    if (btn.dataset.loaded === 'true') onOpen(url, name);
    else btn.retry();
  });
  /** retry fetches a broken image again now (not one that is loading). */
  btn.retry = () => {
    if (loading || !btn.classList.contains('broken')) return;
    pause = RETRY_MS;
    attempt();
  };
  attempt();
  return btn;
}

/**
 * fileChip renders a file (name, human-readable size) as a button that
 * saves it: onSave() does the download and rejects when it fails.
 */
export function fileChip({ name, size }, onSave) {
  const sizeText = Number.isFinite(size) && size >= 0 ? fmtSize(size) : '';
  const status = h('span', { class: 'file-status', role: 'status' });
  const btn = h('button', {
    type: 'button', class: 'file-chip', dataset: { name: name || '', size: sizeText },
    'aria-label': t('downloadFile', { name: name || t('file'), size: sizeText }), title: t('downloadFile', { name: name || t('file'), size: sizeText }),
  },
  icon('file-icon', 22, 28, 'M2 1.5h11l7 7v18H2z', 'M13 1.5v7h7', 'M6 15h10M6 19h10M6 23h6'),
  h('span', { class: 'file-text' },
    h('span', { class: 'file-name', text: name || t('file') }),
    h('span', { class: 'file-size', text: sizeText }), status));
  btn.addEventListener('click', async () => {
    if (btn.dataset.state === 'loading') return;
    btn.dataset.state = 'loading';
    status.textContent = t('downloading');
    try {
      await onSave();
      btn.dataset.state = 'saved';
      status.textContent = '';
    } catch {
      btn.dataset.state = 'failed';
      status.textContent = t('downloadFailed');
    }
  });
  return btn;
}

/** openLightbox shows an image full size in a modal dialog. */
export function openLightbox(url, name) {
  const close = h('button', { type: 'button', class: 'lightbox-close', text: t('close') });
  const dlg = h('dialog', { class: 'lightbox', id: 'lightbox', 'aria-label': name || t('photo') },
    h('img', { src: url, alt: name || t('photo') }), close);
  close.addEventListener('click', () => dlg.close());
  dlg.addEventListener('click', (e) => {
    if (e.target === dlg) dlg.close();
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  close.focus();
}

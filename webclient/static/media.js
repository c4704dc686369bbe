// Images: authenticated media is fetched with the access token (through the
// failover transport) and shown from blob: URLs.
import { h } from './util.js';
import { t } from './i18n.js';

/** THUMB is the largest thumbnail edge in CSS pixels. */
const THUMB = 240;

export class Media {
  constructor(api) {
    this.api = api;
    /** urls: mxc -> Promise of an object URL. */
    this.urls = new Map();
  }

  /** url returns a Promise of an object URL for mxc (cached). */
  url(mxc) {
    let p = this.urls.get(mxc);
    if (!p) {
      p = this.api.download(mxc).then((blob) => URL.createObjectURL(blob));
      p.catch(() => this.urls.delete(mxc)); // try again next time
      this.urls.set(mxc, p);
    }
    return p;
  }

  /** release frees every object URL (at logout). */
  release() {
    for (const p of this.urls.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    this.urls.clear();
  }
}

/** thumbSize fits w×h into the thumbnail box. */
export function thumbSize(w, h) {
  if (!w || !h) return { w: THUMB, h: Math.round(THUMB * 0.75) };
  const s = Math.min(1, THUMB / Math.max(w, h));
  return { w: Math.max(1, Math.round(w * s)), h: Math.max(1, Math.round(h * s)) };
}

/**
 * imageButton renders a thumbnail that opens the full image: src is an
 * object URL or a Promise of one.
 */
export function imageButton(src, { name, w, h: ht, onOpen }) {
  const size = thumbSize(w, ht);
  const img = h('img', { class: 'thumb', alt: name || t('photo'), width: size.w, height: size.h, decoding: 'async' });
  const btn = h('button', { type: 'button', class: 'image-button', 'aria-label': t('openImage', { name: name || '' }) }, img);
  Promise.resolve(src).then((u) => {
    img.src = u;
    btn.dataset.loaded = 'true';
    btn.addEventListener('click', () => onOpen(u, name));
  }, () => {
    btn.classList.add('broken');
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

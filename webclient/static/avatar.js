// Avatars: a person's photo (their profile's avatar_url, fetched as
// authenticated media) in a small circle, or their initial while it loads,
// when it fails or when they have none; and the shrinking of a chosen photo
// before it is uploaded.
import { h } from './util.js';

/** AVATAR_PX is the edge of an uploaded avatar: enough for every size shown. */
const AVATAR_PX = 256;

/** initialOf is the first letter of a name (without the @ of a user ID). */
export function initialOf(name) {
  const ch = Array.from(String(name || '?').replace(/^@/, ''))[0] || '?';
  return ch.toUpperCase();
}

/**
 * avatarEl returns the avatar of name: its initial, replaced by the photo
 * at mxc (through media, a Media of media.js) once that has loaded. cls
 * adds classes (size: "avatar-sm" and the like). The element is
 * decorative (aria-hidden): the name is always written next to it.
 */
export function avatarEl(media, name, mxc, cls = '') {
  const el = h('span', { class: `avatar person ${cls}`.trim(), 'aria-hidden': 'true', dataset: { mxc: mxc || '' } },
    h('span', { class: 'initial', text: initialOf(name) }));
  if (mxc && media) {
    media.url(mxc).then((u) => {
      const img = h('img', { class: 'avatar-img', alt: '', decoding: 'async' });
      img.addEventListener('load', () => {
        el.replaceChildren(img);
        el.dataset.loaded = 'true';
      }, { once: true });
      img.addEventListener('error', () => {
        el.dataset.loaded = 'false';
      }, { once: true });
      img.src = u;
    }, () => {
      el.dataset.loaded = 'false'; // the initial stays
    });
  }
  return el;
}

/**
 * avatarSig is what an avatar shows; an element is redrawn only when it
 * changes (so a loaded photo is not fetched again at every update).
 */
export function avatarSig(name, mxc) {
  return initialOf(name) + '|' + (mxc || '');
}

/**
 * shrinkImage returns the photo as a square-bounded JPEG (or PNG for a
 * PNG) no larger than AVATAR_PX on its longer edge; a small one is kept as
 * it is. Everyone in every chat downloads it, so it should be small.
 */
export async function shrinkImage(file) {
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    throw Object.assign(new Error('not an image'), { notImage: true });
  }
  const s = Math.min(1, AVATAR_PX / Math.max(bmp.width, bmp.height));
  if (s === 1 && file.size <= 200 * 1024) {
    bmp.close();
    return file;
  }
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(bmp.width * s));
  canvas.height = Math.max(1, Math.round(bmp.height * s));
  canvas.getContext('2d').drawImage(bmp, 0, 0, canvas.width, canvas.height);
  bmp.close();
  const type = file.type === 'image/png' ? 'image/png' : 'image/jpeg';
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, type, 0.88));
  if (!blob) throw new Error('could not encode the image');
  const name = (file.name || 'avatar').replace(/\.[^.]*$/, '') + (type === 'image/png' ? '.png' : '.jpg');
  return new File([blob], name, { type });
}

// My profile: the display name and photo others see in every chat (PUT
// /profile/{userId}/displayname and /avatar_url; the server updates my
// member event in each room I am in), from the button with my name in the
// top bar.
import { avatarEl, shrinkImage } from './avatar.js';
import { t } from './i18n.js';
import { describeError, h, localpart } from './util.js';

/** NAME_MAX: the longest display name the dialog takes (characters). */
const NAME_MAX = 64;

/**
 * profileDialog opens the dialog for chat's user (chat.profile is
 * {displayname, avatarUrl}); chat.setProfile is called with what was saved.
 */
export function profileDialog(chat) {
  const cur = chat.profile;
  let file = null; // a new photo, not uploaded yet
  let remove = false;
  const preview = h('span', { class: 'profile-preview' });
  const showPreview = (url) => {
    const name = nameInput.value.trim() || localpart(chat.me);
    const el = avatarEl(url ? null : chat.media, name, url ? '' : (remove ? '' : cur.avatarUrl), 'avatar-lg');
    if (url) {
      const img = h('img', { class: 'avatar-img', alt: '', src: url });
      el.replaceChildren(img);
    }
    preview.replaceChildren(el);
  };
  const nameInput = h('input', {
    id: 'profile-name', name: 'displayname', type: 'text', maxlength: String(NAME_MAX), autocomplete: 'nickname',
    value: cur.displayname || '', placeholder: localpart(chat.me), 'aria-describedby': 'profile-hint',
  });
  const fileInput = h('input', { id: 'profile-file', type: 'file', accept: 'image/*', class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
  const pick = h('button', { type: 'button', id: 'profile-photo', class: 'small', text: t('changePhoto') });
  const drop = h('button', { type: 'button', id: 'profile-photo-remove', class: 'small danger', text: t('removePhoto') });
  drop.hidden = !cur.avatarUrl;
  const err = h('p', { class: 'error', role: 'alert', id: 'dlg-profile-error' });
  const ok = h('button', { type: 'submit', class: 'primary', id: 'dlg-profile-submit', text: t('save') });
  const cancel = h('button', { type: 'button', id: 'dlg-profile-cancel', text: t('cancel') });
  let objectUrl = '';
  pick.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const f = fileInput.files && fileInput.files[0];
    fileInput.value = '';
    if (!f) return;
    if (!f.type.startsWith('image/')) {
      err.textContent = t('errNotImage');
      return;
    }
    err.textContent = '';
    file = f;
    remove = false;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(f);
    showPreview(objectUrl);
    drop.hidden = false;
  });
  drop.addEventListener('click', () => {
    file = null;
    remove = true;
    drop.hidden = true;
    showPreview('');
    pick.focus();
  });
  nameInput.addEventListener('input', () => {
    if (!file) showPreview('');
  });

  const form = h('form', { method: 'dialog', novalidate: true, class: 'profile-form' },
    h('h2', { id: 'dlg-profile-title', text: t('myProfile') }),
    h('div', { class: 'profile-photo-row' }, preview, h('div', { class: 'profile-photo-actions' }, pick, drop), fileInput),
    h('div', { class: 'field' }, h('label', { for: 'profile-name', text: t('displayName') }), nameInput,
      h('small', { id: 'profile-hint', class: 'muted', text: t('profileHint', { id: chat.me }) })),
    err, h('div', { class: 'actions' }, cancel, ok));
  const dlg = h('dialog', { id: 'dlg-profile', class: 'form-dialog', 'aria-labelledby': 'dlg-profile-title' }, form);
  cancel.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    dlg.remove();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    ok.disabled = true;
    ok.textContent = t('saving');
    try {
      const name = nameInput.value.trim().slice(0, NAME_MAX);
      let avatarUrl = cur.avatarUrl;
      if (file) {
        const small = await shrinkImage(file);
        avatarUrl = await chat.api.upload(small);
        // The photo just chosen is shown from memory, not downloaded again.
        chat.media.urls.set(avatarUrl, Promise.resolve(URL.createObjectURL(small)));
      } else if (remove) {
        avatarUrl = '';
      }
      if (avatarUrl !== cur.avatarUrl) await chat.api.setProfileField(chat.me, 'avatar_url', avatarUrl);
      if (name !== (cur.displayname || '')) await chat.api.setProfileField(chat.me, 'displayname', name);
      chat.setProfile({ displayname: name, avatarUrl });
      dlg.close();
    } catch (ex) {
      err.textContent = ex && ex.notImage ? t('errNotImage') : describeError(ex, 'profile');
    } finally {
      ok.disabled = false;
      ok.textContent = t('save');
    }
  });
  document.body.append(dlg);
  showPreview('');
  dlg.showModal();
  nameInput.focus();
  return dlg;
}

// The sign-up and log-in page.
import { Api, discover, MatrixError } from './api.js';
import { setLang, t } from './i18n.js';
import { loadKnownDataCenters, saveKnownDataCenters, saveLanguageChoice } from './store.js';
import { describeError, h, languageButton, relabelDocument } from './util.js';

/**
 * MIN_PASSWORD is the shortest password sign-up accepts (in characters, as
 * a person counts them: code points). The rule is shown under the field
 * before anything is sent; the server's own rules, if any, still apply.
 */
const MIN_PASSWORD = 8;

/** passwordLength counts characters, not UTF-16 units. */
function passwordLength(s) {
  return [...s].length;
}

/**
 * findDataCenters learns the data centers from base's well-known document,
 * falling back to the ones remembered from an earlier visit when base does
 * not answer (its data center may be the one that is down).
 */
async function findDataCenters(base) {
  try {
    const d = await discover(base, AbortSignal.timeout(8000));
    saveKnownDataCenters(d.homeserver, d.dcs);
    return d;
  } catch (e) {
    const known = loadKnownDataCenters();
    if (known && (base === location.origin || known.dcs.some((x) => x.base_url === base))) {
      // Any one of them may answer: try them in order.
      for (const dc of known.dcs) {
        try {
          const d = await discover(dc.base_url, AbortSignal.timeout(5000));
          saveKnownDataCenters(d.homeserver, d.dcs);
          return d;
        } catch {
          // try the next
        }
      }
      return known;
    }
    throw e instanceof MatrixError ? e : Object.assign(new Error(e.message), { name: 'UnreachableError' });
  }
}

/**
 * renderAuth shows the log-in/sign-up page in root; onSession(session, api)
 * is called once logged in. notice is shown first (e.g. "session ended").
 * keep ({mode, user, server}) is what the page held before its language
 * switch built it again.
 */
export function renderAuth(root, { onSession, notice = '', keep = null }) {
  let mode = 'login';
  let lockedUntil = 0;
  let lockTimer = 0;

  const user = h('input', { id: 'auth-user', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, 'aria-describedby': 'auth-user-hint' });
  const pass = h('input', { id: 'auth-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const pass2 = h('input', { id: 'auth-pass2', name: 'password2', type: 'password', autocomplete: 'new-password' });
  const server = h('input', { id: 'auth-server', name: 'server', type: 'url', value: location.origin, autocomplete: 'url' });
  const title = h('h2', { id: 'auth-title' });
  const errorBox = h('p', { id: 'auth-error', class: 'error', role: 'alert' });
  const progress = h('p', { id: 'auth-progress', class: 'muted', role: 'status' });
  const submit = h('button', { id: 'auth-submit', type: 'submit', class: 'primary' });
  const switcher = h('button', { id: 'auth-switch', type: 'button', class: 'link' });
  const pass2Row = h('div', { class: 'field' }, h('label', { for: 'auth-pass2', text: t('passwordAgain') }), pass2);
  const hint = h('small', { id: 'auth-user-hint', class: 'muted', text: t('usernameHint') });
  const passHint = h('small', { id: 'auth-pass-hint', class: 'hint muted', text: t('passwordRule', { n: MIN_PASSWORD }) });

  const form = h('form', { id: 'auth-form', class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
    title,
    h('div', { class: 'field' }, h('label', { for: 'auth-user', text: t('username') }), user, hint),
    h('div', { class: 'field' }, h('label', { for: 'auth-pass', text: t('password') }), pass, passHint),
    pass2Row,
    h('details', { class: 'advanced' }, h('summary', { text: t('advanced') }),
      h('div', { class: 'field' }, h('label', { for: 'auth-server', text: t('server') }), server)),
    errorBox, progress, submit, switcher);

  function setMode(m) {
    mode = m;
    title.textContent = m === 'login' ? t('login') : t('signup');
    submit.textContent = m === 'login' ? t('login') : t('signup');
    switcher.textContent = m === 'login' ? t('needAccount') : t('haveAccount');
    pass.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    pass2Row.hidden = m === 'login';
    hint.hidden = m === 'login';
    passHint.hidden = m === 'login';
    if (m === 'login') pass.removeAttribute('aria-describedby');
    else pass.setAttribute('aria-describedby', 'auth-pass-hint');
    markPassword();
    errorBox.textContent = '';
    form.dataset.mode = m;
  }

  /** markPassword shows whether the password meets the rule yet (sign-up). */
  function markPassword() {
    const n = passwordLength(pass.value);
    passHint.dataset.ok = String(n >= MIN_PASSWORD);
    passHint.classList.toggle('met', n >= MIN_PASSWORD);
    if (n >= MIN_PASSWORD) passHint.classList.remove('bad');
  }

  function showError(msg, field) {
    errorBox.textContent = msg;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  function lockFor(ms) {
    lockedUntil = Date.now() + ms;
    submit.disabled = true;
    clearInterval(lockTimer);
    const tick = () => {
      const left = lockedUntil - Date.now();
      if (left <= 0) {
        clearInterval(lockTimer);
        submit.disabled = false;
        errorBox.textContent = '';
        return;
      }
      errorBox.textContent = t('errRateLimited', { s: Math.ceil(left / 1000) });
    };
    tick();
    lockTimer = setInterval(tick, 1000);
  }

  switcher.addEventListener('click', () => {
    setMode(mode === 'login' ? 'signup' : 'login');
    user.focus();
  });
  for (const el of [user, pass, pass2]) el.addEventListener('input', () => el.removeAttribute('aria-invalid'));
  pass.addEventListener('input', markPassword);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (Date.now() < lockedUntil) return;
    errorBox.textContent = '';
    let name = user.value.trim();
    if (mode === 'signup') name = name.replace(/^@/, '').replace(/:.*$/, '').toLowerCase();
    if (!name || !pass.value) return showError(t('fillBoth'), name ? pass : user);
    if (mode === 'signup' && passwordLength(pass.value) < MIN_PASSWORD) {
      passHint.classList.add('bad');
      return showError(t('passwordTooShort', { n: MIN_PASSWORD }), pass);
    }
    if (mode === 'signup' && pass.value !== pass2.value) return showError(t('passwordsDiffer'), pass2);
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    progress.textContent = mode === 'login' ? t('loggingIn') : t('signingUp');
    try {
      const base = (server.value.trim() || location.origin).replace(/\/+$/, '');
      const { homeserver, dcs } = await findDataCenters(base);
      const api = new Api(dcs, homeserver);
      let res;
      if (mode === 'login') {
        res = await api.login(name, pass.value);
      } else {
        try {
          res = await api.register(name, pass.value);
        } catch (err) {
          // A retried sign-up whose first attempt got through finds the
          // name taken by itself: logging in with the same password tells.
          if (!(err instanceof MatrixError) || err.errcode !== 'M_USER_IN_USE') throw err;
          res = await api.login(name, pass.value).catch(() => {
            throw err;
          });
        }
      }
      api.token = res.access_token;
      onSession({ userId: res.user_id, accessToken: res.access_token, deviceId: res.device_id, homeserver, dcs, current: api.dc.base_url }, api);
    } catch (err) {
      progress.textContent = '';
      submit.disabled = false;
      if (err && err.errcode === 'M_LIMIT_EXCEEDED') {
        lockFor(err.retryAfterMs || 5000);
        return;
      }
      const field = err && (err.errcode === 'M_USER_IN_USE' || err.errcode === 'M_INVALID_USERNAME') ? user
        : err && ((err.errcode === 'M_FORBIDDEN' && mode === 'login') || err.errcode === 'M_WEAK_PASSWORD') ? pass : null;
      showError(describeError(err, mode === 'login' ? 'login' : 'register'), field);
    } finally {
      form.removeAttribute('aria-busy');
    }
  });

  // The language switch: the choice is kept on this device, and written
  // to the account data once logged in (chat.js).
  const langBtn = languageButton('auth-lang', (l) => {
    saveLanguageChoice(l, Date.now());
    setLang(l);
    relabelDocument();
    renderAuth(root, { onSession, notice, keep: { mode, user: user.value, server: server.value } });
    document.getElementById('auth-lang')?.focus();
  });
  const card = h('main', { class: 'auth', id: 'auth' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'auth-top' }, langBtn),
      h('div', { class: 'brand' }, h('img', { src: '/_planb/web/icon.svg', alt: '', width: 48, height: 48 }),
        h('h1', { text: t('appName') })),
      h('p', { class: 'tagline', text: t('tagline') }),
      notice ? h('p', { class: 'notice', role: 'status', text: notice }) : null,
      form));
  if (keep) {
    user.value = keep.user;
    server.value = keep.server;
  }
  setMode(keep ? keep.mode : 'login');
  root.replaceChildren(card);
  if (!keep) user.focus();
}

// What the client keeps in localStorage: the session (with the list of data
// centers, so a reload works even when the data center that served the page
// is gone) and the outbox of messages not yet acknowledged.

const SESSION_KEY = 'planb.session';
const OUTBOX_PREFIX = 'planb.outbox.';

function read(key) {
  try {
    const s = localStorage.getItem(key);
    return s ? JSON.parse(s) : null;
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // storage full or disabled: keep running from memory
  }
}

/**
 * loadSession returns {userId, accessToken, deviceId, homeserver, dcs,
 * current, failed} or null: current is the base URL of the data center in
 * use, failed the times of its recent failures ({base_url: ms}).
 */
export function loadSession() {
  const s = read(SESSION_KEY);
  return s && s.userId && s.accessToken ? s : null;
}

export function saveSession(s) {
  write(SESSION_KEY, s);
}

export function clearSession() {
  write(SESSION_KEY, null);
}

/** loadOutbox returns the persisted outbox items of userId. */
export function loadOutbox(userId) {
  const items = read(OUTBOX_PREFIX + userId);
  return Array.isArray(items) ? items : [];
}

/** saveOutbox persists items (without in-memory fields such as files). */
export function saveOutbox(userId, items) {
  return write(OUTBOX_PREFIX + userId, items.length ? items : null);
}

export function clearOutbox(userId) {
  write(OUTBOX_PREFIX + userId, null);
}

const KNOWN_DCS_KEY = 'planb.datacenters';

/**
 * saveKnownDataCenters remembers the data centers last learnt, kept across
 * logouts, so the login page works when the data center that served the
 * page has gone away since.
 */
export function saveKnownDataCenters(homeserver, dcs) {
  write(KNOWN_DCS_KEY, { homeserver, dcs });
}

/** loadKnownDataCenters returns {homeserver, dcs} or null. */
export function loadKnownDataCenters() {
  const v = read(KNOWN_DCS_KEY);
  return v && Array.isArray(v.dcs) && v.dcs.length ? v : null;
}

const LANGUAGE_KEY = 'planb.language';

/**
 * loadLanguageChoice returns the language the user chose on this device,
 * {language: "ko"|"en", at: ms}, or null when they have not chosen one.
 */
export function loadLanguageChoice() {
  const v = read(LANGUAGE_KEY);
  return v && (v.language === 'ko' || v.language === 'en') && Number.isFinite(v.at) ? v : null;
}

/** saveLanguageChoice keeps the user's choice of language (kept across logouts). */
export function saveLanguageChoice(language, at) {
  write(LANGUAGE_KEY, { language, at });
}

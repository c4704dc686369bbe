// Entry point: resume the saved session or show the log-in page.
import { Api } from './api.js';
import { renderAuth } from './auth.js';
import { Chat } from './chat.js';
import { loadSession, saveSession } from './store.js';
import { relabelDocument } from './util.js';

const root = document.getElementById('app');
relabelDocument();

/** The running app, exposed for debugging in the console (window.planb). */
const state = { chat: null };
window.planb = state;

function showAuth(notice = '') {
  state.chat = null;
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  renderAuth(root, {
    notice,
    onSession(session, api) {
      saveSession(session);
      startChat(session, api);
    },
  });
}

function startChat(session, api) {
  const chat = new Chat(root, session, api, { onLogout: showAuth });
  state.chat = chat;
  chat.start();
}

// The service worker keeps the app shell, so that this page loads even when
// the data center that served it is down (see sw.js).
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {
    // this data center is unreachable or the browser refuses: run without
  });
}

const saved = loadSession();
if (saved) {
  const api = new Api(saved.dcs || [], saved.current || saved.homeserver, saved.failed);
  api.token = saved.accessToken;
  startChat(saved, api);
} else {
  showAuth();
}

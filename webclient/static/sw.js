const SHELL = { version: 'dev', files: [] };
// The service worker: the app shell (index.html, the modules, CSS, icon)
// from a cache, so that the page loads while the data center that served it
// is down. The server replaces the first line with this build's version and
// files; a new deploy changes it, the browser installs the new worker,
// which caches the new shell and deletes the old one.
//
// Only same-origin GETs of "/" (navigations) and of /_planb/web/ are
// answered, cache first; everything else — every Matrix API request, to
// this origin or another data center — goes to the network untouched and
// is never cached.
const CACHE_PREFIX = 'planb-shell-';
const CACHE = CACHE_PREFIX + SHELL.version;
const ASSET_PREFIX = '/_planb/web/';

self.addEventListener('install', (e) => {
  e.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.files.map((f) => new Request(f, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) {
      if (k.startsWith(CACHE_PREFIX) && k !== CACHE) await caches.delete(k);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  let key = '';
  if (req.mode === 'navigate' && url.pathname === '/') key = '/';
  else if (url.pathname.startsWith(ASSET_PREFIX) && SHELL.files.includes(url.pathname)) key = url.pathname;
  if (!key) return;
  e.respondWith(fromShell(key, req));
});

/** fromShell answers from the cache, or from the network if not cached. */
async function fromShell(key, req) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key);
  return hit || fetch(req);
}

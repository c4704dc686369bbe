// The local cache: the rooms and their last events in IndexedDB, so that a
// page (re)loaded while the data centers are slow or unreachable shows the
// chat list and the recent messages at once, before the first /sync
// answers. It holds what the model showed last (Model.snapshot), one record
// per user; it is a display cache only: the first /sync replaces it.
const DB_NAME = 'planb';
const DB_VERSION = 1;
const STORE = 'rooms';

/** openDB opens the database, or rejects if IndexedDB is not available. */
function openDB() {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') return reject(new Error('no IndexedDB'));
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** RoomCache keeps one user's snapshot; every method swallows storage errors. */
export class RoomCache {
  constructor(userId) {
    this.userId = userId;
    this.db = null;
  }

  async store(mode, fn) {
    if (!this.db) this.db = openDB();
    const db = await this.db;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req && req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /** load returns the saved snapshot or null. */
  async load() {
    try {
      return (await this.store('readonly', (s) => s.get(this.userId))) || null;
    } catch {
      return null;
    }
  }

  /** save replaces the snapshot. */
  async save(snapshot) {
    try {
      await this.store('readwrite', (s) => s.put(snapshot, this.userId));
      return true;
    } catch {
      return false;
    }
  }

  /** clear deletes the snapshot (at logout). */
  async clear() {
    try {
      await this.store('readwrite', (s) => s.delete(this.userId));
    } catch {
      // nothing kept, or nothing to do
    }
  }
}

/**
 * Turns caller-supplied names into S3 object keys, in one place.
 *
 * `photos\\a.png`, `/photos/./a.png` and `photos//a.png` all become `photos/a.png`; `..`
 * may walk within a name but never above the storage location; empty names, control
 * characters and keys over S3's 1,024-byte limit are rejected before any request.
 * Names are put in Unicode NFC form so that visually identical names share one key.
 */
import { InvalidKeyError } from './storage.errors.js';

/** S3's limit on a key's UTF-8 length. */
export const MAX_KEY_BYTES = 1024;

// C0 and C1 control characters, DEL, line and paragraph separators. S3 accepts some of
// them; browsers, URLs and log lines do not.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * Normalizes `name` relative to the storage location.
 * @returns the name without the location prefix (what `save()` returns to callers).
 * @throws InvalidKeyError
 */
export function normalizeName(name: unknown): string {
  if (typeof name !== 'string') throw new InvalidKeyError(String(name), `a name must be a string, got ${typeof name}`);
  if (CONTROL.test(name)) throw new InvalidKeyError(name, 'it contains a control character (NUL, newline, tab, …)');
  // A lone surrogate cannot be encoded as UTF-8, so it can be neither a key nor a URL.
  if (!name.isWellFormed()) throw new InvalidKeyError(name, 'it contains an unpaired UTF-16 surrogate (not valid Unicode)');
  const segments: string[] = [];
  for (const segment of name.normalize('NFC').replace(/\\/g, '/').split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw new InvalidKeyError(name, "it escapes the storage location with '..'");
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  if (segments.length === 0) throw new InvalidKeyError(name, 'it is empty once slashes and dots are removed');
  return segments.join('/');
}

/**
 * Normalizes a listing prefix: like {@link normalizeName}, but an empty prefix is allowed
 * and a trailing slash is kept (`avatars/` lists the "folder", `avatars` also matches
 * `avatars-old/`).
 */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '' || /^[/\\.]*$/.test(prefix)) return '';
  const name = normalizeName(prefix);
  return /[/\\]$/.test(prefix) ? `${name}/` : name;
}

/** Joins a (normalized) location and name into the full key, checking S3's length limit. */
export function toKey(location: string, name: string): string {
  const key = location ? `${location}/${name}` : name;
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new InvalidKeyError(name, `the key is ${Buffer.byteLength(key, 'utf8')} bytes long; S3 allows at most ${MAX_KEY_BYTES}`);
  }
  return key;
}

/** Strips the location prefix from a full key (the inverse of {@link toKey}). */
export function fromKey(location: string, key: string): string {
  return location && key.startsWith(`${location}/`) ? key.slice(location.length + 1) : key;
}

/**
 * An alternative name for a taken one: `dir/photo.png` → `dir/photo_k3J9a0Qx.png`.
 * Eight random base-62 characters: about 2^47 choices, so retries practically never collide.
 */
export function alternativeName(name: string, random: (bytes: number) => Buffer): string {
  const slash = name.lastIndexOf('/');
  const dir = name.slice(0, slash + 1);
  const file = name.slice(slash + 1);
  const dot = file.lastIndexOf('.');
  const stem = dot > 0 ? file.slice(0, dot) : file;
  const ext = dot > 0 ? file.slice(dot) : '';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const suffix = Array.from(random(8), (b) => alphabet[b % 62]).join('');
  return `${dir}${stem}_${suffix}${ext}`;
}

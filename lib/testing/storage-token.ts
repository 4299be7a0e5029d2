/**
 * The injection token of a storage, computed here so the test kit imports nothing from the
 * module's token helpers.
 */
import { MediaStorage } from '../media.storage.js';

/**
 * The token the real storage is provided under: `MediaStorage` for the unnamed one, the
 * string `nestjs-s3-storage:storage:<name>` for a named one. It must equal what
 * `getStorageToken(name)` returns, so that a test module replaces exactly the app's storage.
 */
export function storageTokenFor(name?: string): typeof MediaStorage | string {
  return name === undefined ? MediaStorage : `nestjs-s3-storage:storage:${name}`;
}

/**
 * What a storage name may be. Free of Nest imports, so the environment mapping (and with it
 * the CLI) can check names too.
 */
import { StorageConfigurationError } from './storage.errors.js';

/** Letters, digits, `-` and `_`, starting with a letter or digit: what `<NAME>_S3_*` can spell. */
const STORAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/**
 * Returns `name` when it is a valid storage name.
 * @throws StorageConfigurationError naming the rule, when it is not.
 */
export function checkStorageName(name: string): string {
  if (typeof name !== 'string' || !STORAGE_NAME.test(name)) {
    throw new StorageConfigurationError([
      `name: must be 1-63 letters, digits, "-" or "_", starting with a letter or digit (got ${JSON.stringify(name)}); omit it for the unnamed storage`,
    ]);
  }
  return name;
}

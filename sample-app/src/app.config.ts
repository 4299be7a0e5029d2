/**
 * The sample app's own settings, read from the environment in this one place (the storage
 * settings come from the library's `storageConfig`).
 */
import { registerAs } from '@nestjs/config';

/** 5 MiB: a generous avatar, small enough to buffer in memory. */
export const DEFAULT_AVATAR_MAX_BYTES = 5 * 1024 * 1024;

/** 5 GiB: files go to S3 in parts (streamed, or straight from the browser), so the limit is about storage, not the app's memory. */
export const DEFAULT_FILE_MAX_BYTES = 5 * 1024 * 1024 * 1024;

export interface AvatarsConfig {
  /** Largest avatar accepted, in bytes. Env: `AVATAR_MAX_BYTES`. */
  maxBytes: number;
  /** Largest file accepted on `POST /users/:id/files` and by the page's Uppy uploads, in bytes. Env: `FILE_MAX_BYTES`. */
  fileMaxBytes: number;
}

export const avatarsConfig = registerAs('avatars', (): AvatarsConfig => ({
  maxBytes: parseMaxBytes('AVATAR_MAX_BYTES', DEFAULT_AVATAR_MAX_BYTES),
  fileMaxBytes: parseMaxBytes('FILE_MAX_BYTES', DEFAULT_FILE_MAX_BYTES),
}));

function parseMaxBytes(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    // Fail at start-up: a typo here would otherwise reject every upload, or none.
    throw new Error(`${name} must be a whole number of bytes greater than 0 (got ${JSON.stringify(raw)}); unset it for the default of ${fallback}`);
  }
  return value;
}

/** "5 MiB", "512 KiB", "100 bytes": sizes as a person reads them. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}

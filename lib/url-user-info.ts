/**
 * User-info (`user:password@` before the host) in configured URLs. Endpoints are quoted in
 * logs and error messages, so a password written into one would leak: validation refuses
 * user-info, and a message that quotes a configured URL passes it through
 * {@link redactUserInfo} first.
 *
 * Both work on the `@`, not on a parsed URL: a password may hold `/`, `?` or `#`, which make
 * a parser end the authority early (or fail), and the part after it would still be quoted.
 * No S3 endpoint, browser endpoint or CDN base URL has a legitimate `@`.
 */

/** Whether `value` may carry user-info, e.g. `http://key:secret@minio:9000` or `key@cdn.example.com`. */
export function hasUserInfo(value: string): boolean {
  return value.includes('@');
}

/** `value` with everything between the scheme and the last `@` replaced by `***`, safe to quote. */
export function redactUserInfo(value: string): string {
  const at = value.lastIndexOf('@');
  if (at < 0) return value;
  const scheme = /^(?:[a-z][a-z0-9+.-]*:[/\\]+)?/i.exec(value)![0];
  return `${scheme}***@${value.slice(at + 1)}`;
}

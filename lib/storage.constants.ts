/**
 * Injection tokens. `Symbol.for` / strings, not `Symbol()`: an app that loads both the ESM
 * and the CommonJS build still sees one token.
 */

/** The validated options with defaults applied ({@link ResolvedStorageOptions}). */
export const STORAGE_OPTIONS = Symbol.for('nestjs-s3-storage:options');

/** The `S3Client` used by `MediaStorage`. Inject it with `@InjectMediaS3Client()`. */
export const MEDIA_S3_CLIENT = Symbol.for('nestjs-s3-storage:media-s3-client');

/** The `S3Client` used by `StaticManifestStorage` (the media client when they share a connection). */
export const STATIC_S3_CLIENT = Symbol.for('nestjs-s3-storage:static-s3-client');

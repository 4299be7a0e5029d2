/**
 * The one place storage tokens are made, the way `@nestjs/typeorm` makes
 * `getDataSourceToken(name)`: the module's providers, `@InjectStorage()`,
 * `@InjectMediaS3Client()`, `moduleRef.get()` and `overrideProvider()` all go through these
 * functions, so a name can never be spelled two ways.
 *
 * The unnamed storage keeps its historical tokens (`MediaStorage`, `MEDIA_S3_CLIENT`,
 * `STORAGE_OPTIONS`), so no existing app changes. A named storage's tokens are strings, which
 * are the same in the ESM and the CommonJS build (a class token is not: each build has its
 * own `MediaStorage` class).
 */
import { MediaStorage } from './media.storage.js';
import { MEDIA_S3_CLIENT, STORAGE_OPTIONS } from './storage.constants.js';
import { checkStorageName } from './storage-name.js';

/**
 * The token of a storage: `MediaStorage` for the unnamed one, `'nestjs-s3-storage:storage:<name>'`
 * for a named one. Use it with `moduleRef.get()` and `Test…overrideProvider()`.
 */
export function getStorageToken(): typeof MediaStorage;
export function getStorageToken(name: string): string;
export function getStorageToken(name?: string): typeof MediaStorage | string;
export function getStorageToken(name?: string): typeof MediaStorage | string {
  return name === undefined ? MediaStorage : `nestjs-s3-storage:storage:${checkStorageName(name)}`;
}

/** The token of a storage's `S3Client`: `MEDIA_S3_CLIENT` unnamed, `'nestjs-s3-storage:media-s3-client:<name>'` named. */
export function getMediaS3ClientToken(name?: string): symbol | string {
  return name === undefined ? MEDIA_S3_CLIENT : `nestjs-s3-storage:media-s3-client:${checkStorageName(name)}`;
}

/** The token of a storage's resolved options: `STORAGE_OPTIONS` unnamed, `'nestjs-s3-storage:options:<name>'` named. */
export function getStorageOptionsToken(name?: string): symbol | string {
  return name === undefined ? STORAGE_OPTIONS : `nestjs-s3-storage:options:${checkStorageName(name)}`;
}

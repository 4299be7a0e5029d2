/**
 * `nestjs-s3-storage/testing`: the test kit. Never loaded by the package's main entry (it
 * is a subpath export of its own; s3rver, an optional peer, is loaded only by startLocalS3()).
 */
export { InMemoryStorage, IN_MEMORY_BUCKET, type InMemoryMediaOptions, type InMemoryStorageOptions } from './in-memory.storage.js';
export { StorageTestingModule, type StorageTestingModuleOptions } from './storage-testing.module.js';
export { MEMORY_URL_SCHEME } from './memory-urls.js';
export { startLocalS3, type LocalS3, type LocalS3Options } from '../local-s3.js';
export type { MediaStorageApi, ReadOptions } from '../media-storage.api.js';

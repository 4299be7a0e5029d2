export * from './storage.module.js';
export { STORAGE_MODULE_OPTIONS, STORAGE_OPTIONS_TYPE, STORAGE_ASYNC_OPTIONS_TYPE, type StorageModuleExtras } from './storage.module-definition.js';
export { getStorageToken, getMediaS3ClientToken, getStorageOptionsToken } from './storage-tokens.js';
export * from './storage-module-options.interface.js';
export {
  resolveStorageOptions,
  validateStorageOptions,
  MAX_URL_EXPIRES_IN,
  type ResolvedStorageOptions,
  type ResolvedMediaOptions,
  type ResolvedStaticOptions,
  type ResolvedConnectionOptions,
  type ResolvedLifecycleOptions,
} from './storage-options.validation.js';
export * from './storage.config.js';
export * from './storage-env.js';
export * from './storage.constants.js';
export * from './storage.decorators.js';
export * from './storage.errors.js';
export * from './media.storage.js';
export { ensureBucket, StorageBootstrap, type EnsureBucketResult } from './bucket-bootstrap.js';
export { createS3Client } from './s3-client.factory.js';
export { UrlSigner, contentDisposition, encodeKeyPath, type UrlSignerOptions, type SignedUrlOptions, type SigningCredentials, type CredentialSource } from './url-signer.js';
export { URL_CACHE_MAX_ENTRIES, type MediaUrl } from './url-cache.js';
export { type CloudFrontCookies, type CloudFrontPolicyOptions } from './cloudfront-signer.js';
export { normalizeName, normalizePrefix, MAX_KEY_BYTES } from './key-normalizer.js';
export { guessContentType, extensionFor } from './content-type.js';
export { MediaUploadInterceptor, UploadedMedia, type UploadedMediaFile, type MediaUploadOptions, type MediaUploadNameContext } from './media-upload.interceptor.js';
export { sniffContentType, SNIFFABLE_TYPES } from './content-sniffing.js';
export { applyCors } from './bucket-bootstrap.js';
export { applyBucketSettings, PUBLIC_READ_SID, type BucketSettings, type BucketSettingsResult, type BucketSettingOutcome } from './bucket-settings.js';
export {
  StaticManifestStorage,
  IMMUTABLE_CACHE_CONTROL,
  MANIFEST_CACHE_CONTROL,
  type CollectOptions,
  type CollectResult,
  type CollectProgress,
} from './static-manifest.storage.js';
export { type StaticManifest, type MissingReference } from './static-hashing.js';
export { type DirectUpload, type CreateUploadOptions, type UploadExpectations, type StoredObject } from './media.storage.js';
export type {
  CompletedPart,
  CreateMultipartUploadOptions,
  MultipartCallOptions,
  MultipartUploadHandle,
  SignedPart,
  SignPartsOptions,
  UploadedPart,
} from './direct-multipart.js';
export type { MediaStorageApi, ReadOptions } from './media-storage.api.js';
export { sendMedia, planMediaResponse, parseRange, type MediaSource, type SendMediaOptions, type SentMedia, type MediaPlan } from './media-download.js';

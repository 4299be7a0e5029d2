/**
 * What the direct-upload routes do, apart from HTTP: authorize, find the caller's prefix and
 * limits for this request, check the input, call the storage, shape the answer the way
 * `@uppy/aws-s3` 6.3.1 reads it (`lib/s3-client/CompanionS3.js`).
 *
 * Ownership: every key a client sends back must name an object under the caller's
 * `prefix(request)`, checked here before the storage is asked (which checks it again for
 * multipart uploads, against the prefix recorded at create).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { HttpStatus, Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost, ModuleRef } from '@nestjs/core';
import { randomUUID } from 'node:crypto';
import { safeFileName } from './direct-multipart.js';
import { installCompleteBodyParser } from './direct-uploads.body-limit.js';
import { SNIFFABLE_TYPES } from './content-sniffing.js';
import { baseType, matchesType } from './content-type.js';
import { DIRECT_UPLOADS_MODULE_OPTIONS } from './direct-uploads.module-definition.js';
import type { DirectUploadRequest, DirectUploadsModuleOptions, PerRequest } from './direct-uploads-module-options.interface.js';
import { PENDING_PREFIX } from './direct-uploads.js';
import { directUploadError, toHttpError } from './direct-uploads.http-errors.js';
import { fromKey, normalizeName, toKey } from './key-normalizer.js';
import type { MediaStorageApi } from './media-storage.api.js';
import type { StoredObject } from './media-storage.types.js';
import { countOpenUploads, listOpenUploads, type OpenUpload } from './open-uploads.js';
import { StorageConfigurationError, UploadRejectedError } from './storage.errors.js';
import type { ResolvedStorageOptions } from './storage-options.validation.js';
import { getMediaS3ClientToken, getStorageOptionsToken, getStorageToken } from './storage-tokens.js';

/** The module's `path` extra, trimmed. */
export const DIRECT_UPLOADS_PATH = Symbol.for('nestjs-s3-storage:direct-uploads-path');

/** The module's `storage` extra (null for the unnamed storage). */
export const DIRECT_UPLOADS_STORAGE_NAME = Symbol.for('nestjs-s3-storage:direct-uploads-storage');

/** S3's largest object, and the largest a single presigned POST (then CopyObject) can move. */
const MAX_MULTIPART_BYTES = 5 * 1024 ** 4;
const MAX_POST_BYTES = 5 * 1024 ** 3;
const MAX_PARTS = 10_000;
const MAX_FILENAME_BYTES = 1024;
/** The most open uploads `GET <path>/s3/multipart` lists. */
const MAX_LISTED = 1000;

/** `params`: a presigned POST. Uppy sends `fields` and then the file to `url`. */
export interface PostParamsAnswer {
  method: 'POST';
  url: string;
  fields: Record<string, string>;
  /** What to send back to `POST <path>/s3/confirm` once the POST succeeded. */
  key: string;
  expiresAt: string;
}

/** `POST multipart`: Uppy keeps `key` and `uploadId` and sends them back on every later call. */
export interface CreatedMultipartAnswer {
  key: string;
  uploadId: string;
  /** Advisory part size (Uppy picks its own; every part but the last must be ≥ 5 MiB). */
  partSize: number;
}

/** Complete and confirm: the published object. `location` is a signed GET URL. */
export interface PublishedAnswer extends StoredObject {
  location: string;
}

/** The request body fields the routes read; anything else is ignored. */
export interface CreateMultipartBody {
  filename?: unknown;
  type?: unknown;
  /** Optional: the file's size, checked against `maxBytes` at once (Uppy does not send it). */
  size?: unknown;
  metadata?: unknown;
}

@Injectable()
export class DirectUploadsService implements OnModuleInit {
  private storage!: MediaStorageApi;
  private client?: S3Client;
  private media?: ResolvedStorageOptions['media'];
  private readonly logger = new Logger('DirectUploadsModule');
  private warnedNoListing = false;

  constructor(
    @Inject(DIRECT_UPLOADS_MODULE_OPTIONS) private readonly options: DirectUploadsModuleOptions,
    @Inject(DIRECT_UPLOADS_STORAGE_NAME) private readonly storageName: string | null,
    @Inject(DIRECT_UPLOADS_PATH) private readonly path: string,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    checkOptions(this.options);
    const name = this.storageName ?? undefined;
    const label = name === undefined ? 'the unnamed storage (StorageModule.forRoot)' : `the storage "${name}" (StorageModule.forRoot({ name: "${name}" }))`;
    this.storage = this.find<MediaStorageApi>(getStorageToken(name), label);
    // Only the open-uploads cap and POST keys need these; a hand-made storage provider may lack them.
    this.client = this.optional<S3Client>(getMediaS3ClientToken(name));
    this.media = this.optional<ResolvedStorageOptions>(getStorageOptionsToken(name))?.media;
    this.allowLargeCompletes();
  }

  /** Express only: a complete of up to 10,000 parts must not meet the app's 100 kB JSON limit. */
  private allowLargeCompletes(): void {
    const adapter = this.optional<HttpAdapterHost>(HttpAdapterHost)?.httpAdapter;
    if (!adapter || adapter.getType() !== 'express') return;
    if (!installCompleteBodyParser(adapter.getInstance(), this.path)) {
      this.logger.warn(
        `the complete route of "${this.path}" uses the app's own JSON parser: make its limit at least 1mb (app.useBodyParser('json', { limit: '1mb' })), or completes of more than about 1,650 parts answer 413`,
      );
    }
  }

  private optional<T>(token: string | symbol | (abstract new (...args: never[]) => unknown)): T | undefined {
    try {
      return this.moduleRef.get<T>(token as string, { strict: false });
    } catch {
      return undefined;
    }
  }

  private find<T>(token: string | symbol | (abstract new (...args: never[]) => unknown), label: string): T {
    try {
      return this.moduleRef.get<T>(token as string, { strict: false });
    } catch {
      throw new StorageConfigurationError([`storage: DirectUploadsModule uploads to ${label}, which this app does not define: import StorageModule in the app`], 'DirectUploadsModule cannot start');
    }
  }

  /** `GET <path>/s3/params?filename=&type=`: a presigned POST for a file Uppy sends in one request. */
  async params(request: DirectUploadRequest): Promise<PostParamsAnswer> {
    const prefix = await this.admit(request);
    const type = declaredType(request.query.type);
    const [maxBytes, allowedTypes] = await Promise.all([this.maxBytes(request), resolve(this.options.allowedTypes, request)]);
    checkDeclaredType(type, allowedTypes);
    const filename = request.query.filename;
    if (filename !== undefined && (typeof filename !== 'string' || Buffer.byteLength(filename) > MAX_FILENAME_BYTES)) {
      throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `"filename" must be the file's name, a string of at most ${MAX_FILENAME_BYTES} bytes.`);
    }
    const post = await this.run(() =>
      this.storage.createUpload({
        // As multipart names keep it: the client's file name, made safe, after an unguessable id.
        ...(filename ? { name: `${prefix}/${randomUUID()}-${safeFileName(filename)}` } : { prefix }),
        maxBytes: Math.min(maxBytes, MAX_POST_BYTES),
        contentType: storedType(type),
        ...(this.options.postExpiresIn === undefined ? {} : { expiresIn: this.options.postExpiresIn }),
      }),
    );
    return { method: 'POST', url: post.url, fields: post.fields, key: post.fields.key ?? post.key, expiresAt: post.expiresAt.toISOString() };
  }

  /** `POST <path>/s3/confirm` `{ key }`: publishes a presigned POST upload once the page saw it succeed. */
  async confirm(request: DirectUploadRequest, body: { key?: unknown; type?: unknown } | undefined): Promise<PublishedAnswer> {
    const prefix = await this.admit(request);
    const name = this.ownedName(body?.key, prefix, 'body field "key" (the key Uppy\'s upload-success reports)', (key) => this.nameOfPostKey(key));
    // A POST upload is `<prefix>/<uuid>.<ext>`: exactly the caller's folder, never a folder under it (another prefix's).
    if (name.slice(prefix.length + 1).includes('/')) {
      throw directUploadError(HttpStatus.FORBIDDEN, 'not-owner', 'That upload belongs to someone else (its key is not directly in your folder); nothing was changed.');
    }
    // The type given to params, for bytes without a known signature (stored as a download either way).
    const type = declaredType(body?.type);
    const [maxBytes, allowedTypes] = await Promise.all([this.maxBytes(request), resolve(this.options.allowedTypes, request)]);
    const stored = await this.run(() =>
      this.storage.confirmUpload(name, { maxBytes: Math.min(maxBytes, MAX_POST_BYTES), ...(allowedTypes ? { allowedTypes } : {}), ...(type ? { declaredType: type } : {}) }),
    );
    return this.published(stored);
  }

  /** `POST <path>/s3/multipart` `{ filename, type, metadata }`: opens a multipart upload. */
  async createMultipart(request: DirectUploadRequest, body: CreateMultipartBody | undefined): Promise<CreatedMultipartAnswer> {
    const prefix = await this.admit(request);
    const filename = body?.filename;
    if (filename !== undefined && (typeof filename !== 'string' || Buffer.byteLength(filename) > MAX_FILENAME_BYTES)) {
      throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `"filename" must be the file's name, a string of at most ${MAX_FILENAME_BYTES} bytes.`);
    }
    const type = declaredType(body?.type);
    const [maxBytes, allowedTypes, cap] = await Promise.all([
      this.maxBytes(request),
      resolve(this.options.allowedTypes, request),
      resolve(this.options.maxOpenUploads, request),
    ]);
    const size = announcedSize(body);
    if (size !== undefined && size > maxBytes) {
      throw directUploadError(HttpStatus.PAYLOAD_TOO_LARGE, 'too-large', `The file is ${size} bytes; the limit is ${maxBytes} bytes. Choose a smaller file.`);
    }
    checkDeclaredType(type, allowedTypes);
    if (cap !== undefined) await this.checkCap(prefix, cap);
    const handle = await this.run(() =>
      this.storage.createMultipartUpload({
        prefix,
        name: filename || 'file',
        contentType: storedType(type),
        ...(type ? { declaredType: type } : {}),
        maxBytes,
        ...(allowedTypes ? { allowedTypes } : {}),
      }),
    );
    return { key: handle.key, uploadId: handle.uploadId, partSize: handle.partSize };
  }

  /**
   * `GET <path>/s3/multipart`: the caller's open uploads (at most 1000, oldest first), so that a
   * page can abort those it gave up on: Uppy never aborts after an error, and each counts
   * against `maxOpenUploads` until aborted or expired.
   */
  async listOpen(request: DirectUploadRequest): Promise<OpenUpload[]> {
    const prefix = await this.admit(request);
    if (!this.client || !this.media) {
      throw new StorageConfigurationError(['listing open uploads needs the storage\'s S3 client, which this app does not provide'], 'DirectUploadsModule cannot list open uploads');
    }
    const { client, media } = this;
    const keyPrefix = toKey(media.location, `${PENDING_PREFIX}/${prefix}/`);
    const open = await this.run(() =>
      listOpenUploads(client, media.bucket, keyPrefix, MAX_LISTED).catch((error: unknown) => {
        if ((error as { name?: string }).name !== 'NotImplemented') throw error;
        throw directUploadError(HttpStatus.NOT_IMPLEMENTED, 'not-supported', 'This storage server cannot list open uploads (no ListMultipartUploads).');
      }),
    );
    // Exactly this prefix's uploads: not those of a prefix nested under it.
    return open.filter((upload) => {
      try {
        const name = this.storage.nameForKey(upload.key);
        return name.split('/').slice(0, -2).join('/') === prefix;
      } catch {
        return false;
      }
    });
  }

  /** `GET <path>/s3/multipart/:uploadId/:partNumber?key=`: one part URL (`batch?partNumbers=1,2` for several). */
  async signPart(request: DirectUploadRequest, uploadId: string, part: string): Promise<{ url: string; expires: number } | { presignedUrls: Record<string, string>; expires: number }> {
    const prefix = await this.admit(request);
    const name = this.ownedName(request.query.key, prefix, 'query parameter "key"');
    const batch = part === 'batch';
    const numbers = batch ? partNumbers(request.query.partNumbers) : [partNumber(part)];
    const expiresIn = this.options.partUrlExpiresIn;
    const signed = await this.run(() => this.storage.signParts(name, checkUploadId(uploadId), numbers, { prefix, ...(expiresIn === undefined ? {} : { expiresIn }) }));
    // Companion answers `expires` in seconds: what the URL was signed for (the storage's default when none is set).
    const expires = Number(new URL(signed[0]!.url).searchParams.get('X-Amz-Expires'));
    if (!batch) return { url: signed[0]!.url, expires };
    return { presignedUrls: Object.fromEntries(signed.map((p) => [String(p.partNumber), p.url])), expires };
  }

  /** `GET <path>/s3/multipart/:uploadId?key=`: the parts uploaded so far, for resuming. */
  async listParts(request: DirectUploadRequest, uploadId: string): Promise<{ PartNumber: number; ETag: string; Size: number }[]> {
    const prefix = await this.admit(request);
    const name = this.ownedName(request.query.key, prefix, 'query parameter "key"');
    const parts = await this.run(async () => {
      try {
        return await this.storage.listParts(name, checkUploadId(uploadId), { prefix });
      } catch (error) {
        // Completed already, and the answer was lost: Uppy's Retry lists the parts, uploads those
        // missing, then completes. Every part number "held" sends it straight on to complete,
        // which answers the published object (recognised by the mark only a complete gives it;
        // the parts it sends are not used then).
        if (error instanceof UploadRejectedError && error.reason === 'no-such-upload' && (await this.storage.exists(name))) return publishedParts();
        throw error;
      }
    });
    return parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, Size: p.size }));
  }

  /** `POST <path>/s3/multipart/:uploadId/complete?key=` `{ parts: [{ PartNumber, ETag }] }`: checks and publishes. */
  async complete(request: DirectUploadRequest, uploadId: string, body: { parts?: unknown } | undefined): Promise<PublishedAnswer> {
    const prefix = await this.admit(request);
    const name = this.ownedName(request.query.key, prefix, 'query parameter "key"');
    const parts = completedParts(body?.parts);
    const stored = await this.run(() => this.storage.completeMultipartUpload(name, checkUploadId(uploadId), parts, { prefix }));
    return this.published(stored);
  }

  /** `DELETE <path>/s3/multipart/:uploadId?key=`: aborts; nothing of the upload stays. */
  async abort(request: DirectUploadRequest, uploadId: string): Promise<Record<string, never>> {
    const prefix = await this.admit(request);
    const name = this.ownedName(request.query.key, prefix, 'query parameter "key"');
    await this.run(() => this.storage.abortMultipartUpload(name, checkUploadId(uploadId), { prefix }));
    return {};
  }

  /** authorize(), then prefix(): the caller's folder, normalised. */
  private async admit(request: DirectUploadRequest): Promise<string> {
    if (!(await this.options.authorize(request))) {
      throw directUploadError(HttpStatus.FORBIDDEN, 'forbidden', 'You are not allowed to upload here: sign in as a user who may, or ask the site owner.');
    }
    const prefix = await this.options.prefix(request);
    try {
      return normalizeName(prefix);
    } catch (error) {
      // The app's prefix() gave something unusable: that is the server's fault, not the client's.
      throw new StorageConfigurationError([`prefix(): must return a storage folder such as "users/42/files" (got ${JSON.stringify(prefix)}): ${(error as Error).message}`], 'DirectUploadsModule prefix() failed');
    }
  }

  private async maxBytes(request: DirectUploadRequest): Promise<number> {
    const value = await resolve(this.options.maxBytes, request);
    if (!Number.isSafeInteger(value) || value < 1 || value > MAX_MULTIPART_BYTES) {
      throw new StorageConfigurationError([`maxBytes: must be a whole number of bytes from 1 to ${MAX_MULTIPART_BYTES} (5 TiB) (got ${String(value)})`], 'DirectUploadsModule maxBytes failed');
    }
    return value;
  }

  /** The storage name for a key the client sent back, if it lies under the caller's prefix. */
  private ownedName(key: unknown, prefix: string, where: string, toName = (key: string) => this.storage.nameForKey(key)): string {
    if (typeof key !== 'string' || key === '') {
      throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `Missing ${where}: send back the "key" the upload was created with.`);
    }
    let name: string;
    try {
      name = toName(key);
    } catch (error) {
      throw toHttpError(error);
    }
    if (!name.startsWith(`${prefix}/`)) {
      throw directUploadError(HttpStatus.FORBIDDEN, 'not-owner', 'That upload belongs to someone else (its key is not under your folder); nothing was changed.');
    }
    return name;
  }

  /** The name a presigned POST's key (`<location>/.pending/<name>`, what Uppy reports) publishes. */
  private nameOfPostKey(key: string): string {
    const inLocation = this.media ? fromKey(this.media.location, key) : key;
    const name = inLocation.startsWith(`${PENDING_PREFIX}/`) ? inLocation.slice(PENDING_PREFIX.length + 1) : '';
    if (!name) {
      throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', 'That key is not one a single-request upload of this server answered: send back the "key" from the params answer (Uppy\'s upload-success reports it).');
    }
    return normalizeName(name);
  }

  private async checkCap(prefix: string, cap: number): Promise<void> {
    if (!Number.isSafeInteger(cap) || cap < 1) {
      throw new StorageConfigurationError([`maxOpenUploads: must be a whole number from 1 (got ${String(cap)}); leave it undefined for no cap`], 'DirectUploadsModule maxOpenUploads failed');
    }
    if (!this.client || !this.media) {
      throw new StorageConfigurationError(['maxOpenUploads: needs the storage\'s S3 client, which this app does not provide'], 'DirectUploadsModule cannot count open uploads');
    }
    const { client, media } = this;
    const keyPrefix = toKey(media.location, `${PENDING_PREFIX}/${prefix}/`);
    const open = await this.run(() =>
      countOpenUploads(client, media.bucket, keyPrefix, cap).catch((error: unknown) => {
        // The embedded development server (s3rver) has no ListMultipartUploads: say so once, upload anyway.
        if ((error as { name?: string }).name !== 'NotImplemented') throw error;
        if (!this.warnedNoListing) this.logger.warn(`maxOpenUploads is not enforced: the S3 server does not implement ListMultipartUploads (bucket "${media.bucket}")`);
        this.warnedNoListing = true;
        return 0;
      }),
    );
    if (open >= cap) {
      throw directUploadError(
        HttpStatus.TOO_MANY_REQUESTS,
        'too-many-open-uploads',
        `You have ${cap} uploads in progress, the most allowed at once: finish or cancel one (a cancelled upload is removed) before starting another.`,
      );
    }
  }

  private async published(stored: StoredObject): Promise<PublishedAnswer> {
    const location = await this.run(() => this.storage.url(stored.name));
    return { ...stored, location };
  }

  /** Runs a storage call, turning its errors into 4xx/5xx answers. */
  private async run<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw mapStorageError(error);
    }
  }
}

function mapStorageError(error: unknown): unknown {
  const mapped = toHttpError(error);
  // A raw SDK error (the cap's listing) that never became a StorageError.
  if (mapped === error && error instanceof Error && '$metadata' in error) {
    return directUploadError(HttpStatus.SERVICE_UNAVAILABLE, 'storage-unavailable', 'The storage could not be reached or refused the request; try again later.', error);
  }
  return mapped;
}

async function resolve<T>(value: PerRequest<T>, request: DirectUploadRequest): Promise<T> {
  return typeof value === 'function' ? (value as (request: DirectUploadRequest) => T | Promise<T>)(request) : value;
}

/** The type the client declares, or undefined. */
function declaredType(raw: unknown): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  // Parameters (`video/webm;codecs=vp8`, as MediaRecorder gives) say nothing the bytes check.
  const base = typeof raw === 'string' && raw.length <= 255 ? baseType(raw) : '';
  if (!/^[\w.+-]+\/[\w.+-]+$/.test(base)) {
    throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `"type" must be a MIME type such as "video/mp4" (got ${JSON.stringify(raw).slice(0, 80)}).`);
  }
  return base;
}

function checkDeclaredType(type: string | undefined, allowed: readonly string[] | undefined): void {
  if (!allowed) return;
  if (!type || !matchesType(type, allowed)) {
    throw directUploadError(
      HttpStatus.UNSUPPORTED_MEDIA_TYPE,
      'type-not-allowed',
      `Files of type ${type ? `"${type}"` : '(none given)'} are not accepted here; allowed: ${allowed.join(', ')}. The bytes are checked too, so renaming a file does not help.`,
    );
  }
}

/**
 * The Content-Type the object is stored (and later served) with: the declared one only when
 * the storage can check it against the bytes. Anything else (text/html, image/svg+xml, …)
 * would run as the storage origin's page, so it is stored as a download.
 */
function storedType(type: string | undefined): string {
  return type && SNIFFABLE_TYPES.has(type) ? type : 'application/octet-stream';
}

function announcedSize(body: CreateMultipartBody | undefined): number | undefined {
  const metadata = body?.metadata && typeof body.metadata === 'object' ? (body.metadata as Record<string, unknown>) : {};
  const raw = body?.size ?? metadata.size;
  if (raw === undefined || raw === null || raw === '') return undefined;
  const size = Number(raw);
  if (!Number.isSafeInteger(size) || size < 0) {
    throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `"size" must be the file's size in bytes, a whole number (got ${JSON.stringify(raw).slice(0, 40)}).`);
  }
  return size;
}

/**
 * The list parts answer of an upload already published: every part number (Uppy marks the
 * chunks listed as done, so it has nothing left to send and completes). No part has that ETag.
 */
function publishedParts(): { partNumber: number; etag: string; size: number }[] {
  return Array.from({ length: MAX_PARTS }, (_, i) => ({ partNumber: i + 1, etag: 'published', size: 0 }));
}

function checkUploadId(uploadId: string): string {
  if (!uploadId || uploadId.length > 1024) throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', 'The upload id in the path is missing or too long: use the "uploadId" the create call answered.');
  return uploadId;
}

function partNumber(raw: unknown): number {
  const n = typeof raw === 'string' && /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= MAX_PARTS)) {
    throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `Part numbers are whole numbers from 1 to ${MAX_PARTS} (got ${JSON.stringify(raw).slice(0, 40)}).`);
  }
  return n;
}

function partNumbers(raw: unknown): number[] {
  if (typeof raw !== 'string' || raw === '') {
    throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', 'Missing query parameter "partNumbers": a comma-separated list such as "1,2,3".');
  }
  const numbers = raw.split(',').map(partNumber);
  if (numbers.length > 1000) throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', 'Sign at most 1000 parts per request.');
  return numbers;
}

function completedParts(raw: unknown): { partNumber: number; etag: string }[] {
  const fix = 'send { "parts": [{ "PartNumber": 1, "ETag": "…" }, …] } with the ETag each part PUT answered';
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_PARTS) {
    throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `Missing or empty "parts": ${fix}.`);
  }
  return raw.map((part: unknown) => {
    const p = (part ?? {}) as { PartNumber?: unknown; ETag?: unknown };
    if (typeof p.ETag !== 'string' || p.ETag === '' || p.ETag.length > 256) {
      throw directUploadError(HttpStatus.BAD_REQUEST, 'bad-request', `Every part needs its "ETag": ${fix}.`);
    }
    return { partNumber: partNumber(String(p.PartNumber)), etag: p.ETag };
  });
}

/** The options, checked once at start-up: one error listing every problem with its fix. */
function checkOptions(options: DirectUploadsModuleOptions): void {
  const problems: string[] = [];
  const o = (options ?? {}) as Partial<Record<keyof DirectUploadsModuleOptions, unknown>>;
  if (typeof o.authorize !== 'function') problems.push('authorize: must be a function (request) => boolean; use () => true to let everyone upload');
  if (typeof o.prefix !== 'function') problems.push('prefix: must be a function (request) => string giving the caller\'s folder, e.g. (req) => `users/${req.user.id}/files`');
  if (typeof o.maxBytes !== 'function' && !(Number.isSafeInteger(o.maxBytes) && (o.maxBytes as number) >= 1 && (o.maxBytes as number) <= MAX_MULTIPART_BYTES)) {
    problems.push(`maxBytes: must be a whole number of bytes from 1 to ${MAX_MULTIPART_BYTES} (5 TiB), or a function of the request (got ${String(o.maxBytes)})`);
  }
  if (o.allowedTypes !== undefined && typeof o.allowedTypes !== 'function' && !(Array.isArray(o.allowedTypes) && o.allowedTypes.every((t) => typeof t === 'string'))) {
    problems.push('allowedTypes: must be an array of MIME types such as ["video/*", "application/pdf"], or a function of the request');
  }
  if (o.maxOpenUploads !== undefined && typeof o.maxOpenUploads !== 'function' && !(Number.isSafeInteger(o.maxOpenUploads) && (o.maxOpenUploads as number) >= 1)) {
    problems.push(`maxOpenUploads: must be a whole number from 1, or a function of the request (got ${String(o.maxOpenUploads)})`);
  }
  for (const key of ['partUrlExpiresIn', 'postExpiresIn'] as const) {
    const value = o[key];
    if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= 604_800)) {
      problems.push(`${key}: must be whole seconds from 1 to 604800 (7 days, SigV4's limit) (got ${String(value)})`);
    }
  }
  if (problems.length) throw new StorageConfigurationError(problems, 'DirectUploadsModule options are invalid');
}

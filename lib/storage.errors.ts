/**
 * Typed errors. Every error the module throws is a {@link StorageError}; catch the
 * subclass you care about, or read `code`.
 *
 * Messages name the bucket, key and endpoint so an operator can act on them. They never
 * contain credentials: endpoints are stripped of any user-info before they are quoted.
 *
 * This file imports nothing else from `lib/`, so every other file may import it.
 *
 * `instanceof` holds across copies: an app that loads both the ESM and the CommonJS build
 * (or two installs of the package) has two copies of every class here, and an error made by
 * one copy is still `instanceof` the other's classes. Each class is branded with a
 * `Symbol.for` key, which is one symbol per process whatever copy asks for it, and
 * `Symbol.hasInstance` accepts a value whose prototype chain carries the class's brand.
 */

/** The static property holding a class's own brand (absent on users' subclasses). */
const BRAND = Symbol.for('nestjs-s3-storage.brand');

/**
 * Brands `cls` as `nestjs-s3-storage.<name>`: its instances, and those of its subclasses,
 * carry the brand on their prototype chain. The name is written out, not `cls.name`, so a
 * minifier renaming classes cannot split or merge brands.
 */
function brand(cls: abstract new (...args: never[]) => StorageError, name: string): void {
  const symbol = Symbol.for(`nestjs-s3-storage.${name}`);
  Object.defineProperty(cls, BRAND, { value: symbol });
  Object.defineProperty(cls.prototype, symbol, { value: true });
}

/** What an error was about. All fields are optional: a configuration error has no key. */
export interface StorageErrorContext {
  /** The bucket the operation addressed. */
  bucket?: string;
  /** The full object key (location prefix included). */
  key?: string;
  /** The S3 endpoint the client talked to, without user-info. */
  endpoint?: string;
  /** The underlying error (an AWS SDK error, a network error, an abort). */
  cause?: unknown;
}

/** Machine-readable error codes, one per error class. */
export type StorageErrorCode =
  | 'STORAGE_ERROR'
  | 'STORAGE_CONFIGURATION'
  | 'STORAGE_INVALID_KEY'
  | 'STORAGE_NOT_FOUND'
  | 'STORAGE_BUCKET_BOOTSTRAP'
  | 'STORAGE_OPERATION'
  | 'STORAGE_TIMEOUT'
  | 'STORAGE_ABORTED'
  | 'STORAGE_UPLOAD_REJECTED'
  | 'STORAGE_MANIFEST'
  | 'STORAGE_INVALID_BODY'
  | 'STORAGE_COLLECT';

/** Base class of every error thrown by nestjs-s3-storage. */
export class StorageError extends Error {
  readonly code: StorageErrorCode = 'STORAGE_ERROR';
  readonly bucket?: string;
  readonly key?: string;
  readonly endpoint?: string;

  constructor(message: string, context: StorageErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.bucket = context.bucket;
    this.key = context.key;
    this.endpoint = context.endpoint;
  }

  /**
   * `value instanceof X`: the ordinary prototype check, or, for the module's own classes,
   * the brand that another copy of the module (the other build) put on the value.
   * A subclass you write keeps the ordinary semantics: it has no brand of its own.
   */
  static override [Symbol.hasInstance]<T>(this: abstract new (...args: never[]) => T, value: unknown): value is T {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== 'object' || value === null || !Object.hasOwn(this, BRAND)) return false;
    const symbol = (this as unknown as Record<symbol, symbol>)[BRAND]!;
    return (value as Record<symbol, unknown>)[symbol] === true;
  }
}
brand(StorageError, 'StorageError');

/** The module options are invalid. `problems` lists each one with its fix. */
export class StorageConfigurationError extends StorageError {
  override readonly code = 'STORAGE_CONFIGURATION' as const;
  readonly problems: readonly string[];

  constructor(problems: readonly string[], heading = 'Invalid nestjs-s3-storage configuration') {
    super(`${heading}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}
brand(StorageConfigurationError, 'StorageConfigurationError');

/** A name could not be turned into a safe object key; nothing was sent to S3. */
export class InvalidKeyError extends StorageError {
  override readonly code = 'STORAGE_INVALID_KEY' as const;
  /** Why the name was rejected, e.g. "it escapes the storage location with '..'". */
  readonly reason: string;

  constructor(name: string, reason: string) {
    super(`Invalid object name ${describeName(name)}: ${reason}`);
    this.reason = reason;
  }
}
brand(InvalidKeyError, 'InvalidKeyError');

/** The object does not exist. */
export class ObjectNotFoundError extends StorageError {
  override readonly code = 'STORAGE_NOT_FOUND' as const;

  constructor(context: StorageErrorContext & { key: string; bucket: string }) {
    super(`Object "${context.key}" not found in bucket "${context.bucket}"${at(context.endpoint)}`, context);
  }
}
brand(ObjectNotFoundError, 'ObjectNotFoundError');

/** Why the start-up bucket check failed. */
export type BucketBootstrapFailure = 'unreachable' | 'access-denied' | 'missing' | 'timeout' | 'name-taken' | 'failed';

/** The bucket could not be checked or created at start-up. */
export class BucketBootstrapError extends StorageError {
  override readonly code = 'STORAGE_BUCKET_BOOTSTRAP' as const;
  readonly reason: BucketBootstrapFailure;

  constructor(reason: BucketBootstrapFailure, detail: string, context: StorageErrorContext & { bucket: string }) {
    super(`Bucket "${context.bucket}"${at(context.endpoint)}: ${detail}`, context);
    this.reason = reason;
  }
}
brand(BucketBootstrapError, 'BucketBootstrapError');

/** An S3 request failed. `operation` names the storage method, `status` the HTTP status if any. */
export class StorageOperationError extends StorageError {
  override readonly code: StorageErrorCode = 'STORAGE_OPERATION';
  readonly operation: string;
  readonly status?: number;
  /** The S3 error code (e.g. `AccessDenied`, `SlowDown`), or the network error code (`ECONNREFUSED`) when the server never answered. */
  readonly s3Code?: string;

  constructor(
    operation: string,
    detail: string,
    context: StorageErrorContext & { status?: number; s3Code?: string },
  ) {
    const target = context.key ? `"${context.key}" in bucket "${context.bucket}"` : `bucket "${context.bucket}"`;
    super(`${operation} ${target}${at(context.endpoint)} failed: ${detail}`, context);
    this.operation = operation;
    this.status = context.status;
    this.s3Code = context.s3Code;
  }
}
brand(StorageOperationError, 'StorageOperationError');

/** An S3 request did not finish within the configured time. */
export class StorageTimeoutError extends StorageOperationError {
  override readonly code = 'STORAGE_TIMEOUT' as const;
}
brand(StorageTimeoutError, 'StorageTimeoutError');

/** The caller aborted the operation through its `AbortSignal`. */
export class StorageAbortedError extends StorageOperationError {
  override readonly code = 'STORAGE_ABORTED' as const;
}
brand(StorageAbortedError, 'StorageAbortedError');

/**
 * An upload broke a rule (too large, wrong type); whatever was sent has been removed. From
 * `confirmUpload()` also `not-direct-upload` (the object did not come from a `createUpload()`
 * form for that name) and `conflict` (another confirmation holds the name); those delete nothing.
 * From the multipart calls also `not-owner` (another prefix than the upload's; nothing was
 * changed), `parts-mismatch` (the parts given are not those uploaded; the upload was aborted)
 * and `no-such-upload` (unknown, aborted or expired upload id).
 */
export class UploadRejectedError extends StorageError {
  override readonly code = 'STORAGE_UPLOAD_REJECTED' as const;
  readonly reason: 'too-large' | 'type-not-allowed' | 'size-mismatch' | 'empty' | 'bad-request' | 'not-direct-upload' | 'conflict' | 'not-owner' | 'parts-mismatch' | 'no-such-upload';

  constructor(reason: UploadRejectedError['reason'], message: string, context: StorageErrorContext = {}) {
    super(message, context);
    this.reason = reason;
  }
}
brand(UploadRejectedError, 'UploadRejectedError');

/** The static-files manifest is missing, corrupt, or lacks an entry. */
export class ManifestError extends StorageError {
  override readonly code = 'STORAGE_MANIFEST' as const;
  readonly reason: 'missing-manifest' | 'corrupt-manifest' | 'missing-entry';

  constructor(reason: ManifestError['reason'], message: string, context: StorageErrorContext = {}) {
    super(message, context);
    this.reason = reason;
  }
}
brand(ManifestError, 'ManifestError');

/** One file a {@link CollectStaticError} is about. */
export interface CollectStaticFault {
  file: string;
  line?: number;
  reference?: string;
  target?: string;
}

/**
 * `collectstatic` refused to publish: a CSS/JS file references a file that is not in the
 * directory (as Django's collectstatic fails), or a name kept unhashed would be overwritten
 * with different bytes. Nothing was uploaded and the manifest was not written.
 */
export class CollectStaticError extends StorageError {
  override readonly code = 'STORAGE_COLLECT' as const;
  readonly reason: 'missing-reference' | 'kept-name-changed' | 'file-changed';
  /**
   * The files at fault: for a missing reference `{ file, line, reference, target }` (the URL as
   * written and the name looked for), for a kept name `{ file }`, for a file changed during the
   * run (`'file-changed'`) `{ file }` holding the key it was refused under.
   */
  readonly files: readonly CollectStaticFault[];

  constructor(reason: CollectStaticError['reason'], message: string, files: readonly CollectStaticFault[], context: StorageErrorContext = {}) {
    super(message, context);
    this.reason = reason;
    this.files = files;
  }
}
brand(CollectStaticError, 'CollectStaticError');

/** `save()` was given something that is not bytes (or a size it did not keep to); nothing was stored. */
export class InvalidBodyError extends StorageError {
  override readonly code = 'STORAGE_INVALID_BODY' as const;
}
brand(InvalidBodyError, 'InvalidBodyError');

function at(endpoint: string | undefined): string {
  return endpoint ? ` at ${endpoint}` : '';
}

/** Quotes a caller-supplied name for a message, escaping control characters and capping length. */
export function describeName(name: unknown): string {
  if (typeof name !== 'string') return `(${typeof name})`;
  const shown = name.length > 120 ? `${name.slice(0, 120)}…` : name;
  // JSON.stringify escapes C0 controls but not DEL, C1 or line separators: escape those too,
  // so a hostile name cannot forge log lines.
  return JSON.stringify(shown).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

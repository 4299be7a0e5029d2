/**
 * Turns AWS SDK and network errors into the module's typed errors. The SDK error is kept as
 * `cause`; the message is built only from its name, code and HTTP status, never from
 * request details that could carry credentials.
 */
import {
  ObjectNotFoundError,
  StorageAbortedError,
  StorageError,
  StorageOperationError,
  StorageTimeoutError,
  type StorageErrorContext,
} from './storage.errors.js';

/** The parts of an AWS SDK / Node error this module looks at. */
export interface S3ErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

/** The HTTP status of an SDK error, if the server answered. */
export function statusOf(error: unknown): number | undefined {
  const e = error as S3ErrorShape | undefined;
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
}

/** The S3 error code (`NoSuchKey`, `AccessDenied`, …) or Node error code (`ECONNREFUSED`). */
export function codeOf(error: unknown): string | undefined {
  const e = error as S3ErrorShape | undefined;
  const code = e?.Code ?? e?.code ?? e?.name;
  return code && code !== 'Error' && code !== 'UnknownError' ? code : undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
]);

/** True for errors where the server never answered (refused, reset, DNS, unreachable). */
export function isNetworkError(error: unknown): boolean {
  return networkCode(error) !== undefined;
}

/** True for a timeout of the SDK's request handler or of an operation deadline. */
export function isTimeout(error: unknown): boolean {
  const e = error as S3ErrorShape | undefined;
  return e?.name === 'TimeoutError' || e?.code === 'ETIMEDOUT' || e?.name === 'RequestTimeout';
}

/** True for "the object is not there". */
export function isNotFound(error: unknown): boolean {
  const code = codeOf(error);
  return statusOf(error) === 404 || code === 'NoSuchKey' || code === 'NotFound';
}

/**
 * Wraps `error` from `operation` in the matching typed error. A caller's abort becomes
 * {@link StorageAbortedError}; a 404 on an object {@link ObjectNotFoundError}.
 */
export function toStorageError(
  operation: string,
  error: unknown,
  context: StorageErrorContext & { bucket: string },
  signal?: AbortSignal,
): StorageError {
  if (error instanceof StorageError) return error;
  const status = statusOf(error);
  const s3Code = s3CodeOf(error);
  const ctx = { ...context, cause: error, status, s3Code };
  if (signal?.aborted) return new StorageAbortedError(operation, 'aborted by the caller', ctx);
  if (isTimeout(error)) {
    return new StorageTimeoutError(operation, 'the server did not answer in time (requestTimeout / timeout)', ctx);
  }
  if ((error as S3ErrorShape | undefined)?.name === 'AbortError') {
    return new StorageAbortedError(operation, 'the request was aborted', ctx);
  }
  if (context.key !== undefined && (s3Code === 'NoSuchKey' || (status === 404 && s3Code !== 'NoSuchBucket'))) {
    return new ObjectNotFoundError({ ...context, key: context.key, cause: error });
  }
  return new StorageOperationError(operation, describe(error, status, s3Code), ctx);
}

/**
 * What went wrong, in words: for a raw error the part of a {@link toStorageError} message
 * after "failed: " (for log lines that name the operation and target themselves).
 */
export function errorDetail(error: unknown): string {
  if (error instanceof StorageError) return error.message;
  return describe(error, statusOf(error), s3CodeOf(error));
}

/**
 * The S3 error code, or for a request that never got an answer the network's (ECONNREFUSED).
 * The `name` of an error that is not the SDK's (RangeError) is no S3 code.
 */
function s3CodeOf(error: unknown): string | undefined {
  return (fromSdk(error) ? codeOf(error) : undefined) ?? networkCode(error);
}

function describe(error: unknown, status: number | undefined, s3Code: string | undefined): string {
  if (s3Code === 'NoSuchBucket') return 'the bucket does not exist (create it, or use ensureBucket: "create")';
  if (status === 403) {
    return `access denied${s3Code ? ` (${s3Code})` : ''}: check the access key, secret key and the bucket policy`;
  }
  if (isNetworkError(error)) {
    const code = networkCode(error);
    return `the endpoint is unreachable${code ? ` (${code})` : ''}`;
  }
  // Our own errors and the caller's (a source stream failing, the part-count limit's "raise
  // partSize") carry the only useful explanation in their message, and so does a request
  // that never got an answer ("socket hang up"). A server's error is told by its code and
  // status instead: its message may quote the request, and Ceph's is "UnknownError".
  const own = fromSdk(error) && status !== undefined ? undefined : messageOf(error);
  if (own) return own;
  const parts = [s3Code, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : 'unknown error';
}

/** Whether the AWS SDK produced or annotated `error` (service errors, and failed attempts). */
function fromSdk(error: unknown): boolean {
  const e = error as { $metadata?: unknown; $fault?: unknown; $response?: unknown } | undefined;
  return e !== null && typeof e === 'object' && (e.$metadata !== undefined || e.$fault !== undefined || e.$response !== undefined);
}

/** A non-SDK error's message on one line, any URL user-info masked, at most 500 characters. */
function messageOf(error: unknown): string | undefined {
  const message = (error as { message?: unknown } | undefined)?.message;
  if (typeof message !== 'string' || message.trim() === '') return undefined;
  const line = message
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1***@')
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .trim();
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

function networkCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let depth = 0; e && depth < 5; depth++) {
    const code = (e as S3ErrorShape).code;
    if (code && NETWORK_CODES.has(code)) return code;
    // Errors from another realm (a jest VM context) reach us wrapped, code only in the message.
    const inMessage = /\b(E[A-Z_]+)\b/.exec(String((e as { message?: unknown }).message ?? ''))?.[1];
    if (inMessage && NETWORK_CODES.has(inMessage)) return inMessage;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

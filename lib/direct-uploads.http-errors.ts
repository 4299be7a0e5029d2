/**
 * What the direct-upload routes answer when something is refused: JSON
 * `{ statusCode, error, reason, message }` with a message the person (or the page showing it)
 * can act on. Client mistakes are 4xx, never 500; the storage's own messages, which name the
 * bucket and endpoint, are not sent to the browser.
 */
import { HttpException, HttpStatus } from '@nestjs/common';
import { InvalidKeyError, ObjectNotFoundError, StorageOperationError, StorageTimeoutError, UploadRejectedError } from './storage.errors.js';

/** The answer's body. */
export interface DirectUploadErrorBody {
  statusCode: number;
  error: string;
  /** A stable word for programs: `too-large`, `type-not-allowed`, `not-owner`, `too-many-open-uploads`, … */
  reason: string;
  message: string;
}

const PHRASES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large',
  415: 'Unsupported Media Type', 429: 'Too Many Requests', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** An HttpException with the JSON body above. */
export function directUploadError(status: number, reason: string, message: string, cause?: unknown): HttpException {
  const body: DirectUploadErrorBody = { statusCode: status, error: PHRASES[status] ?? 'Error', reason, message };
  return new HttpException(body, status, cause === undefined ? undefined : { cause });
}

/** Reads the status an UploadRejectedError deserves, and says what to do about it. */
const REJECTED: Record<UploadRejectedError['reason'], { status: number; hint: string }> = {
  'too-large': { status: HttpStatus.PAYLOAD_TOO_LARGE, hint: 'the file is larger than allowed; nothing was kept. Choose a smaller file.' },
  'type-not-allowed': { status: HttpStatus.UNSUPPORTED_MEDIA_TYPE, hint: 'the file is not of an allowed type (its first bytes were checked); nothing was kept.' },
  'size-mismatch': { status: HttpStatus.BAD_REQUEST, hint: 'the stored size is not what was announced; nothing was kept. Upload the file again.' },
  empty: { status: HttpStatus.BAD_REQUEST, hint: 'the file is empty; nothing was kept.' },
  'bad-request': { status: HttpStatus.BAD_REQUEST, hint: 'the request is not valid.' },
  'not-direct-upload': { status: HttpStatus.BAD_REQUEST, hint: 'that object was not uploaded with a form from this server; it was left alone.' },
  conflict: { status: HttpStatus.CONFLICT, hint: 'another complete of this upload is in progress; retry in a few seconds. Nothing was published by this request.' },
  'not-owner': { status: HttpStatus.FORBIDDEN, hint: 'that upload belongs to someone else; nothing was changed.' },
  'parts-mismatch': { status: HttpStatus.BAD_REQUEST, hint: 'the parts listed are not those uploaded; the upload was aborted. Upload the file again.' },
  'no-such-upload': { status: HttpStatus.NOT_FOUND, hint: 'there is no such open upload (it was completed, aborted or has expired). Start the upload again.' },
};

/**
 * The HttpException for an error from the storage. Unknown errors are returned as they are
 * (a genuine bug stays a 500, logged by Nest).
 */
export function toHttpError(error: unknown): unknown {
  if (error instanceof HttpException) return error;
  if (error instanceof UploadRejectedError) {
    const known = REJECTED[error.reason] ?? { status: HttpStatus.BAD_REQUEST, hint: 'the upload was refused.' };
    if (error.reason === 'conflict') {
      // Not a refusal: the same request succeeds once the other one ended (see RETRY_AFTER_SECONDS).
      return directUploadError(known.status, error.reason, `${known.hint[0]!.toUpperCase()}${known.hint.slice(1)}`, error);
    }
    // The storage's message says exactly which limit (it names sizes and types, not the bucket).
    return directUploadError(known.status, error.reason, `Upload refused: ${withoutEndpoint(error.message) || known.hint}`, error);
  }
  if (error instanceof InvalidKeyError) {
    return directUploadError(HttpStatus.BAD_REQUEST, 'invalid-key', `The key or file name is not valid: ${error.reason}.`, error);
  }
  if (error instanceof ObjectNotFoundError) {
    return directUploadError(HttpStatus.NOT_FOUND, 'not-found', 'Nothing has been uploaded under that key (yet): send the file first, then confirm it with the key the upload used.', error);
  }
  if (error instanceof StorageTimeoutError) {
    return directUploadError(HttpStatus.GATEWAY_TIMEOUT, 'storage-timeout', 'The storage did not answer in time; try again.', error);
  }
  if (error instanceof StorageOperationError) {
    if (error.s3Code === 'NoSuchUpload') return toHttpError(new UploadRejectedError('no-such-upload', ''));
    if (error.s3Code === 'InvalidPart' || error.s3Code === 'InvalidPartOrder' || error.s3Code === 'EntityTooSmall') {
      return directUploadError(HttpStatus.BAD_REQUEST, 'invalid-parts', `The storage refused the parts (${error.s3Code}): every part but the last must be at least 5 MiB, listed in order with the ETag its PUT answered.`, error);
    }
    return directUploadError(HttpStatus.SERVICE_UNAVAILABLE, 'storage-unavailable', 'The storage could not be reached or refused the request; try again later.', error);
  }
  // Anything else (a bad maxBytes from the app's options, a configuration error) is the server's fault.
  return error;
}

// Storage messages may end with " at <endpoint>" or name the bucket; keep what a person acts on.
// Nor the library's function names, which mean nothing to the person uploading.
function withoutEndpoint(message: string): string {
  return message
    .replace(/ at https?:\/\/\S+/g, '')
    .replace(/ in bucket "[^"]*"/g, '')
    .replace(/\b[a-z]\w*\(\): /g, '')
    .replace(/\b(?:createMultipartUpload|createUpload)\(\)/g, 'this server')
    .replace(/\b[a-z]\w*\(\)/g, 'the request');
}

/** Seconds a 409 `conflict` asks the client to wait (`Retry-After`): a complete takes about that. */
export const RETRY_AFTER_SECONDS = 5;

/** Sets `Retry-After` on a 409 `conflict` answer (Express and Fastify responses both have `header()`). */
export function withRetryAfter<T>(response: { header?: (name: string, value: string) => unknown }, answer: Promise<T>): Promise<T> {
  return answer.catch((error: unknown) => {
    if (error instanceof HttpException && (error.getResponse() as Partial<DirectUploadErrorBody>).reason === 'conflict') response.header?.('Retry-After', String(RETRY_AFTER_SECONDS));
    throw error;
  });
}

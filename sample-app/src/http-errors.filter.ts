/**
 * Every error answer is JSON `{ statusCode, error, reason?, message }` with a message a person can
 * act on. Multer's terse texts ("File too large") are reworded from its error codes, storage
 * errors become 404/400/503 instead of 500, and only a genuine bug answers 500, with a
 * message that reveals nothing of the server.
 */
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, HttpStatus, Inject, Logger } from '@nestjs/common';
import { InvalidKeyError, ObjectNotFoundError, StorageError, UploadRejectedError } from 'nestjs-s3-storage';
import { avatarsConfig, formatBytes, type AvatarsConfig } from './app.config.js';
import type { HttpRequest, HttpResponse } from './http.types.js';
import { AVATAR_FIELD } from './users/avatars.controller.js';
import { ACCEPTED_IMAGE_TYPES } from './users/image-type.js';

@Catch()
export class HttpErrorsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpErrors');

  constructor(@Inject(avatarsConfig.KEY) private readonly avatars: AvatarsConfig) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<HttpResponse>();
    const req = http.getRequest<HttpRequest>();
    const { status, message } = this.describe(exception);
    // A stable word for programs (DirectUploadsModule's `too-large`, `conflict`, …), kept as it is.
    const reason = reasonOf(exception);
    if (status >= 500) {
      // Logged for the operator; storage errors name bucket, key and endpoint, never a secret.
      // An HttpException from the library's upload interceptor carries the storage error as its cause.
      const cause = exception instanceof Error && exception.cause instanceof Error ? ` (cause: ${exception.cause.message})` : '';
      this.logger.error(`${req.method} ${req.originalUrl} -> ${status}: ${exception instanceof Error ? exception.message : String(exception)}${cause}`);
    }
    if (res.headersSent) return;
    res.status(status).json({ statusCode: status, error: reasonPhrase(status), ...(reason ? { reason } : {}), message: sentence(message) });
  }

  private describe(exception: unknown): { status: number; message: string } {
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const multer = multerCode(exception.cause);
      if (multer) return { status, message: this.multerMessage(multer, exception.cause as { field?: string }) };
      return { status, message: messageOf(exception) };
    }
    if (exception instanceof ObjectNotFoundError) return { status: 404, message: 'Not found.' };
    if (exception instanceof InvalidKeyError) return { status: 400, message: `Invalid name: ${exception.reason}.` };
    if (exception instanceof UploadRejectedError) {
      const status = exception.reason === 'too-large' ? 413 : exception.reason === 'type-not-allowed' ? 415 : 400;
      return { status, message: exception.message };
    }
    if (exception instanceof StorageError && exception.code === 'STORAGE_TIMEOUT') {
      return { status: 504, message: 'The file storage did not answer in time. Try again in a moment; if it persists, check GET /health.' };
    }
    if (exception instanceof StorageError) {
      return { status: 503, message: 'The file storage is unavailable right now. Try again in a moment; if it persists, check GET /health.' };
    }
    return { status: 500, message: 'Something went wrong on the server. Try again; if it persists, tell the operator.' };
  }

  private multerMessage(code: string, error: { field?: string }): string {
    const max = formatBytes(this.avatars.maxBytes);
    switch (code) {
      case 'LIMIT_FILE_SIZE':
        return `The image is larger than the ${max} limit. Choose a smaller image, or shrink this one.`;
      case 'LIMIT_UNEXPECTED_FILE':
        return `Send the image in the form field "${AVATAR_FIELD}"${error.field ? ` (a file came in "${error.field}")` : ''}.`;
      case 'LIMIT_FILE_COUNT':
        return 'Send one image at a time.';
      default:
        return `The upload form is malformed (${code}): send one ${ACCEPTED_IMAGE_TYPES} image as multipart/form-data in the field "${AVATAR_FIELD}".`;
    }
  }
}

/** Multer's error code (e.g. `LIMIT_FILE_SIZE`), kept by Nest as the exception's cause. */
function multerCode(cause: unknown): string | undefined {
  if (cause instanceof Error && cause.name === 'MulterError') return (cause as Error & { code: string }).code;
  return undefined;
}

function reasonOf(exception: unknown): string | undefined {
  if (exception instanceof UploadRejectedError) return exception.reason;
  if (!(exception instanceof HttpException)) return undefined;
  const body = exception.getResponse();
  const reason = typeof body === 'object' && body !== null ? (body as { reason?: unknown }).reason : undefined;
  return typeof reason === 'string' ? reason : undefined;
}

function messageOf(exception: HttpException): string {
  const body = exception.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
}

/** Messages from the library are lower-case clauses; a person reads a sentence. */
function sentence(message: string): string {
  const text = message.trim();
  if (!text) return text;
  return `${text[0]!.toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;
}

function reasonPhrase(status: number): string {
  const name = HttpStatus[status];
  return name ? name.toLowerCase().split('_').map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ') : 'Error';
}

/**
 * Streaming uploads for Nest controllers: a multipart/form-data file field piped straight to
 * S3 with backpressure, never held in memory or on disk.
 *
 * ```ts
 * @Post('files')
 * @UseInterceptors(MediaUploadInterceptor({ field: 'file', maxBytes: 1024 ** 3 }))
 * upload(@UploadedMedia() file: UploadedMediaFile) { return file; }
 * ```
 *
 * The byte limit is enforced while streaming (413, the multipart upload aborted, nothing
 * stored); the type is decided by the first bytes (415 when not allowed); a malformed or
 * truncated body, a missing field or a second file is a 400. Each answer carries a message a
 * person can act on. The same on Express and on Fastify (see fastify-multipart.ts).
 */
import {
  BadRequestException,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  Optional,
  PayloadTooLargeException,
  UnsupportedMediaTypeException,
  createParamDecorator,
  mixin,
  type CallHandler,
  type ExecutionContext,
  type InjectionToken,
  type NestInterceptor,
  type OnModuleInit,
  type Type,
} from '@nestjs/common';
import { HttpAdapterHost, ModuleRef } from '@nestjs/core';
import busboy from 'busboy';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { extensionFor } from './content-type.js';
import { SNIFF_BYTES, sniffContentType } from './content-sniffing.js';
import { MediaStorage, type StoredObject } from './media.storage.js';
import { InvalidKeyError, StorageConfigurationError, StorageError, UploadRejectedError } from './storage.errors.js';
import { nextOrAbort } from './abortable.js';
import { allowMultipartBodies, nodeRequest, nodeResponse } from './fastify-multipart.js';

/** What the handler receives from `@UploadedMedia()`. */
export interface UploadedMediaFile extends StoredObject {
  /** The file name the client sent (untrusted; for display only). */
  originalName: string;
  /** The other (non-file) form fields. */
  fields: Record<string, string>;
}

/** What `name()` is given to choose the stored name. */
export interface MediaUploadNameContext {
  /** The Node request, with the route's `params` (on Fastify too, where it is `request.raw`). */
  request: IncomingMessage & { params?: Record<string, string> };
  /**
   * The request as the HTTP platform gives it to `@Req()`: on Express the same object as
   * `request`, on Fastify the `FastifyRequest` (where guards put `user`).
   */
  httpRequest: object;
  /** The sniffed content type, or `application/octet-stream`. */
  contentType: string;
  /** The usual extension of `contentType` (`png`), or `bin`. */
  extension: string;
  originalName: string;
}

/** Options of {@link MediaUploadInterceptor}. */
export interface MediaUploadOptions {
  /**
   * The form field that carries the file.
   * @default 'file'
   */
  field?: string;
  /** The most bytes accepted; one more and the upload is aborted with 413. Required. */
  maxBytes: number;
  /**
   * Content types accepted, as sniffed from the first bytes. Files whose type is not
   * recognised count as `application/octet-stream`.
   * @default undefined (any type)
   */
  allowedTypes?: readonly string[];
  /**
   * The name to store under (relative to the media location).
   * @default `uploads/<uuid>.<extension>`
   */
  name?: (context: MediaUploadNameContext) => string;
  /**
   * Non-file fields accepted, and the bytes each may hold.
   * @default { count: 20, bytes: 65536 }
   */
  fieldLimits?: { count: number; bytes: number };
}

/**
 * Options computed from providers when the first request arrives, for limits that come from
 * configuration: `{ inject: [appConfig.KEY], useFactory: (c: AppConfig) => ({ maxBytes: c.maxBytes }) }`.
 */
export interface MediaUploadOptionsFactory {
  inject: InjectionToken[];
  useFactory: (...dependencies: never[]) => MediaUploadOptions;
}

const REQUEST_KEY = Symbol.for('nestjs-s3-storage:uploaded-media');
/** The platform's request (Express's, or Fastify's wrapper), where handlers and decorators look. */
type RequestWithMedia = { [REQUEST_KEY]?: UploadedMediaFile; body?: unknown; params?: Record<string, string> };
type NodeRequest = IncomingMessage & { params?: Record<string, string> };

/** The stored file, in a handler behind {@link MediaUploadInterceptor}. */
export const UploadedMedia = createParamDecorator((_data: unknown, context: ExecutionContext): UploadedMediaFile | undefined => {
  return context.switchToHttp().getRequest<RequestWithMedia>()[REQUEST_KEY];
});

/** An interceptor class that streams one file field of the request to `MediaStorage`. */
export function MediaUploadInterceptor(optionsOrFactory: MediaUploadOptions | MediaUploadOptionsFactory): Type<NestInterceptor> {
  const isFactory = 'useFactory' in optionsOrFactory;
  if (!isFactory) checkOptions(optionsOrFactory);

  @Injectable()
  class MediaUploadMixin implements NestInterceptor, OnModuleInit {
    private resolved?: MediaUploadOptions;

    constructor(
      @Inject(MediaStorage) private readonly storage: MediaStorage,
      @Inject(ModuleRef) private readonly moduleRef: ModuleRef,
      @Optional() @Inject(HttpAdapterHost) private readonly adapterHost?: HttpAdapterHost,
    ) {}

    /** On Fastify, lets multipart bodies through unread (it refuses types it cannot parse). */
    onModuleInit(): void {
      allowMultipartBodies(this.adapterHost?.httpAdapter);
    }

    private options(): MediaUploadOptions {
      if (this.resolved) return this.resolved;
      if (!isFactory) return (this.resolved = optionsOrFactory);
      const dependencies = optionsOrFactory.inject.map((token) => this.moduleRef.get(token, { strict: false }) as never);
      return (this.resolved = checkOptions(optionsOrFactory.useFactory(...dependencies)));
    }

    async intercept(context: ExecutionContext, next: CallHandler): Promise<ReturnType<CallHandler['handle']>> {
      const options = this.options();
      const http = context.switchToHttp();
      const platformRequest = http.getRequest<RequestWithMedia>();
      const request: NodeRequest = nodeRequest(platformRequest);
      const response: ServerResponse = nodeResponse(http.getResponse<object>());
      // Fastify keeps the route's params on its wrapper; name() reads them from the Node request.
      if (request !== platformRequest) request.params ??= platformRequest.params;
      try {
        const { file, fields } = await receive(request, platformRequest, this.storage, options);
        platformRequest[REQUEST_KEY] = { ...file.stored, originalName: file.originalName, fields };
        platformRequest.body = fields;
      } catch (error) {
        // Stop reading the rest of a rejected body, and do not keep the connection for more.
        if (!response.headersSent) response.setHeader('Connection', 'close');
        request.resume();
        throw toHttpException(error);
      }
      return next.handle();
    }
  }
  return mixin(MediaUploadMixin);
}

interface Received {
  file: { stored: StoredObject; originalName: string };
  fields: Record<string, string>;
}

function receive(request: NodeRequest, httpRequest: object, storage: MediaStorage, options: MediaUploadOptions): Promise<Received> {
  const field = options.field ?? 'file';
  const limits = options.fieldLimits ?? { count: 20, bytes: 65_536 };
  const contentType = request.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(contentType)) {
    return Promise.reject(new UploadRejectedError('bad-request', `send multipart/form-data with the file in the "${field}" field`));
  }
  if (request.readableEnded) {
    // The parser would see an empty body and answer 400, blaming the client for the server's set-up.
    return Promise.reject(
      new StorageConfigurationError(
        ['the request body was read before the interceptor ran (by a body parser such as multer, or @fastify/multipart with attachFieldsToBody): leave multipart bodies on this route unread'],
        'MediaUploadInterceptor cannot stream the upload',
      ),
    );
  }

  return new Promise<Received>((resolve, reject) => {
    const abort = new AbortController();
    const fields: Record<string, string> = {};
    let upload: Promise<Received['file']> | undefined;
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      abort.abort(error);
      request.unpipe(parser);
      // A file that finished storing before the request failed (the client hung up after the
      // form's end) belongs to no handler: remove it.
      upload?.then((file) => storage.delete(file.stored.name)).catch(() => undefined);
      reject(error);
    };

    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: request.headers,
        // One byte over the limit is how we learn the file is too large.
        limits: { files: 1, fileSize: options.maxBytes + 1, fields: limits.count, fieldSize: limits.bytes, parts: limits.count + 1, headerPairs: 200 },
      });
    } catch {
      reject(new UploadRejectedError('bad-request', 'the multipart body has no boundary; send multipart/form-data from a form or FormData'));
      return;
    }

    parser.on('file', (name, stream, info) => {
      if (name !== field || upload) {
        stream.resume();
        fail(new UploadRejectedError('bad-request', name === field ? `send one file in the "${field}" field` : `unexpected file field "${name}": send the file in the "${field}" field`));
        return;
      }
      upload = streamToStorage(request, httpRequest, stream, info.filename ?? '', storage, options, abort.signal);
      upload.catch(fail);
    });
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(new UploadRejectedError('bad-request', `the field "${name}" is longer than ${limits.bytes} bytes`));
      else fields[name] = value;
    });
    parser.on('filesLimit', () => fail(new UploadRejectedError('bad-request', `send one file in the "${field}" field`)));
    parser.on('fieldsLimit', () => fail(new UploadRejectedError('bad-request', `send at most ${limits.count} form fields`)));
    parser.on('partsLimit', () => fail(new UploadRejectedError('bad-request', `send at most ${limits.count + 1} form parts`)));
    parser.on('error', () => fail(new UploadRejectedError('bad-request', 'the multipart body is malformed or was cut off; send it again')));
    parser.on('close', () => {
      if (!upload) {
        fail(new UploadRejectedError('bad-request', `no file in the "${field}" field`));
        return;
      }
      upload.then((file) => {
        if (settled) return;
        settled = true;
        resolve({ file, fields });
      }, fail);
    });
    request.on('aborted', () => fail(new UploadRejectedError('bad-request', 'the client closed the connection before the upload finished')));
    request.pipe(parser);
  });
}

async function streamToStorage(
  request: NodeRequest,
  httpRequest: object,
  stream: Readable & { truncated?: boolean },
  originalName: string,
  storage: MediaStorage,
  options: MediaUploadOptions,
  signal: AbortSignal,
): Promise<Received['file']> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  // Read just enough to know what the file is.
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < SNIFF_BYTES) {
    const next = await nextOrAbort(iterator, signal);
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    headBytes += next.value.length;
  }
  if (headBytes === 0) throw new UploadRejectedError('empty', `the file "${originalName}" is empty`);
  const sniffed = sniffContentType(Buffer.concat(head, headBytes));
  const contentType = sniffed ?? 'application/octet-stream';
  if (options.allowedTypes && !options.allowedTypes.includes(contentType)) {
    stream.resume();
    throw new UploadRejectedError(
      'type-not-allowed',
      `the file's content is ${sniffed ? contentType : 'not a recognised type'}; allowed: ${options.allowedTypes.join(', ')} (decided by its bytes, not its name)`,
    );
  }

  const maxBytes = options.maxBytes;
  async function* limited(): AsyncGenerator<Buffer> {
    let total = 0;
    const take = (chunk: Buffer): Buffer => {
      total += chunk.length;
      if (total > maxBytes) throw new UploadRejectedError('too-large', tooLarge(maxBytes));
      return chunk;
    };
    for (const chunk of head) yield take(chunk);
    if (ended) return;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield take(next.value);
    if (stream.truncated) throw new UploadRejectedError('too-large', tooLarge(maxBytes));
  }

  const extension = extensionFor(contentType) ?? 'bin';
  const name = options.name?.({ request, httpRequest, contentType, extension, originalName }) ?? `uploads/${randomUUID()}.${extension}`;
  try {
    const stored = await storage.upload(name, Readable.from(limited()), { contentType, signal });
    return { stored, originalName };
  } catch (error) {
    // The limit's own error, not the storage's wrapping of it.
    const cause = error instanceof StorageError ? error.cause : undefined;
    throw cause instanceof UploadRejectedError ? cause : error;
  }
}

function checkOptions(options: MediaUploadOptions): MediaUploadOptions {
  if (!Number.isInteger(options.maxBytes) || options.maxBytes < 1) {
    throw new StorageError(`MediaUploadInterceptor: maxBytes must be a positive whole number of bytes (got ${String(options.maxBytes)})`);
  }
  return options;
}

function tooLarge(maxBytes: number): string {
  return `the file is larger than the ${maxBytes.toLocaleString('en-US')}-byte limit; nothing was stored`;
}

function toHttpException(error: unknown): HttpException {
  if (error instanceof HttpException) return error;
  if (error instanceof UploadRejectedError) {
    switch (error.reason) {
      case 'too-large':
        return new PayloadTooLargeException(error.message);
      case 'type-not-allowed':
        return new UnsupportedMediaTypeException(error.message);
      default:
        return new BadRequestException(error.message);
    }
  }
  if (error instanceof InvalidKeyError) return new BadRequestException(error.message);
  if (error instanceof StorageError && error.code === 'STORAGE_CONFIGURATION') {
    // The answer says only that something is wrong; the log says what.
    new Logger('nestjs-s3-storage').error(error.message);
    return new HttpException({ statusCode: 500, message: 'the upload is misconfigured on the server' }, 500, { cause: error });
  }
  if (error instanceof StorageError) {
    const status = error.code === 'STORAGE_TIMEOUT' ? HttpStatus.GATEWAY_TIMEOUT : HttpStatus.SERVICE_UNAVAILABLE;
    return new HttpException({ statusCode: status, message: 'storage is unavailable; try again shortly', error: error.code }, status, { cause: error });
  }
  return new HttpException({ statusCode: 500, message: 'the upload failed' }, 500, { cause: error });
}

/**
 * Options of `DirectUploadsModule`: who may upload, where their files go, and the limits,
 * each decided per request.
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * The part of the HTTP request the option callbacks see. Express's and Fastify's requests
 * both have these; cast to your platform's type for more (e.g. `request.user` from a guard).
 */
export interface DirectUploadRequest {
  /** Route parameters, including those in `path` (`users/:id/uploads` gives `params.id`). */
  params: Record<string, string | undefined>;
  query: Record<string, unknown>;
  headers: IncomingHttpHeaders;
}

/** A value fixed at registration, or computed for each request. */
export type PerRequest<T> = T | ((request: DirectUploadRequest) => T | Promise<T>);

/** What `DirectUploadsModule.register()` / `registerAsync()`'s factory gives. */
export interface DirectUploadsModuleOptions {
  /**
   * Runs first on every route. Return `false` for 403, or throw an `HttpException`
   * (`UnauthorizedException` for 401). Required, so that opening the routes to everyone is a
   * decision: `authorize: () => true`.
   */
  authorize(request: DirectUploadRequest): boolean | Promise<boolean>;
  /**
   * The storage folder of the caller's uploads, e.g. `users/42/files`. An upload belongs to
   * the prefix it was created with: a request whose prefix differs cannot sign its parts,
   * list, complete, abort or confirm it (403). Throw an `HttpException` to refuse.
   */
  prefix(request: DirectUploadRequest): string | Promise<string>;
  /** Largest file accepted, in bytes (1 byte to 5 TiB; single-request uploads stop at 5 GiB). */
  maxBytes: PerRequest<number>;
  /**
   * MIME types (or `type/*`) a file may be: the type the client declares is checked at
   * create (415), and the first bytes are sniffed at complete/confirm.
   * @default undefined (any type)
   */
  allowedTypes?: PerRequest<readonly string[] | undefined>;
  /**
   * Most multipart uploads open at once under one prefix (counted with ListMultipartUploads
   * at create; over it: 429). Best effort: concurrent creates may pass it by their number.
   * @default undefined (no cap)
   */
  maxOpenUploads?: PerRequest<number | undefined>;
  /** Seconds a part URL stays valid (a part must start within it). @default the storage's default for `signParts()` (`urlExpiresIn`) */
  partUrlExpiresIn?: number;
  /** Seconds a single-request (presigned POST) form stays valid. @default the storage's default for `createUpload()` (300) */
  postExpiresIn?: number;
}

/** What `register()` / `registerAsync()` take besides the options: they fix the routes. */
export interface DirectUploadsModuleExtras {
  /**
   * Where the routes live: Uppy's `companionEndpoint`. The routes are `<path>/s3/…`. Route
   * parameters are allowed (`users/:id/uploads`) and reach the callbacks as `request.params`.
   */
  path: string;
  /**
   * The named storage to upload to (`StorageModule.forRoot({ name })`).
   * @default undefined (the unnamed `MediaStorage`)
   */
  storage?: string;
}

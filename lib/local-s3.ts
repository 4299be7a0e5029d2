/**
 * An S3-compatible server in-process on loopback (s3rver, files on disk), guarded so that no
 * request can take the host process down. Used by the sample app's `npm start` with no
 * configuration and by the test harness when no other server is reachable.
 *
 * Not exported from the package's main entry: s3rver is an optional peer dependency, loaded
 * only when this is called. For development and tests only: s3rver does not verify
 * presigned-URL signatures and honours no conditional write.
 */
import { createWriteStream, mkdirSync, mkdtempSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { create as createDomain } from 'node:domain';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageConfigurationError } from './storage.errors.js';
import type { MediaStorageOptions } from './storage-module-options.interface.js';

/** Options of {@link startLocalS3}. */
export interface LocalS3Options {
  /**
   * Where objects are kept on disk; created when missing.
   * @default a new folder under the OS temp directory
   */
  directory?: string;
  /**
   * The loopback (or other) address to listen on.
   * @default '127.0.0.1'
   */
  address?: string;
  /**
   * The port to listen on; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * The account clients sign with (s3rver checks the access key id, not SigV4 signatures).
   * @default 'S3RVER'
   */
  accessKeyId?: string;
  /**
   * The account's secret.
   * @default 'S3RVER'
   */
  secretAccessKey?: string;
  /**
   * Where a request the server could not complete is reported (never the process's fatal
   * handler). Receives the error and the request's method and path.
   * @default writes one line to stderr
   */
  onRequestError?: (error: Error, request: { method: string; path: string }) => void;
}

/** A running local S3 server. */
export interface LocalS3 {
  /** `http://<address>:<port>`, for path-style clients. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  directory: string;
  /** Stops listening and ends open connections. */
  close(): Promise<void>;
  /** The same as {@link close}. */
  stop(): Promise<void>;
  /**
   * Media options that reach this server with its account, for `StorageModule.forRoot({ media })`
   * (the bucket is created at start-up by the default `ensureBucket: 'create'`).
   */
  mediaOptions(bucket: string, overrides?: Partial<MediaStorageOptions>): MediaStorageOptions;
}

/** s3rver's built-in account. */
const ACCOUNT = 'S3RVER';
/** Linux and macOS limits on one file name and on a whole path, in bytes. */
const NAME_MAX = 255;
const PATH_MAX = 4095;

/** The parts of s3rver 3.x used here (it ships no typings). */
interface S3rverError extends Error {
  status: number;
}
interface S3rverErrorClass {
  new (code: string, message: string, detail?: Record<string, string>): S3rverError;
}
interface StoredObjectInput {
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  content: Buffer | Readable;
}
interface FilesystemStore {
  getBucketPath(bucket: string): string;
  putObject(object: StoredObjectInput): Promise<{ size: number; md5: string }>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
  deleteObject(bucket: string, key: string): Promise<void>;
  getResourcePath(bucket: string, key?: string, resource?: string): string;
  initiateUpload(bucket: string, key: string, ...rest: unknown[]): Promise<unknown>;
  putObjectMultipart(bucket: string, uploadId: string, parts: { number: number; etag: string }[]): Promise<{ md5: string; size: number }>;
}
interface S3rverApp {
  store: FilesystemStore;
  on(event: 'error', listener: (error: Error & { status?: number }, ctx?: { method: string; path: string }) => void): void;
  logger: { close(): void };
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverApp;

/**
 * Why the embedded server cannot keep `key` as files, or undefined when it can. Real S3
 * stores such keys; s3rver maps every `/`-separated segment to a file or folder name.
 */
export function unstorableKeyReason(key: string): { code: 'KeyTooLongError' | 'InvalidArgument'; message: string } | undefined {
  if (key.includes('\u0000')) return { code: 'InvalidArgument', message: 'the embedded S3 server (s3rver) cannot store a key containing a NUL character as a file' };
  const segments = key.split('/');
  segments.pop(); // the last segment becomes a file name with a suffix, checked on the full path
  for (const segment of segments) {
    if (segment === '.' || segment === '..' || segment === '') {
      return {
        code: 'InvalidArgument',
        message: `the embedded S3 server (s3rver) cannot store a key with a "${segment}" path segment: on disk it would alias or escape another folder. Real S3 accepts it; use a real S3 server for such keys`,
      };
    }
  }
  return undefined;
}

function tooLong(path: string, root: string): string | undefined {
  if (Buffer.byteLength(path) > PATH_MAX) {
    return `the embedded S3 server (s3rver) keeps keys as file paths, and this one would be ${Buffer.byteLength(path)} bytes long (the file system allows ${PATH_MAX}). Real S3 accepts it; use shorter names or a real S3 server`;
  }
  for (const name of relative(root, path).split(sep)) {
    const bytes = Buffer.byteLength(name);
    if (bytes > NAME_MAX) {
      return (
        `the embedded S3 server (s3rver) keeps each "/"-separated key segment as a file name, and the file system allows ${NAME_MAX} bytes per name: ` +
        `"${encodeURIComponent(name.slice(0, 16))}…" would be ${bytes} bytes. Real S3 accepts it (1,024 bytes per key); use shorter segments or a real S3 server`
      );
    }
  }
  return undefined;
}

interface S3rverAccounts {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}

async function loadS3rver(): Promise<{ S3rver: S3rverClass; S3Error: S3rverErrorClass; accounts: S3rverAccounts }> {
  try {
    const [server, error, account] = await Promise.all([import('s3rver'), import('s3rver/lib/models/error.js'), import('s3rver/lib/models/account.js')]);
    return {
      S3rver: (server as { default: S3rverClass }).default,
      S3Error: (error as { default: S3rverErrorClass }).default,
      accounts: (account as { default: S3rverAccounts }).default,
    };
  } catch (cause) {
    throw new StorageConfigurationError(
      [`the local S3 server needs the optional peer dependency "s3rver" (3.x): npm install --save-dev s3rver (${(cause as Error).message})`],
      'Cannot start the local S3 server',
    );
  }
}

/** Refuses, as an S3 error response, every key s3rver would turn into an impossible file. */
function guardStore(store: FilesystemStore, root: string, S3Error: S3rverErrorClass): void {
  const check = (key: string, path?: string): void => {
    const invalid = unstorableKeyReason(key);
    if (invalid) throw new S3Error(invalid.code, invalid.message);
    const long = path === undefined ? undefined : tooLong(path, root);
    if (long) throw new S3Error('KeyTooLongError', long);
  };
  const getResourcePath = store.getResourcePath.bind(store);
  store.getResourcePath = (bucket, key = '', resource) => {
    const path = getResourcePath(bucket, key, resource);
    check(key, path);
    return path;
  };
  const initiateUpload = store.initiateUpload.bind(store);
  // Refuse at the start of a multipart upload, not after every part was sent; the longest
  // suffix s3rver adds to a key's last segment is "._S3rver_metadata.json".
  store.initiateUpload = async (bucket, key, ...rest) => {
    check(key, getResourcePath(bucket, key, 'metadata.json'));
    return initiateUpload(bucket, key, ...rest);
  };
}

/**
 * Gives a completed multipart upload S3's ETag (MD5 of the parts' MD5s, "-" and the part
 * count) instead of s3rver's MD5 of the whole body, so code that tells the two apart works here.
 */
function multipartEtags(store: FilesystemStore): void {
  const complete = store.putObjectMultipart.bind(store);
  store.putObjectMultipart = async (bucket, uploadId, parts) => {
    const key = await readFile(join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, 'key'), 'utf8');
    const result = await complete(bucket, uploadId, parts);
    const sorted = [...parts].sort((a, b) => a.number - b.number);
    const digest = createHash('md5');
    for (const part of sorted) digest.update(Buffer.from(part.etag.replace(/"/g, ''), 'hex'));
    const etag = `${digest.digest('hex')}-${sorted.length}`;
    await writeFile(`${store.getResourcePath(bucket, key, 'object')}.md5`, etag);
    return { ...result, md5: etag };
  };
}

/**
 * Nothing half-written: s3rver streams a PUT straight into the object's file, so a client
 * that hangs up midway leaves a truncated object behind (S3 stores nothing). Here the body
 * goes to a temporary file beside it and is renamed into place only once it arrived whole.
 * Concurrent deletes may remove the folder meanwhile; creating it again is retried.
 */
function atomicPuts(store: FilesystemStore): void {
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    const temporary = `${objectPath}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
    const md5 = createHash('md5');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(objectPath), { recursive: true });
      try {
        if (Buffer.isBuffer(object.content)) {
          await writeFile(temporary, object.content);
          md5.update(object.content);
          size = object.content.length;
        } else {
          await pipeline(object.content, count, createWriteStream(temporary));
        }
        await rename(temporary, objectPath);
        break;
      } catch (error) {
        await unlink(temporary).catch(() => undefined);
        // The folder vanished under a concurrent delete before anything was read: try again.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && size === 0 && attempt < 3) continue;
        throw error;
      }
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
  // s3rver removes emptied folders after a delete; two deletes (or a delete and a put) in one
  // folder race there. The object's files are gone by then: the race is not a failure.
  const deleteObject = store.deleteObject.bind(store);
  store.deleteObject = async (bucket, key) => {
    try {
      await deleteObject(bucket, key);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw error;
    }
  };
}

function xmlError(code: string, message: string): string {
  const escape = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escape(message)}</Message></Error>`;
}

/**
 * Each request runs in its own domain: an `error` event no listener takes (s3rver leaves
 * its file streams without one) fails that request with a 500, instead of reaching the
 * process's uncaught-exception handler and ending the process.
 */
function contained(handle: (req: IncomingMessage, res: ServerResponse) => void, report: NonNullable<LocalS3Options['onRequestError']>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const domain = createDomain();
    domain.add(req);
    domain.add(res);
    domain.on('error', (error: Error) => {
      report(error, { method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0]! });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = xmlError('InternalError', `the embedded S3 server could not complete this request: ${error.message}`);
      res.writeHead(500, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
    });
    domain.run(() => handle(req, res));
  };
}

/**
 * The multipart calls s3rver lacks (it answers NotImplemented / MethodNotAllowed), read from
 * its own upload folders: ListMultipartUploads and AbortMultipartUpload, so cleanup of abandoned
 * uploads works here as on S3, and ListParts (one page, parts in order), which resumable
 * browser uploads and their completion need. Returns false for every other request.
 */
function multipartExtras(store: FilesystemStore) {
  const uploadsDir = (bucket: string): string => store.getResourcePath(bucket, undefined, 'uploads');
  const send = (res: ServerResponse, status: number, body = ''): void => {
    res.writeHead(status, body ? { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) } : {});
    res.end(body);
  };
  const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);
  const escape = (s: string): string => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://local');
    const [bucket, ...rest] = url.pathname.slice(1).split('/').map(decodeURIComponent);
    const key = rest.join('/');
    // Anything but a plain bucket name is left to s3rver, which refuses it.
    if (!bucket || !/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) return false;
    const listing = req.method === 'GET' && !key && url.searchParams.has('uploads');
    const uploadId = url.searchParams.get('uploadId');
    const aborting = req.method === 'DELETE' && key !== '' && uploadId !== null;
    const listingParts = req.method === 'GET' && key !== '' && uploadId !== null;
    if (!listing && !aborting && !listingParts) return false;
    if (!(await exists(store.getBucketPath(bucket)))) {
      send(res, 404, xmlError('NoSuchBucket', 'The specified bucket does not exist'));
      return true;
    }
    if (aborting) {
      const dir = join(uploadsDir(bucket), uploadId!);
      if (!/^[0-9a-f]+$/.test(uploadId!) || !(await exists(dir))) {
        send(res, 404, xmlError('NoSuchUpload', 'The specified multipart upload does not exist'));
        return true;
      }
      await rm(dir, { recursive: true, force: true });
      send(res, 204);
      return true;
    }
    if (listingParts) {
      const dir = join(uploadsDir(bucket), uploadId!);
      const uploadKey = /^[0-9a-f]+$/.test(uploadId!) ? await readFile(join(dir, 'key'), 'utf8').catch(() => undefined) : undefined;
      if (uploadKey !== key) {
        send(res, 404, xmlError('NoSuchUpload', 'The specified multipart upload does not exist'));
        return true;
      }
      const numbers = (await readdir(dir)).filter((f) => /^\d+$/.test(f)).map(Number).sort((a, b) => a - b);
      const parts: string[] = [];
      for (const number of numbers) {
        const [info, md5] = await Promise.all([stat(join(dir, String(number))), readFile(join(dir, `${number}.md5`), 'utf8').catch(() => undefined)]);
        // A part still being written has no .md5 yet: S3 lists only parts that arrived.
        if (md5 === undefined) continue;
        parts.push(`<Part><PartNumber>${number}</PartNumber><LastModified>${info.mtime.toISOString()}</LastModified><ETag>"${md5}"</ETag><Size>${info.size}</Size></Part>`);
      }
      send(
        res,
        200,
        `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult><Bucket>${escape(bucket)}</Bucket><Key>${escape(key)}</Key><UploadId>${uploadId}</UploadId>` +
          `<MaxParts>10000</MaxParts><IsTruncated>false</IsTruncated>${parts.join('')}</ListPartsResult>`,
      );
      return true;
    }
    const prefix = url.searchParams.get('prefix') ?? '';
    const uploads: string[] = [];
    for (const id of await readdir(uploadsDir(bucket)).catch(() => [] as string[])) {
      const dir = join(uploadsDir(bucket), id);
      const uploadKey = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
      if (uploadKey === undefined || !uploadKey.startsWith(prefix)) continue;
      const initiated = (await stat(dir)).birthtime.toISOString();
      uploads.push(`<Upload><Key>${escape(uploadKey)}</Key><UploadId>${id}</UploadId><Initiated>${initiated}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`);
    }
    send(
      res,
      200,
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult><Bucket>${escape(bucket)}</Bucket><Prefix>${escape(prefix)}</Prefix>` +
        `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
    );
    return true;
  };
}

/**
 * `If-Match` on GET and HEAD, which s3rver ignores: a read of another version than the one
 * named answers 412 PreconditionFailed, as S3 does, so code that reads "this version only"
 * (ranged downloads, upload checks) behaves here as it does in production. Returns false for
 * every request it does not answer itself.
 */
function conditionalReads(store: FilesystemStore) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const wanted = req.headers['if-match'];
    if ((req.method !== 'GET' && req.method !== 'HEAD') || typeof wanted !== 'string') return false;
    const url = new URL(req.url ?? '/', 'http://local');
    const [bucket, ...rest] = url.pathname.slice(1).split('/').map(decodeURIComponent);
    const key = rest.join('/');
    if (!bucket || !key) return false;
    let path: string;
    try {
      path = `${store.getResourcePath(bucket, key, 'object')}.md5`;
    } catch {
      return false; // a key the guards refuse: s3rver answers it with their error
    }
    const etag = await readFile(path, 'utf8').catch(() => undefined);
    if (etag === undefined) return false; // missing: s3rver answers 404
    const matches = wanted
      .split(',')
      .map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''))
      .some((t) => t === '*' || t === etag.trim());
    if (matches) return false;
    const body = req.method === 'HEAD' ? '' : xmlError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    res.writeHead(412, body ? { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) } : {});
    res.end(body);
    return true;
  };
}

/** Starts s3rver behind the guards above; resolves once it listens. */
export async function startLocalS3(options: LocalS3Options = {}): Promise<LocalS3> {
  const { S3rver, S3Error, accounts } = await loadS3rver();
  const accessKeyId = options.accessKeyId ?? ACCOUNT;
  const secretAccessKey = options.secretAccessKey ?? ACCOUNT;
  accounts.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), 'nss3-local-s3-'));
  mkdirSync(directory, { recursive: true });
  const address = options.address ?? '127.0.0.1';
  const report =
    options.onRequestError ??
    ((error, request) => process.stderr.write(`local S3 server: ${request.method} ${request.path} failed: ${error.message}\n`));
  const app = new S3rver({ directory, silent: true, vhostBuckets: false });
  guardStore(app.store, directory, S3Error);
  multipartEtags(app.store);
  atomicPuts(app.store);
  // s3rver answers its own failures with a 500 and, when silent, tells nobody why.
  app.on('error', (error, ctx) => {
    if ((error.status ?? 500) >= 500) report(error, { method: ctx?.method ?? '?', path: ctx?.path ?? '?' });
  });

  const s3rver = app.callback();
  const extras = multipartExtras(app.store);
  const conditional = conditionalReads(app.store);
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    conditional(req, res).then((answered) => answered || extras(req, res)).then(
      (handled) => handled || s3rver(req, res),
      (error: Error) => process.nextTick(() => res.emit('error', error)),
    );
  };
  const server: Server = createServer(contained(handle, report));
  // Node's default closes idle keep-alive sockets after 5 s, and clients (undici: the hint
  // minus 1 s) reuse them until 4 s: on a loaded machine the two race, and a request written
  // onto a socket the server is closing fails with EPIPE. Real S3 servers keep idle sockets
  // about a minute; so does this one.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  const close = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      // Keep-alive sockets of S3 clients would hold close() open.
      server.closeAllConnections();
      app.logger.close();
    });
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    directory,
    close,
    stop: close,
    mediaOptions: (bucket, overrides = {}) => ({
      bucket,
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      ...overrides,
    }),
  };
}

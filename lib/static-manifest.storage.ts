/**
 * `StaticManifestStorage`: static files on S3 under hashed names, looked up through a
 * Django-compatible `staticfiles.json` manifest, and the `collectstatic` that uploads them.
 *
 * A collect lists the bucket prefix once (pages of 1000) instead of a HEAD per file, and
 * uploads only names that are not there yet: every stored name carries a content hash, so
 * "present with the same size" means "up to date". The manifest is written last, so a run
 * that fails half-way leaves the previous manifest pointing at files that all exist.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { guessContentType } from './content-type.js';
import { normalizeName, toKey } from './key-normalizer.js';
import { describeEndpoint } from './s3-client.factory.js';
import { isNotFound, toStorageError } from './s3-errors.js';
import { buildManifest, forEachLimit, hashTree, isContentHashed, md5Hex, parseManifest, type MissingReference } from './static-hashing.js';
import { unquote } from './abortable.js';
import { multipartUpload } from './multipart-upload.js';
import { ManifestError, StorageConfigurationError, StorageError, StorageTimeoutError } from './storage.errors.js';
import type { ResolvedStaticOptions } from './storage-options.validation.js';
import { computeBase, encodeKeyPath } from './url-signer.js';

/** `Cache-Control` of hashed files: their name changes whenever their content does. */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** `Cache-Control` of the manifest: it changes on every deploy under the same name. */
export const MANIFEST_CACHE_CONTROL = 'public, max-age=60';

/** Files up to this size are read whole and sent in one PutObject; larger ones stream multipart. */
const SINGLE_PUT_MAX = 16 * 1024 * 1024;
/** Concurrent file reads while hashing: local I/O, independent of the upload concurrency. */
const HASH_CONCURRENCY = 32;

/** What `collect()` is doing, for progress bars. */
export interface CollectProgress {
  phase: 'hash' | 'upload' | 'delete';
  done: number;
  total: number;
}

/** Options of {@link StaticManifestStorage.collect}. */
export interface CollectOptions {
  /**
   * Work out what would be uploaded and deleted, and send only read requests.
   * @default false
   */
  dryRun?: boolean;
  /**
   * Delete objects under the location that neither the new nor the previous manifest
   * references. The previous version's files stay, so running instances never 404.
   * @default false
   */
  prune?: boolean;
  /** Called as files are hashed, uploaded and deleted. */
  onProgress?: (progress: CollectProgress) => void;
  /**
   * A local JSON file remembering each file's md5 with its size, mtime, ctime and inode,
   * so a re-run reads only files that changed (what `aws s3 sync` and git trust too).
   * Files modified in the last second are never cached (coarse file-system clocks).
   * The CLI keeps it under `node_modules/.cache/nestjs-s3-storage/`.
   * @default undefined (every file is read and hashed on every run)
   */
  hashCache?: string;
}

/** What `collect()` did (or, with `dryRun`, would do). */
export interface CollectResult {
  /** Files found in the directory. */
  files: number;
  /** Keys uploaded (or that would be). */
  uploaded: string[];
  /** Files already stored under their hashed key. */
  unchanged: number;
  /** Keys deleted by `prune` (or that would be). */
  deleted: string[];
  /** Bytes uploaded (or that would be). */
  bytesUploaded: number;
  /** Whether the manifest was (or would be) written; false when it was already identical. */
  manifestWritten: boolean;
  /** The new manifest's `hash`. */
  manifestHash: string;
  /** CSS/JS references to files that are not in the directory, left as written. */
  missingReferences: MissingReference[];
  dryRun: boolean;
  /** Wall-clock milliseconds. */
  durationMs: number;
}

interface LocalFile {
  name: string;
  path: string;
  size: number;
  /** `size:mtimeMs:ctimeMs:ino`: what the hash cache trusts instead of re-reading the file. */
  stamp: string;
  mtimeMs: number;
}

/** The optional local hash cache: file name → [stamp, md5]. */
interface HashCache {
  version: 1;
  files: Record<string, [string, string]>;
}

/** Static files with hashed names on S3, resolved through `staticfiles.json`. */
export class StaticManifestStorage {
  private readonly endpoint: string;
  private readonly prefix: string;
  private readonly manifestKey: string;
  private paths?: Record<string, string>;
  private manifestMissing = false;
  private urlBase?: string;

  constructor(
    private readonly client: S3Client,
    private readonly options: ResolvedStaticOptions,
  ) {
    this.endpoint = describeEndpoint(options);
    this.prefix = options.location ? `${options.location}/` : '';
    this.manifestKey = toKey(options.location, options.manifestName);
  }

  /**
   * `false` when the module has no `static` options: the injected instance then fails every
   * use with a `StorageConfigurationError`. Check it to make static files optional.
   */
  get isConfigured(): boolean {
    return true;
  }

  /** The manifest's full key (location included). */
  get manifestObjectKey(): string {
    return this.manifestKey;
  }

  /**
   * Reads the manifest. Called once at start-up by the module; call it again to pick up a
   * new deploy. A missing manifest (a fresh deploy before the first collectstatic) only
   * logs a warning, so the app still boots; lookups then fail in strict mode.
   * @throws ManifestError `corrupt-manifest` when it is not a valid manifest.
   * @throws StorageOperationError when S3 cannot be read (unreachable, access denied).
   */
  async load(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.resolveUrlBase();
    const text = await this.readManifest(options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs));
    if (text === undefined) {
      this.paths = {};
      this.manifestMissing = true;
      // Loaded here, not at the top: the CLI never needs Nest, and loading it costs ~0.3 s of start-up.
      const { Logger } = await import('@nestjs/common');
      new Logger('nestjs-s3-storage').warn(
        `Static files manifest "${this.manifestKey}" not found in bucket "${this.options.bucket}" at ${this.endpoint}: ` +
          'run "nestjs-s3-storage collectstatic <dir>"; static URLs cannot be resolved until then.',
      );
      return;
    }
    this.paths = this.parse(text);
    this.manifestMissing = false;
  }

  /**
   * The public, unsigned URL of a static file, through the manifest: on `customDomain`,
   * else `publicEndpoint`, `endpoint` or the AWS endpoint. A query or fragment is kept
   * (`fonts/a.woff?#iefix`).
   * @throws ManifestError `missing-entry` for a name not in the manifest (when `manifestStrict`).
   */
  url(name: string): string {
    const { path, suffix } = splitSuffix(name);
    const key = toKey(this.options.location, this.lookup(name, path));
    return `${this.urlBase}${encodeKeyPath(key)}${suffix}`;
  }

  /**
   * The stored (hashed) name of a static file, relative to the location.
   * @throws ManifestError `missing-entry` for a name not in the manifest (when `manifestStrict`).
   */
  hashedName(name: string): string {
    const { path, suffix } = splitSuffix(name);
    return this.lookup(name, path) + suffix;
  }

  /**
   * `collectstatic`: hashes the files under `dir` (rewriting CSS references), uploads the
   * ones not stored yet with `options.concurrency` uploads in flight, writes the manifest
   * last, and with `prune` deletes files no manifest references any more.
   */
  async collect(dir: string, options: CollectOptions = {}): Promise<CollectResult> {
    const started = performance.now();
    const { dryRun = false, prune = false, onProgress } = options;
    // Pruning deletes every key under the location that no manifest names: at the bucket
    // root that is everything else in the bucket too.
    if (prune && this.options.location === '') {
      throw new StorageConfigurationError(
        [`static.location: is empty, so prune would delete every other object in bucket "${this.options.bucket}"; give static files their own prefix (AWS_LOCATION), e.g. "static"`],
        'Refusing to prune',
      );
    }

    // Listing is network-bound and hashing local: run them side by side.
    const listing = this.listPrefix();
    const previous = prune ? this.previousPaths() : Promise.resolve(undefined);
    listing.catch(() => undefined);
    previous.catch(() => undefined);

    const startedAt = Date.now();
    const local = await walk(dir, this.options.location === '' ? this.options.manifestName : undefined);
    const byName = new Map(local.map((f) => [f.name, f]));
    const cache = options.hashCache === undefined ? undefined : await readHashCache(options.hashCache);
    const nextCache: HashCache = { version: 1, files: {} };
    let hashed = 0;
    const toHash = local.filter((f) => !isContentHashed(f.name)).length;
    const { files, missing } = await hashTree(
      local.map((f) => f.name),
      {
        read: async (name) => {
          const buf = await readFile(byName.get(name)!.path);
          onProgress?.({ phase: 'hash', done: ++hashed, total: toHash });
          return buf;
        },
        md5: async (name) => {
          const file = byName.get(name)!;
          const cached = cache?.files[name];
          const digest =
            cached?.[0] === file.stamp
              ? cached[1]
              : file.size <= SINGLE_PUT_MAX
                ? md5Hex(await readFile(file.path))
                : await md5Stream(file.path);
          if (file.mtimeMs < startedAt - 1000) nextCache.files[name] = [file.stamp, digest];
          onProgress?.({ phase: 'hash', done: ++hashed, total: toHash });
          return digest;
        },
      },
      { keep: isContentHashed, concurrency: HASH_CONCURRENCY },
    );

    const paths: Record<string, string> = {};
    for (const f of files.values()) paths[f.name] = f.storedName;
    const { manifest, body: manifestBody } = buildManifest(paths);

    const stored = await listing;
    const toUpload: { key: string; name: string; body?: Buffer; size: number }[] = [];
    let unchanged = 0;
    for (const f of files.values()) {
      const key = toKey(this.options.location, f.storedName);
      const size = f.body?.length ?? byName.get(f.name)!.size;
      // A key we hashed holds this content when the size matches: the hash is in the name.
      // A name kept from the bundler proves nothing: compare the md5 too (a multipart ETag,
      // with a dash, is no md5; such a file is trusted by size as before).
      const there = stored.get(key);
      const same = there?.size === size && (!f.kept || there.etag.includes('-') || there.etag === f.md5);
      if (same) unchanged++;
      else toUpload.push({ key, name: f.name, body: f.body, size });
    }
    toUpload.sort((a, b) => b.size - a.size); // big files first, so the tail of the run is short
    const existingManifest = stored.get(this.manifestKey);
    const manifestWritten = existingManifest?.etag !== md5Hex(manifestBody) || existingManifest.size !== manifestBody.length;

    let deleted: string[] = [];
    if (prune) {
      const previousPaths = (await previous) ?? {};
      const keep = new Set<string>([this.manifestKey]);
      for (const storedName of [...Object.values(paths), ...Object.values(previousPaths)]) {
        keep.add(toKeySafe(this.options.location, storedName));
      }
      deleted = [...stored.keys()].filter((key) => !keep.has(key)).sort();
    }

    if (!dryRun) {
      let uploaded = 0;
      await forEachLimit(toUpload, this.options.concurrency, async (item) => {
        await this.upload(item.key, item.body ?? byName.get(item.name)!.path, item.size);
        onProgress?.({ phase: 'upload', done: ++uploaded, total: toUpload.length });
      });
      if (manifestWritten) await this.putManifest(manifestBody);
      if (options.hashCache !== undefined) await writeHashCache(options.hashCache, nextCache);
      this.paths = { ...manifest.paths };
      this.manifestMissing = false;
      if (deleted.length > 0) await this.deleteKeys(deleted, onProgress);
    }

    return {
      files: local.length,
      uploaded: toUpload.map((u) => u.key),
      unchanged,
      deleted,
      bytesUploaded: toUpload.reduce((sum, u) => sum + u.size, 0),
      manifestWritten,
      manifestHash: manifest.hash,
      missingReferences: missing,
      dryRun,
      durationMs: performance.now() - started,
    };
  }

  private lookup(name: string, path: string): string {
    if (this.paths === undefined) {
      throw new ManifestError('missing-manifest', 'StaticManifestStorage.load() has not run: the module calls it at start-up; call it yourself when you build the storage by hand', {
        bucket: this.options.bucket,
        key: this.manifestKey,
      });
    }
    const clean = normalizeName(path.replace(/^\/+/, ''));
    const stored = this.paths[clean];
    if (stored !== undefined) return stored;
    if (!this.options.manifestStrict) return clean;
    const why = this.manifestMissing
      ? ` (the manifest "${this.manifestKey}" was not found in bucket "${this.options.bucket}": run "nestjs-s3-storage collectstatic <dir>")`
      : '';
    throw new ManifestError('missing-entry', `Missing staticfiles manifest entry for '${name}'${why}`, {
      bucket: this.options.bucket,
      key: this.manifestKey,
    });
  }

  private parse(text: string): Record<string, string> {
    try {
      return parseManifest(text);
    } catch (error) {
      throw new ManifestError(
        'corrupt-manifest',
        `The static files manifest "${this.manifestKey}" in bucket "${this.options.bucket}" is corrupt: ${(error as Error).message}; run collectstatic again to rewrite it`,
        { bucket: this.options.bucket, key: this.manifestKey, endpoint: this.endpoint, cause: error },
      );
    }
  }

  private async resolveUrlBase(): Promise<void> {
    if (this.urlBase !== undefined) return;
    const { customDomain, publicEndpoint, endpoint, bucket, forcePathStyle } = this.options;
    if (customDomain !== undefined) {
      this.urlBase = `${customDomain}/`;
      return;
    }
    const region = this.options.region ?? (await this.client.config.region());
    const base = computeBase(bucket, publicEndpoint ?? endpoint, forcePathStyle, region);
    this.urlBase = base.origin + base.pathPrefix;
  }

  /** The manifest's text, or undefined when there is none. */
  private async readManifest(deadline?: AbortSignal): Promise<string | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.manifestKey }), { abortSignal: deadline });
      return await out.Body!.transformToString('utf-8');
    } catch (error) {
      // A missing bucket counts as a missing manifest: on a fresh deploy the module may load
      // the manifest before its bootstrap hook has created the bucket.
      if (isNotFound(error)) return undefined;
      if (deadline?.aborted) {
        throw new StorageTimeoutError('load manifest', 'no answer within bootstrapTimeout while reading the manifest at start-up', {
          ...this.context(this.manifestKey),
          cause: error,
        });
      }
      throw toStorageError('load manifest', error, this.context(this.manifestKey));
    }
  }

  /** The previous manifest's paths, for `prune`; a corrupt one stops the run before anything is deleted. */
  private async previousPaths(): Promise<Record<string, string> | undefined> {
    const text = await this.readManifest();
    return text === undefined ? undefined : this.parse(text);
  }

  /** Every key under the location with its size and ETag: one ListObjectsV2 per 1000 keys. */
  private async listPrefix(): Promise<Map<string, { size: number; etag: string }>> {
    const out = new Map<string, { size: number; etag: string }>();
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.prefix, MaxKeys: 1000, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          if (o.Key !== undefined) out.set(o.Key, { size: o.Size ?? -1, etag: unquote(o.ETag) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (error) {
      throw toStorageError('list static files', error, this.context());
    }
    return out;
  }

  private async upload(key: string, source: Buffer | string, size: number): Promise<void> {
    const params = {
      Bucket: this.options.bucket,
      Key: key,
      ContentType: guessContentType(key),
      CacheControl: IMMUTABLE_CACHE_CONTROL,
    };
    try {
      if (Buffer.isBuffer(source)) {
        await this.client.send(new PutObjectCommand({ ...params, Body: source }));
      } else if (size <= SINGLE_PUT_MAX) {
        await this.client.send(new PutObjectCommand({ ...params, Body: await readFile(source) }));
      } else {
        await multipartUpload(this.client, params, createReadStream(source), { partSize: 8 * 1024 * 1024, queueSize: 4 });
      }
    } catch (error) {
      if (error instanceof StorageError) throw error;
      throw toStorageError('collectstatic upload', error, this.context(key));
    }
  }

  private async putManifest(body: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: this.manifestKey,
          Body: body,
          ContentType: 'application/json',
          CacheControl: MANIFEST_CACHE_CONTROL,
        }),
      );
    } catch (error) {
      throw toStorageError('write manifest', error, this.context(this.manifestKey));
    }
  }

  private async deleteKeys(keys: string[], onProgress?: (p: CollectProgress) => void): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const out = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        );
        const failed = out.Errors?.[0];
        if (failed) {
          throw new StorageError(`prune: deleting "${failed.Key}" from bucket "${this.options.bucket}" failed (${failed.Code ?? 'unknown error'})`, this.context(failed.Key));
        }
      } catch (error) {
        throw toStorageError('prune static files', error, this.context());
      }
      onProgress?.({ phase: 'delete', done: Math.min(i + 1000, keys.length), total: keys.length });
    }
  }

  private context(key?: string): { bucket: string; key?: string; endpoint: string } {
    return { bucket: this.options.bucket, key, endpoint: this.endpoint };
  }
}

/** `css/a.css?v=1#x` → path `css/a.css`, suffix `?v=1#x`. */
function splitSuffix(name: string): { path: string; suffix: string } {
  const cut = name.search(/[?#]/);
  return cut < 0 ? { path: name, suffix: '' } : { path: name.slice(0, cut), suffix: name.slice(cut) };
}

/** A previous manifest may hold names we would reject today; they are simply not kept. */
function toKeySafe(location: string, name: string): string {
  try {
    return toKey(location, name);
  } catch {
    return '';
  }
}

async function readHashCache(path: string): Promise<HashCache | undefined> {
  try {
    const data = JSON.parse(await readFile(path, 'utf8')) as HashCache;
    return data.version === 1 && typeof data.files === 'object' && data.files !== null ? data : undefined;
  } catch {
    return undefined; // missing or unreadable: hash everything
  }
}

/** Best effort: a cache that cannot be written only costs the next run its speed-up. */
async function writeHashCache(path: string, cache: HashCache): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(cache));
    await rename(tmp, path);
  } catch {
    // ignored on purpose
  }
}

async function md5Stream(path: string): Promise<string> {
  const hash = createHash('md5');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * The files under `dir` as `/`-separated names, sorted. Like Django's collectstatic,
 * dot-files and `*~` backups are skipped; so is a manifest at the top when the location is
 * the bucket root (it would overwrite ours). Symbolic links to files are followed.
 */
async function walk(dir: string, reserved: string | undefined): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (error) {
      throw new StorageError(`collectstatic: cannot read directory "${abs}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    await Promise.all(
      entries.map(async (entry) => {
        if (entry.name.startsWith('.') || entry.name.endsWith('~')) return;
        const path = join(abs, entry.name);
        const name = rel ? `${rel}/${entry.name}` : entry.name;
        const isDir = entry.isSymbolicLink() ? (await stat(path)).isDirectory() : entry.isDirectory();
        if (isDir) return visit(path, name);
        if (name === reserved) return;
        const info = await stat(path);
        if (info.isFile()) {
          const stamp = `${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.ino}`;
          out.push({ name: normalizeName(name), path, size: info.size, stamp, mtimeMs: info.mtimeMs });
        }
      }),
    );
  };
  await visit(dir, '');
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Nest calls these on every provider it finds them on; the stub must not fail the boot. */
const LIFECYCLE_HOOKS = new Set(['onModuleInit', 'onApplicationBootstrap', 'onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown']);

/**
 * What `StaticManifestStorage` resolves to when no `static` options are configured: an
 * instance with `isConfigured === false` whose every method fails with a configuration error
 * saying what to set: sync members throw, async ones reject. (Nest builds providers eagerly,
 * so the provider itself cannot fail without breaking apps that never inject it.) Every
 * member of the class is covered, so a method added later cannot reach the missing client.
 */
export function unconfiguredStaticManifestStorage(): StaticManifestStorage {
  const fail = (): never => {
    throw new StorageConfigurationError(
      [
        'static: StaticManifestStorage is injected but no static storage is configured: pass static: { bucket: "..." } to StorageModule.forRoot(), or set AWS_STORAGE_BUCKET_NAME when using storageConfig',
      ],
      'StaticManifestStorage is not configured',
    );
  };
  const stub = Object.create(StaticManifestStorage.prototype) as StaticManifestStorage;
  for (const name of Object.getOwnPropertyNames(StaticManifestStorage.prototype)) {
    if (name === 'constructor' || name === 'isConfigured' || LIFECYCLE_HOOKS.has(name)) continue;
    const member = Object.getOwnPropertyDescriptor(StaticManifestStorage.prototype, name)!;
    if (member.get || member.set) Object.defineProperty(stub, name, { get: fail, set: fail });
    else if (typeof member.value === 'function' && member.value.constructor.name === 'AsyncFunction') {
      Object.defineProperty(stub, name, { value: async () => fail() });
    } else Object.defineProperty(stub, name, { value: fail });
  }
  Object.defineProperty(stub, 'isConfigured', { value: false });
  return stub;
}

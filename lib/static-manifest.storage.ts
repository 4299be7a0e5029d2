/**
 * `StaticManifestStorage`: static files on S3 under hashed names, looked up through a
 * Django-compatible `staticfiles.json` manifest. Its `collect()` (the `collectstatic`
 * pipeline) lives in static-collect.ts.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { normalizeName, toKey } from './key-normalizer.js';
import { describeEndpoint } from './s3-client.factory.js';
import { isNotFound, toStorageError } from './s3-errors.js';
import { collectStatic, type CollectOptions, type CollectResult } from './static-collect.js';
import { parseManifest } from './static-hashing.js';
import { ManifestError, StorageConfigurationError, StorageTimeoutError } from './storage.errors.js';
import type { ResolvedStaticOptions } from './storage-options.validation.js';
import { computeBase, encodeKeyPath } from './url-signer.js';

export {
  IMMUTABLE_CACHE_CONTROL,
  MANIFEST_CACHE_CONTROL,
  MANIFEST_RECORD_KEY,
  ORIGINAL_CACHE_CONTROL,
  type CollectOptions,
  type CollectProgress,
  type CollectResult,
} from './static-collect.js';

/** Static files with hashed names on S3, resolved through `staticfiles.json`. */
export class StaticManifestStorage {
  private readonly endpoint: string;
  private readonly manifestKey: string;
  private paths?: Record<string, string>;
  private manifestMissing = false;
  private urlBase?: string;

  constructor(
    private readonly client: S3Client,
    private readonly options: ResolvedStaticOptions,
  ) {
    this.endpoint = describeEndpoint(options);
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
   * `collectstatic`: hashes the files under `dir` as Django's `ManifestStaticFilesStorage`
   * does, uploads hashed copies (and originals) the bucket lacks with `options.concurrency`
   * uploads in flight, writes the manifest last, and with `prune` deletes files no manifest
   * references any more. A run with nothing changed sends one request. See static-collect.ts.
   * @throws CollectStaticError when a reference is missing (unless `allowMissing`) or a kept
   *   name would change; nothing is uploaded then.
   */
  async collect(dir: string, options: CollectOptions = {}): Promise<CollectResult> {
    const { result, paths } = await collectStatic(
      {
        client: this.client,
        options: this.options,
        manifestKey: this.manifestKey,
        endpoint: this.endpoint,
        readManifest: () => this.readManifest(),
        parseManifest: (text) => this.parse(text),
      },
      dir,
      options,
    );
    if (!result.dryRun) {
      this.paths = paths;
      this.manifestMissing = false;
    }
    return result;
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

  private context(key?: string): { bucket: string; key?: string; endpoint: string } {
    return { bucket: this.options.bucket, key, endpoint: this.endpoint };
  }
}

/** `css/a.css?v=1#x` → path `css/a.css`, suffix `?v=1#x`. */
function splitSuffix(name: string): { path: string; suffix: string } {
  const cut = name.search(/[?#]/);
  return cut < 0 ? { path: name, suffix: '' } : { path: name.slice(0, cut), suffix: name.slice(cut) };
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

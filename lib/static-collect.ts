/**
 * `collectstatic`: hashes a directory the way Django's `ManifestStaticFilesStorage` does
 * (static-hashing.ts), uploads what the bucket lacks, and writes `staticfiles.json` last.
 *
 * Deploys take one request when nothing changed. The previous manifest is the record of
 * what is stored: it is written only after every upload succeeded, so every name it lists
 * exists. A run reads it (one GET), hashes locally, and compares; it lists the bucket only
 * when there is no usable previous manifest, with `verify` (repair a bucket changed by
 * hand) or with `prune`. Hashed names prove their content by name. Originals and names
 * kept unhashed do not, so the manifest records their md5s under an extra key
 * ({@link MANIFEST_RECORD_KEY}) that Django's `load_manifest` ignores (it reads only
 * `version`, `paths` and `hash`).
 */
import { DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { unquote } from './abortable.js';
import { guessContentType } from './content-type.js';
import { md5Hex } from './hmac.js';
import { toKey } from './key-normalizer.js';
import { RawPutter, type RawFileBody } from './raw-put.js';
import { isNotFound, toStorageError } from './s3-errors.js';
import { buildManifest, forEachLimit, hashedName, hashTree, type HashedFile, type HashReader, type MissingReference } from './static-hashing.js';
import { BufferPool, bundlerNames, globToRegExp, md5File, readHashCache, readPooled, walk, writeHashCache, type HashCache, type LocalFile } from './static-local-files.js';
import { CollectStaticError, ManifestError, StorageConfigurationError, StorageError } from './storage.errors.js';
import type { ResolvedStaticOptions } from './storage-options.validation.js';

/** `Cache-Control` of hashed files: their name changes whenever their content does. */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** `Cache-Control` of the manifest: it changes on every deploy under the same name. */
export const MANIFEST_CACHE_CONTROL = 'public, max-age=60';
/** `Cache-Control` of originals (unhashed names, as Django also stores them): they change under the same name. */
export const ORIGINAL_CACHE_CONTROL = 'public, max-age=60';
/** The manifest's extra key holding what a hashed name cannot prove; Django ignores it. */
export const MANIFEST_RECORD_KEY = 'nestjs-s3-storage';

/** Files up to this size are sent in one PutObject; larger ones stream multipart. */
const SINGLE_PUT_MAX = 16 * 1024 * 1024;
/** Size of the pooled read buffers: files up to this size are uploaded from one without a fresh allocation. */
const POOLED_BUFFER = 256 * 1024;
/** Bytes of single-PUT bodies held in memory at once, whatever the upload concurrency. */
const UPLOAD_BYTES_IN_FLIGHT = 8 * 1024 * 1024;
/** Concurrent file reads while hashing: local I/O, independent of the upload concurrency. */
const HASH_CONCURRENCY = 16;

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
  /**
   * Upload each file's original bytes under its own name too, beside the hashed copy, as
   * Django's collectstatic does: unhashed references (JS module imports, HTML, `new URL()`)
   * then resolve. Originals are cached for 60 s (`public, max-age=60`); hashed copies for a year.
   * CLI: `--no-originals` turns it off.
   * @default true
   */
  originals?: boolean;
  /**
   * A CSS/JS reference to a file that is not in the directory fails the run (as in Django)
   * with a `CollectStaticError` naming each file and reference; nothing is uploaded. `true`
   * leaves such references as written and only reports them in `missingReferences`.
   * Unrelated to `static.manifestStrict`, which governs `url()` lookups at run time.
   * CLI: `--allow-missing`.
   * @default false
   */
  allowMissing?: boolean;
  /**
   * Globs of names a bundler already content-hashed (`assets/**`): stored under their own
   * name and bytes, not hashed again, cached as immutable. Such a name is never overwritten
   * with different bytes: the run fails with a `CollectStaticError` naming the file.
   * `**` spans directories, `*` and `?` one segment, `{a,b}` and `[ab]` as usual.
   * CLI: `--keep-names <glob>` (repeatable).
   * @default [] (every file is hashed, as Django does)
   */
  keepNames?: readonly string[];
  /**
   * A Vite manifest (`dist/.vite/manifest.json`, `build.manifest: true`): every `file`,
   * `css` and `assets` entry in it is kept as with `keepNames`.
   * CLI: `--bundler-manifest <path>`.
   * @default undefined
   */
  bundlerManifest?: string;
  /**
   * List the bucket prefix instead of trusting the previous manifest, and upload whatever
   * is missing or different: repairs a bucket whose objects were deleted or changed by hand.
   * CLI: `--verify`.
   * @default false
   */
  verify?: boolean;
  /** Called as files are hashed, uploaded and deleted. */
  onProgress?: (progress: CollectProgress) => void;
  /**
   * A local JSON file remembering each file's md5 with its size, mtime, ctime and inode,
   * so a re-run reads only files that changed (what `aws s3 sync` and git trust too).
   * Files modified in the last second are never cached (coarse file-system clocks).
   * It also records the last run (its options and the manifest it left): when nothing of that
   * changed, a run reads the manifest and stops, without reading any file.
   * The CLI keeps it under `node_modules/.cache/nestjs-s3-storage/`.
   * @default undefined (every file is read and hashed on every run)
   */
  hashCache?: string;
  /**
   * Also rewrite relative JS module specifiers (`import './b.js'`, `export … from`, `import()`)
   * to hashed names, as Django's `support_js_module_import_aggregation`.
   * CLI: `--js-modules`.
   * @default false
   */
  jsModules?: boolean;
}

/** What `collect()` did (or, with `dryRun`, would do). */
export interface CollectResult {
  /** Files found in the directory. */
  files: number;
  /** Keys uploaded (or that would be): hashed copies, originals and kept names. */
  uploaded: string[];
  /** Objects (hashed copies, originals, kept names) already stored with this content. */
  unchanged: number;
  /** Keys deleted by `prune` (or that would be). */
  deleted: string[];
  /** Bytes uploaded (or that would be). */
  bytesUploaded: number;
  /** Whether the manifest was (or would be) written; false when it was already identical. */
  manifestWritten: boolean;
  /** The new manifest's `hash`. */
  manifestHash: string;
  /** CSS/JS references to files that are not in the directory, left as written (only with `allowMissing`). */
  missingReferences: MissingReference[];
  /** Whether the bucket prefix was listed (`verify`, `prune`, or no usable previous manifest). */
  listed: boolean;
  dryRun: boolean;
  /** Wall-clock milliseconds. */
  durationMs: number;
  /** Reference cycles (each a list of names), which got names anyway; Django fails the run on them. */
  cycles: string[][];
  /** Things worth a look that did not fail the run: globs matching nothing, a prune skipped. */
  warnings: string[];
}

/** What `collectStatic` needs from the storage it runs for. */
export interface CollectTarget {
  client: S3Client;
  options: ResolvedStaticOptions;
  manifestKey: string;
  endpoint: string;
  /** The stored manifest's text, or undefined when there is none. */
  readManifest(): Promise<string | undefined>;
  /** @throws ManifestError `corrupt-manifest`. */
  parseManifest(text: string): Record<string, string>;
}

/** The extra manifest key: whether originals are stored, and md5s a hashed name cannot prove. */
interface ManifestRecord {
  originals: boolean;
  /** Kept names, and originals of rewritten CSS/JS (whose hashed name is that of the rewrite). */
  md5: Record<string, string>;
}

interface Previous {
  text: string;
  paths: Record<string, string>;
  /** The manifest's `hash`. */
  hash: string;
  record?: ManifestRecord;
}

interface Upload {
  key: string;
  /** Bytes in memory, a file path, or the name of a rewritten file whose bytes hashTree renders on demand. */
  source: Buffer | string | { render: string };
  /** The body's size; for a body still to render, its original's (the rewrite changes it by a few bytes). */
  size: number;
  cacheControl: string;
  /** The md5 hashed from the file on disk, sent as Content-MD5: bytes edited since are refused. */
  md5?: string;
}

interface Stored {
  size: number;
  etag: string;
  /** Only from a HEAD. */
  cacheControl?: string;
}

/** Runs `collectstatic` for `target`; returns what it did and the new manifest's paths. */
export async function collectStatic(target: CollectTarget, dir: string, options: CollectOptions = {}): Promise<{ result: CollectResult; paths: Record<string, string> }> {
  const started = performance.now();
  const { dryRun = false, prune = false, verify = false, originals = true, allowMissing = false, onProgress } = options;
  const { location, bucket, manifestName } = target.options;
  // Pruning deletes every key under the location that no manifest names: at the bucket
  // root that is everything else in the bucket too.
  if (prune && location === '') {
    throw new StorageConfigurationError(
      [`static.location: is empty, so prune would delete every other object in bucket "${bucket}"; give static files their own prefix (AWS_LOCATION), e.g. "static"`],
      'Refusing to prune',
    );
  }
  const s3 = new BucketIo(target);

  // The network side (one GET, and a listing only when needed) runs beside the hashing.
  const previous = readPrevious(target, prune);
  const listing = previous.then((p) => (p === undefined || verify || prune ? s3.listPrefix() : undefined));
  listing.catch(() => undefined);

  const startedAt = Date.now();
  const local = await walk(dir, location === '' ? manifestName : undefined);
  const byName = new Map(local.map((f) => [f.name, f]));
  const keep = await keptNames(dir, options);
  const cache = options.hashCache === undefined ? undefined : await readHashCache(options.hashCache);
  const fingerprint = options.hashCache === undefined ? undefined : await runFingerprint(target, dir, options, originals, allowMissing);

  // The no-change fast path: every file carries the stamp the last run cached, the options
  // are the same, and the bucket's manifest is the one that run wrote. Then the new manifest
  // would be byte-identical and everything it names is stored: nothing to hash or send.
  if (fingerprint !== undefined && cache?.last !== undefined && !verify && !prune) {
    const filesDigest = cachedFilesDigest(local, cache);
    const prev = filesDigest === undefined ? undefined : await previous;
    if (prev !== undefined && cache.last.key === lastRunKey(fingerprint, filesDigest!, md5Hex(prev.text))) {
      onProgress?.({ phase: 'hash', done: local.length, total: local.length });
      const hashed = local.reduce((n, f) => n + (keep(f.name) ? 0 : 1), 0);
      const result: CollectResult = {
        files: local.length,
        uploaded: [],
        unchanged: local.length + (originals ? hashed : 0),
        deleted: [],
        bytesUploaded: 0,
        manifestWritten: false,
        manifestHash: prev.hash,
        missingReferences: cache.last.missing,
        listed: false,
        dryRun,
        durationMs: performance.now() - started,
        cycles: cache.last.cycles ?? [],
        warnings: keep.unmatched(local.map((f) => f.name)),
      };
      // Written sorted by buildManifest, so already in the order a full run returns.
      return { result, paths: prev.paths };
    }
  }
  const nextCache: HashCache = { version: 1, files: {} };
  const md5s = new Map<string, string>();
  const pool = new BufferPool(POOLED_BUFFER);
  const reader = trackingReader(byName, md5s, cache, nextCache, startedAt - 1000, pool, onProgress);
  // Rewritten bodies are not held for the whole run: each is rendered again when uploaded.
  const { files, missing, render, cycles } = await hashTree(
    local.map((f) => f.name),
    reader,
    { staticUrl: target.options.url, keep, concurrency: HASH_CONCURRENCY, keepBodies: false, jsModules: options.jsModules ?? false },
  );
  const warnings = keep.unmatched(local.map((f) => f.name));
  if (missing.length > 0 && !allowMissing) throw missingReferences(missing, dir);

  const paths: Record<string, string> = {};
  const record: ManifestRecord = { originals, md5: {} };
  for (const f of files.values()) {
    paths[f.name] = f.storedName;
    // A file whose stored bytes are not its original's has a hashed name that says nothing
    // about the original: record the original's md5 (and every kept name's).
    if (isKept(f) || (originals && isRewritten(f, md5s))) record.md5[f.name] = md5s.get(f.name)!;
  }
  const { manifest } = buildManifest(paths);
  const manifestBody = Buffer.from(JSON.stringify({ ...manifest, [MANIFEST_RECORD_KEY]: sortedRecord(record) }), 'utf8');

  const prev = await previous;
  const stored = await listing;
  const plan = await planUploads({ files: [...files.values()], byName, md5s, record, prev, stored, s3 });
  const manifestWritten = prev?.text !== manifestBody.toString('utf8');

  let deleted: string[] = [];
  if (prune) deleted = pruneList(stored!, target.manifestKey, location, [{ paths, originals }, ...(prev ? [{ paths: prev.paths, originals: prev.record?.originals ?? false }] : [])]);

  if (!dryRun) {
    let done = 0;
    await s3.uploadAll(plan.uploads, target.options.concurrency, pool, render, () => onProgress?.({ phase: 'upload', done: ++done, total: plan.uploads.length }));
    if (manifestWritten) await s3.putManifest(manifestBody);
    if (options.hashCache !== undefined) {
      const filesDigest = cachedFilesDigest(local, nextCache);
      if (filesDigest !== undefined) nextCache.last = { key: lastRunKey(fingerprint!, filesDigest, md5Hex(manifestBody)), missing, cycles };
      await writeHashCache(options.hashCache, nextCache);
    }
    // Another deploy may have written its manifest since: its files are not ours to delete.
    const now = deleted.length > 0 ? await target.readManifest() : undefined;
    if (deleted.length > 0 && now !== manifestBody.toString('utf8')) {
      warnings.push(`prune skipped: "${target.manifestKey}" changed while this run was writing it (another deploy?); nothing was deleted, run again with --prune`);
      deleted = [];
    } else if (deleted.length > 0) await s3.deleteKeys(deleted, onProgress);
  }

  const result: CollectResult = {
    files: local.length,
    uploaded: plan.uploads.map((u) => u.key),
    unchanged: plan.unchanged,
    deleted,
    bytesUploaded: plan.uploads.reduce((sum, u) => sum + u.size, 0),
    manifestWritten,
    manifestHash: manifest.hash,
    missingReferences: missing,
    listed: stored !== undefined,
    dryRun,
    durationMs: performance.now() - started,
    cycles,
    warnings,
  };
  return { result, paths: manifest.paths };
}

/** Bump when a change to hashing or rewriting would give the same files another manifest. */
const FAST_PATH_VERSION = 1;

/** Everything besides the files that decides what a run stores, as one string. */
async function runFingerprint(target: CollectTarget, dir: string, options: CollectOptions, originals: boolean, allowMissing: boolean): Promise<string> {
  const { bucket, location, manifestName, url } = target.options;
  let bundler: string | undefined;
  if (options.bundlerManifest !== undefined) bundler = await readFile(options.bundlerManifest).then(md5Hex, () => 'unreadable');
  return JSON.stringify([FAST_PATH_VERSION, target.endpoint, bucket, location, manifestName, url, resolve(dir), originals, allowMissing, options.jsModules ?? false, options.keepNames ?? [], options.bundlerManifest ?? null, bundler ?? null]);
}

/** A digest of the cached entries of `local`, or undefined when one is missing or stale. */
function cachedFilesDigest(local: readonly LocalFile[], cache: HashCache): string | undefined {
  const hash = createHash('md5');
  for (const f of local) {
    const entry = cache.files[f.name];
    if (entry === undefined || entry[0] !== f.stamp) return undefined;
    hash.update(`${f.name}\0${entry[0]}\0${entry[1]}\n`);
  }
  return hash.digest('hex');
}

function lastRunKey(fingerprint: string, filesDigest: string, manifestMd5: string): string {
  return md5Hex(`${fingerprint}\0${filesDigest}\0${manifestMd5}`);
}

/**
 * Whether the hashed copy's bytes differ from the file on disk (references rewritten): its
 * name then carries another hash than its original's md5. Needs no body in memory.
 */
function isRewritten(f: HashedFile, md5s: Map<string, string>): boolean {
  return !isKept(f) && f.storedName !== hashedName(f.name, md5s.get(f.name)!.slice(0, 12));
}

/** A file stored under its own name: kept by a glob or the bundler manifest. */
function isKept(f: HashedFile): boolean {
  return f.kept === true;
}

/**
 * Decides what to upload. With a listing, the bucket is the truth; without one, the
 * previous manifest is: its hashed names exist, and its record says which originals and
 * kept names hold which bytes. A kept name whose bytes would change fails the whole run.
 */
async function planUploads(input: {
  files: HashedFile[];
  byName: Map<string, LocalFile>;
  md5s: Map<string, string>;
  record: ManifestRecord;
  prev: Previous | undefined;
  stored: Map<string, Stored> | undefined;
  s3: BucketIo;
}): Promise<{ uploads: Upload[]; unchanged: number }> {
  const { files, byName, md5s, record, prev, stored, s3 } = input;
  const location = s3.location;
  const prevStored = new Set(prev ? Object.values(prev.paths) : []);
  const uploads: Upload[] = [];
  const conflicts: string[] = [];
  const unverifiedKept: HashedFile[] = [];
  let unchanged = 0;
  const sameBytes = (there: Stored | undefined, size: number, md5: string) =>
    there !== undefined && there.size === size && (there.etag === md5 || isMultipartEtag(there.etag));

  for (const f of files) {
    const file = byName.get(f.name)!;
    const md5 = md5s.get(f.name)!;
    if (isKept(f)) {
      const key = toKey(location, f.name);
      const recorded = prev?.paths[f.name] === f.name ? prev.record?.md5[f.name] : undefined;
      const there = stored?.get(key);
      // Hashed before: its original is stored with max-age=60, so it is written again as immutable.
      const wasHashed = prev?.paths[f.name] !== undefined && prev.paths[f.name] !== f.name;
      if (recorded !== undefined && recorded !== md5) conflicts.push(f.name);
      else if (there !== undefined && !isMultipartEtag(there.etag) && there.etag !== md5) conflicts.push(f.name);
      else if (there !== undefined && isMultipartEtag(there.etag) && recorded === undefined && there.size !== file.size) conflicts.push(f.name);
      else if (stored ? sameBytes(there, file.size, md5) && !wasHashed : recorded === md5) unchanged++;
      else if (stored) uploads.push({ key, source: file.path, size: file.size, cacheControl: IMMUTABLE_CACHE_CONTROL, md5 });
      else unverifiedKept.push(f); // not in the previous record: look before writing
      continue;
    }
    const key = toKey(location, f.storedName);
    const rewritten = isRewritten(f, md5s);
    const size = f.body?.length ?? file.size;
    // The content hash is in the name: present (with the same size, when known) means up to date.
    const present = stored ? stored.has(key) && (f.body !== undefined || rewritten ? true : stored.get(key)!.size === size) : prevStored.has(f.storedName);
    if (present) unchanged++;
    else uploads.push({ key, source: f.body ?? (rewritten ? { render: f.name } : file.path), size, cacheControl: IMMUTABLE_CACHE_CONTROL, ...(f.body ?? rewritten ? {} : { md5 }) });

    if (!record.originals) continue;
    const originalKey = toKey(location, f.name);
    // A recorded md5 decides; otherwise an unrewritten file's hashed name is its original's md5.
    const recorded = prev?.record?.originals === true ? prev.record.md5[f.name] : undefined;
    const prevSame = prev?.record?.originals === true && prev.paths[f.name] !== f.name && (recorded !== undefined ? recorded === md5 : !isRewritten(f, md5s) && prev.paths[f.name] === f.storedName);
    const same = stored ? sameBytes(stored.get(originalKey), file.size, md5) && (!isMultipartEtag(stored.get(originalKey)!.etag) || prevSame) : prevSame;
    if (same) unchanged++;
    else uploads.push({ key: originalKey, source: file.path, size: file.size, cacheControl: ORIGINAL_CACHE_CONTROL, md5 });
  }

  await forEachLimit(unverifiedKept, 16, async (f) => {
    const file = byName.get(f.name)!;
    const key = toKey(location, f.name);
    const there = await s3.head(key);
    const md5 = md5s.get(f.name)!;
    if (there === undefined) uploads.push({ key, source: file.path, size: file.size, cacheControl: IMMUTABLE_CACHE_CONTROL, md5 });
    else if (isMultipartEtag(there.etag) ? there.size !== file.size : there.etag !== md5) conflicts.push(f.name);
    // The same bytes stored as an original (max-age=60) become immutable.
    else if (there.cacheControl !== IMMUTABLE_CACHE_CONTROL) uploads.push({ key, source: file.path, size: file.size, cacheControl: IMMUTABLE_CACHE_CONTROL, md5 });
    else unchanged++;
  });

  if (conflicts.length > 0) {
    conflicts.sort();
    const shown = conflicts.slice(0, 5).map((c) => `"${toKey(location, c)}"`).join(', ');
    throw new CollectStaticError(
      'kept-name-changed',
      `collectstatic: ${shown}${conflicts.length > 5 ? ` and ${conflicts.length - 5} more` : ''} would be overwritten with different bytes in bucket "${s3.bucket}", ` +
        'but kept names (keepNames, bundlerManifest) are cached as immutable, so browsers would never see the change; nothing was uploaded. ' +
        'Let the bundler give changed files new hashed names, or stop keeping these names so they are hashed',
      conflicts.map((file) => ({ file })),
      { bucket: s3.bucket, key: toKey(location, conflicts[0]!), endpoint: s3.endpoint },
    );
  }
  uploads.sort((a, b) => b.size - a.size); // big files first, so the tail of the run is short
  return { uploads, unchanged };
}

/** A multipart upload's ETag (`<md5 of part md5s>-<parts>`) is no md5 of the content. */
function isMultipartEtag(etag: string): boolean {
  return etag.includes('-');
}

function missingReferences(missing: MissingReference[], dir: string): CollectStaticError {
  const shown = missing.slice(0, 5).map((m) => `${m.file}:${m.line} references "${m.reference}" (${m.target})`).join('; ');
  return new CollectStaticError(
    'missing-reference',
    `collectstatic: ${missing.length === 1 ? 'a reference points' : `${missing.length} references point`} at files that are not in "${dir}": ${shown}` +
      `${missing.length > 5 ? `; and ${missing.length - 5} more` : ''}. Nothing was uploaded. ` +
      'Add the files or fix the references; or pass --allow-missing (allowMissing: true) to leave them as written with a warning',
    missing,
  );
}

/**
 * The previous manifest with its record. A corrupt one is treated as absent (the bucket is
 * then listed and the manifest rewritten), except for `prune`, which must know what the
 * previous version references before it deletes anything.
 */
async function readPrevious(target: CollectTarget, prune: boolean): Promise<Previous | undefined> {
  const text = await target.readManifest();
  if (text === undefined) return undefined;
  let paths: Record<string, string>;
  try {
    paths = target.parseManifest(text);
  } catch (error) {
    if (prune || !(error instanceof ManifestError)) throw error;
    return undefined;
  }
  const data = JSON.parse(text) as Record<string, unknown>;
  const raw = data[MANIFEST_RECORD_KEY] as Partial<ManifestRecord> | undefined;
  const valid = typeof raw === 'object' && raw !== null && typeof raw.originals === 'boolean' && typeof raw.md5 === 'object' && raw.md5 !== null;
  return { text, paths, hash: String(data.hash), record: valid ? (raw as ManifestRecord) : undefined };
}

function sortedRecord(record: ManifestRecord): ManifestRecord {
  return { originals: record.originals, md5: Object.fromEntries(Object.entries(record.md5).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}

/** The predicate of names kept unhashed: `keepNames` globs and the bundler manifest's files. */
async function keptNames(dir: string, options: CollectOptions): Promise<((name: string) => boolean) & { unmatched(names: string[]): string[] }> {
  const globs = (options.keepNames ?? []).map(globToRegExp);
  const bundled = options.bundlerManifest === undefined ? new Set<string>() : await bundlerNames(options.bundlerManifest, dir);
  const keep = (name: string) => bundled.has(name) || globs.some((g) => g.test(name));
  // A typo in a glob or a stale bundler manifest silently hashes what should be kept.
  const unmatched = (names: string[]) => [
    ...(options.keepNames ?? []).filter((_, i) => !names.some((n) => globs[i]!.test(n))).map((g) => `keepNames: the glob "${g}" matches no file`),
    ...(options.bundlerManifest !== undefined && ![...bundled].some((n) => names.includes(n)) ? [`bundlerManifest: "${options.bundlerManifest}" lists no file in the directory`] : []),
  ];
  return Object.assign(keep, { unmatched });
}

/**
 * A `HashReader` over the walked files that records each file's full md5 (for originals and
 * kept names), trusts the hash cache, and reports progress once per file.
 */
function trackingReader(
  byName: Map<string, LocalFile>,
  md5s: Map<string, string>,
  cache: HashCache | undefined,
  nextCache: HashCache,
  cacheBefore: number,
  pool: BufferPool,
  onProgress: CollectOptions['onProgress'],
): HashReader {
  const total = byName.size;
  const seen = (name: string, digest: string) => {
    const file = byName.get(name)!;
    if (file.mtimeMs < cacheBefore) nextCache.files[name] = [file.stamp, digest];
    if (!md5s.has(name)) {
      md5s.set(name, digest);
      onProgress?.({ phase: 'hash', done: md5s.size, total });
    }
  };
  return {
    read: async (name) => {
      const buf = await readFile(byName.get(name)!.path);
      seen(name, md5Hex(buf));
      return buf;
    },
    md5: async (name) => {
      const file = byName.get(name)!;
      const cached = cache?.files[name];
      const digest = md5s.get(name) ?? (cached?.[0] === file.stamp ? cached[1] : await md5File(file.path, pool, file.size));
      seen(name, digest);
      return digest;
    },
  };
}

/** Keys under the location that neither manifest (nor its originals) references. */
function pruneList(stored: Map<string, Stored>, manifestKey: string, location: string, manifests: { paths: Record<string, string>; originals: boolean }[]): string[] {
  const keep = new Set<string>([manifestKey]);
  for (const { paths, originals } of manifests) {
    for (const [name, storedName] of Object.entries(paths)) {
      keep.add(toKeySafe(location, storedName));
      if (originals) keep.add(toKeySafe(location, name));
    }
  }
  return [...stored.keys()].filter((key) => !keep.has(key)).sort();
}

/** A previous manifest may hold names we would reject today; they are simply not kept. */
function toKeySafe(location: string, name: string): string {
  try {
    return toKey(location, name);
  } catch {
    return '';
  }
}

/** The S3 requests of a collect, each wrapped into a typed error naming bucket and key. */
class BucketIo {
  readonly location: string;
  readonly bucket: string;
  readonly endpoint: string;
  private readonly client: S3Client;
  private readonly prefix: string;
  private readonly manifestKey: string;
  private raw?: RawPutter;

  constructor(target: CollectTarget) {
    this.client = target.client;
    this.location = target.options.location;
    this.bucket = target.options.bucket;
    this.endpoint = target.endpoint;
    this.prefix = this.location ? `${this.location}/` : '';
    this.manifestKey = target.manifestKey;
  }

  /** Every key under the location with its size and ETag: one ListObjectsV2 per 1000 keys. */
  async listPrefix(): Promise<Map<string, Stored>> {
    const out = new Map<string, Stored>();
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1000, ContinuationToken: token }));
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

  async head(key: string): Promise<Stored | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? -1, etag: unquote(out.ETag), cacheControl: out.CacheControl };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw toStorageError('collectstatic check', error, this.context(key));
    }
  }

  /**
   * Uploads with `concurrency` requests in flight. Small files are read into pooled buffers
   * when their turn comes; larger single-PUT bodies are held to {@link UPLOAD_BYTES_IN_FLIGHT}
   * at once, whatever the concurrency.
   */
  async uploadAll(
    uploads: Upload[],
    concurrency: number,
    pool: BufferPool,
    render: (name: string) => Promise<Buffer | undefined>,
    onEach: () => void,
  ): Promise<void> {
    const budget = new ByteBudget(UPLOAD_BYTES_IN_FLIGHT);
    // Single PUTs bypass the SDK where that sends the same requests (raw-put.ts says when).
    this.raw = await RawPutter.forClient(this.client, this.bucket, concurrency);
    // The SDK resolves its middleware stack afresh for every send unless told to reuse it per
    // command class: tens of thousands of PutObjects made that a tenth of a run's CPU. Only
    // for the uploads, and put back after: a caller may still change the stack later.
    const config = this.client.config as { cacheMiddleware?: boolean };
    const cacheMiddleware = config.cacheMiddleware;
    config.cacheMiddleware = true;
    try {
      await this.uploadEach(uploads, concurrency, pool, budget, render, onEach);
    } finally {
      config.cacheMiddleware = cacheMiddleware;
    }
  }

  private async uploadEach(
    uploads: Upload[],
    concurrency: number,
    pool: BufferPool,
    budget: ByteBudget,
    render: (name: string) => Promise<Buffer | undefined>,
    onEach: () => void,
  ): Promise<void> {
    await forEachLimit(uploads, concurrency, async (item) => {
      if (typeof item.source === 'object' && !Buffer.isBuffer(item.source)) {
        const body = await render(item.source.render);
        if (body === undefined) throw new StorageError(`collectstatic: "${item.source.render}" could not be rendered again for upload`, this.context(item.key));
        await this.upload(item, body);
      } else if (Buffer.isBuffer(item.source) || item.size > SINGLE_PUT_MAX) await this.upload(item, item.source);
      else if (item.size <= pool.size) {
        const { bytes, buffer } = await readPooled(item.source, item.size, pool);
        try {
          await this.upload(item, bytes);
        } finally {
          // The request has been answered: its body is fully sent, and the buffer is free again.
          pool.give(buffer);
        }
      } else if (this.raw) {
        // Streamed from the file with its length known (no aws-chunked encoding): 64 KiB in flight, not the file.
        await this.upload(item, { path: item.source, size: item.size });
      } else {
        await budget.acquire(item.size);
        try {
          // A buffer, not a stream: the SDK can retry it, and servers that refuse aws-chunked bodies accept it.
          await this.upload(item, await readFile(item.source));
        } finally {
          budget.release(item.size);
        }
      }
      onEach();
    });
  }

  private async upload({ key, cacheControl, md5 }: Upload, source: Buffer | string | RawFileBody): Promise<void> {
    const params = { Bucket: this.bucket, Key: key, ContentType: guessContentType(key), CacheControl: cacheControl };
    try {
      const ContentMD5 = md5 === undefined ? undefined : Buffer.from(md5, 'hex').toString('base64');
      if (typeof source !== 'string' && this.raw) await this.raw.put({ key, contentType: params.ContentType, cacheControl, contentMd5: ContentMD5 }, source);
      else if (typeof source !== 'string') {
        const Body = Buffer.isBuffer(source) ? source : await readFile(source.path);
        await this.client.send(new PutObjectCommand({ ...params, Body, ContentMD5 }));
      } else {
        // Loaded only for files over 16 MiB: it brings @nestjs/common, a tenth of a second of every CLI start.
        const { multipartUpload } = await import('./multipart-upload.js');
        await multipartUpload(this.client, params, createReadStream(source), { partSize: 8 * 1024 * 1024, queueSize: 4 });
      }
    } catch (error) {
      if (error instanceof StorageError) throw error;
      const name = (error as { name?: string }).name;
      if (name === 'FileChanged' || name === 'BadDigest') {
        // FileChanged: a streamed file shrank (raw-put.ts); BadDigest: the server found other bytes than the md5 hashed.
        const why = name === 'FileChanged' ? (error as Error).message : 'its bytes no longer match the md5 it was hashed with, so the bucket refused them';
        throw new CollectStaticError(
          'file-changed',
          `collectstatic: "${key}" changed on disk while collectstatic ran (${why}); nothing was stored under that key in bucket "${this.bucket}" and the manifest was not written. Run collectstatic again once the build has finished`,
          [{ file: key }],
          this.context(key),
        );
      }
      throw toStorageError('collectstatic upload', error, this.context(key));
    }
  }

  async putManifest(body: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.manifestKey, Body: body, ContentType: 'application/json', CacheControl: MANIFEST_CACHE_CONTROL }),
      );
    } catch (error) {
      throw toStorageError('write manifest', error, this.context(this.manifestKey));
    }
  }

  async deleteKeys(keys: string[], onProgress?: (p: CollectProgress) => void): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const out = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
        const failed = out.Errors?.[0];
        if (failed) {
          throw new StorageError(`prune: deleting "${failed.Key}" from bucket "${this.bucket}" failed (${failed.Code ?? 'unknown error'})`, this.context(failed.Key));
        }
      } catch (error) {
        throw toStorageError('prune static files', error, this.context());
      }
      onProgress?.({ phase: 'delete', done: Math.min(i + 1000, keys.length), total: keys.length });
    }
  }

  private context(key?: string): { bucket: string; key?: string; endpoint: string } {
    return { bucket: this.bucket, key, endpoint: this.endpoint };
  }
}

/** Bounds the bytes held by concurrent work; one item larger than the budget still runs alone. */
class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; go: () => void }[] = [];

  constructor(private readonly limit: number) {}

  async acquire(bytes: number): Promise<void> {
    if (bytes === 0) return;
    if (this.waiting.length === 0 && (this.used === 0 || this.used + bytes <= this.limit)) {
      this.used += bytes;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ bytes, go }));
  }

  release(bytes: number): void {
    if (bytes === 0) return;
    this.used -= bytes;
    while (this.waiting.length > 0 && (this.used === 0 || this.used + this.waiting[0]!.bytes <= this.limit)) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.go();
    }
  }
}


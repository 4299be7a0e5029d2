/**
 * The local side of `collectstatic`: walking the directory, streaming md5s, the optional
 * hash cache, and which names are kept unhashed (globs and a bundler's manifest).
 * No S3 here.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { md5Hex } from './hmac.js';
import { normalizeName } from './key-normalizer.js';
import type { MissingReference } from './static-hashing.js';
import { StorageConfigurationError, StorageError } from './storage.errors.js';

/** One file found under the collected directory. */
export interface LocalFile {
  /** `/`-separated, relative to the directory. */
  name: string;
  path: string;
  size: number;
  /** `size:mtimeMs:ctimeMs:ino`: what the hash cache trusts instead of re-reading the file. */
  stamp: string;
  mtimeMs: number;
}

/** The optional local hash cache: file name → [stamp, md5]. */
export interface HashCache {
  version: 1;
  files: Record<string, [string, string]>;
  /**
   * What the last successful run left in the bucket: a digest of these entries, the run's
   * options and the manifest it wrote (or found identical), and the references it reported
   * missing. When all of that still holds, the next run needs nothing but the manifest.
   */
  last?: { key: string; missing: MissingReference[]; cycles?: string[][] };
}

/**
 * Reusable read buffers. Reading every file into a fresh Buffer makes garbage faster than
 * the collector returns it (RSS grew with the tree); each worker borrows one buffer instead
 * and gives it back, so memory is bounded by the number of workers.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly size: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}

/**
 * The md5 (hex) of a file, read through a pooled buffer a chunk at a time. A file that fits
 * the buffer (most of a static tree) is read with blocking calls and hashed in one shot:
 * three system calls on a page-cached file cost far less than three promise round trips
 * through the threadpool, which dominated a 20,000-file run, and a one-shot digest leaves no
 * hash object behind for the old generation (hmac.ts).
 */
export async function md5File(path: string, pool: BufferPool, size?: number): Promise<string> {
  const buffer = pool.take();
  try {
    if (size !== undefined && size < buffer.length) {
      const fd = openSync(path, 'r');
      let filled = 0;
      try {
        for (;;) {
          const bytesRead = readSync(fd, buffer, filled, buffer.length - filled, null);
          if (bytesRead === 0) break;
          filled += bytesRead;
          if (filled === buffer.length) break; // grew since the walk: hash it as a stream
        }
        if (filled < buffer.length) return md5Hex(buffer.subarray(0, filled));
        const hash = createHash('md5').update(buffer);
        for (;;) {
          const bytesRead = readSync(fd, buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          hash.update(buffer.subarray(0, bytesRead));
        }
        return hash.digest('hex');
      } finally {
        closeSync(fd);
      }
    }
    const hash = createHash('md5');
    const file = await open(path, 'r');
    try {
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        hash.update(buffer.subarray(0, bytesRead));
      }
    } finally {
      await file.close();
    }
    return hash.digest('hex');
  } finally {
    pool.give(buffer);
  }
}

/**
 * Reads a whole file of `size` bytes (at most `pool.size`) into a pooled buffer; the caller
 * gives the buffer back once it is done with the returned view. Blocking reads, as in
 * {@link md5File}: the file was just hashed, so it is in the page cache.
 */
export async function readPooled(path: string, size: number, pool: BufferPool): Promise<{ bytes: Buffer; buffer: Buffer }> {
  const buffer = pool.take();
  let filled = 0;
  try {
    const fd = openSync(path, 'r');
    try {
      while (filled < size) {
        const bytesRead = readSync(fd, buffer, filled, size - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    pool.give(buffer);
    throw error;
  }
  if (filled !== size) {
    pool.give(buffer);
    throw new StorageError(`collectstatic: "${path}" changed size while it was being uploaded (${size} bytes when hashed, ${filled} now); run again`);
  }
  return { bytes: buffer.subarray(0, size), buffer };
}

export async function readHashCache(path: string): Promise<HashCache | undefined> {
  try {
    const data = JSON.parse(await readFile(path, 'utf8')) as HashCache;
    if (data.version !== 1 || typeof data.files !== 'object' || data.files === null) return undefined;
    if (data.last !== undefined && (typeof data.last?.key !== 'string' || !Array.isArray(data.last.missing))) delete data.last;
    return data;
  } catch {
    return undefined; // missing or unreadable: hash everything
  }
}

/** Best effort: a cache that cannot be written only costs the next run its speed-up. */
export async function writeHashCache(path: string, cache: HashCache): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(cache));
    await rename(tmp, path);
  } catch {
    // ignored on purpose
  }
}

/**
 * The files under `dir` as `/`-separated names, sorted. Like Django's collectstatic,
 * dot-files and `*~` backups are skipped; so is a manifest at the top when the location is
 * the bucket root (it would overwrite ours). Symbolic links to files are followed.
 */
export async function walk(dir: string, reserved: string | undefined): Promise<LocalFile[]> {
  // Synchronous on purpose: 20,000 promise-based stats cost more in promises, threadpool
  // hand-offs and garbage than the stats themselves (a directory's entries are in the page
  // cache after the first read; a deploy waits for the walk anyway).
  const out: LocalFile[] = [];
  const pending: [string, string][] = [[dir, '']];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [abs, rel] = next;
    let entries;
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch (error) {
      throw new StorageError(`collectstatic: cannot read directory "${abs}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.') || entry.name.endsWith('~')) continue;
      const path = join(abs, entry.name);
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      const isDir = entry.isSymbolicLink() ? statSync(path).isDirectory() : entry.isDirectory();
      if (isDir) {
        pending.push([path, name]);
        continue;
      }
      if (name === reserved) continue;
      const info = statSync(path);
      if (info.isFile()) {
        const stamp = `${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.ino}`;
        out.push({ name: normalizeName(name), path, size: info.size, stamp, mtimeMs: info.mtimeMs });
      }
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * A glob as a RegExp over `/`-separated names: `**` spans directories (`assets/**`,
 * `**\/*.woff2`), `*` and `?` stay within one segment, `[abc]`/`[!abc]` are character
 * classes (never matching "/") and `{a,b}` alternatives; `\x` is a literal x, and a leading
 * `./` or `/` is ignored. Everything else is literal.
 */
export function globToRegExp(pattern: string): RegExp {
  // Names have no leading "./" or "/", but globs are often written with one.
  const glob = pattern.replace(/^(?:\.\/|\/)+/, '');
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        i++;
        if (atStart && glob[i + 1] === '/') {
          re += '(?:[^/]*/)*'; // `**/`: zero or more directories
          i++;
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < glob.length) re += escapeLiteral(glob[++i]!);
    else if (c === '[') {
      const parsed = globClass(glob, i);
      if (parsed === undefined) re += '\\[';
      else {
        re += parsed.re;
        i = parsed.end;
      }
    } else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else re += c.replace(/[.+^$()|\\\]{}]/g, '\\$&');
  }
  if (braces > 0) throw new StorageConfigurationError([`keepNames: the glob "${pattern}" has an unclosed "{"`]);
  return new RegExp(`^${re}$`, 'u');
}

function escapeLiteral(c: string): string {
  return c.replace(/[.*+?^$()|[\]\\{}]/gu, '\\$&');
}

/**
 * The class opening at `start`: `[!…]` (or `[^…]`) never matches "/", a `]` right after the
 * opening (or `!`) is literal, and `\x` is x. Undefined when it is never closed.
 */
function globClass(glob: string, start: number): { re: string; end: number } | undefined {
  let i = start + 1;
  const negated = glob[i] === '!' || glob[i] === '^';
  if (negated) i++;
  let body = '';
  for (let first = true; i < glob.length; i++, first = false) {
    const c = glob[i]!;
    if (c === ']' && !first) return { re: negated ? `[^/${body}]` : `[${body}]`, end: i };
    if (c === '\\' && i + 1 < glob.length) body += classChar(glob[++i]!);
    else body += c === '-' ? c : classChar(c);
  }
  return undefined;
}

function classChar(c: string): string {
  return /[\\\]\[^-]/u.test(c) ? `\\${c}` : c;
}

/**
 * The names a bundler manifest lists as already content-hashed, relative to `dir`.
 * Vite's `manifest.json` (`<outDir>/.vite/manifest.json`, or `<outDir>/manifest.json` before
 * Vite 5): each entry's `file`, `css` and `assets` are paths under `outDir`.
 */
export async function bundlerNames(manifestPath: string, dir: string): Promise<Set<string>> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new StorageConfigurationError([`bundlerManifest: cannot read "${manifestPath}" as JSON (${why}); pass the bundler's manifest, e.g. dist/.vite/manifest.json (Vite's build.manifest: true)`]);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new StorageConfigurationError([`bundlerManifest: "${manifestPath}" is not a Vite manifest (expected an object of chunks with "file")`]);
  }
  const manifestDir = dirname(resolve(manifestPath));
  const outDir = manifestDir.endsWith(`${sep}.vite`) ? dirname(manifestDir) : manifestDir;
  const root = resolve(dir);
  const out = new Set<string>();
  for (const chunk of Object.values(data as Record<string, unknown>)) {
    if (typeof chunk !== 'object' || chunk === null) continue;
    const { file, css, assets } = chunk as { file?: unknown; css?: unknown; assets?: unknown };
    for (const f of [file, ...(Array.isArray(css) ? css : []), ...(Array.isArray(assets) ? assets : [])]) {
      if (typeof f !== 'string') continue;
      const rel = relative(root, resolve(outDir, f)).split(sep).join('/');
      if (!rel.startsWith('../') && rel !== '..') out.add(rel);
    }
  }
  return out;
}

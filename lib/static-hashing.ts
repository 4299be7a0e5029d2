/**
 * The pure part of `collectstatic`: Django-compatible hashed names, CSS/JS reference
 * rewriting and the `staticfiles.json` manifest. No S3, no file system: the caller supplies
 * a reader, so this file is unit-tested on strings.
 *
 * Follows Django's `ManifestStaticFilesStorage`:
 * - `css/app.css` is stored as `css/app.<first 12 hex of the md5 of its content>.css`;
 * - `url(...)`, `@import "..."` and `sourceMappingURL` references in CSS (and
 *   `//# sourceMappingURL` in JS) are rewritten to the hashed names of their targets, and a
 *   file is hashed after its rewrite, so a changed image changes every CSS that points at it;
 * - the manifest is `{ "paths": { name: hashedName }, "version": "1.1", "hash": "<12 hex>" }`.
 *
 * Unlike Django, files a bundler already content-hashed (Vite's `assets/index-B4c9Xk2a.js`)
 * keep their names and bytes: their own references were resolved by the bundler, and
 * rewriting them would change content under an unchanged, immutably cached name.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';

/** The manifest format version written (Django 3.2+ writes and reads "1.1"). */
export const MANIFEST_VERSION = '1.1';
const READABLE_VERSIONS = new Set(['1.0', '1.1']);

/** The manifest object, as Django writes it. */
export interface StaticManifest {
  /** Original name → stored (hashed) name, both relative to the storage location. */
  paths: Record<string, string>;
  version: string;
  /** 12 hex digits identifying this set of paths (changes whenever any file changes). */
  hash: string;
}

/** A reference found in a CSS or JS file. `start`/`end` delimit the URL text only. */
export interface FileReference {
  start: number;
  end: number;
  /** The URL as written (latin1-decoded bytes; see {@link findReferences}). */
  url: string;
  kind: 'url' | 'import' | 'sourcemap';
}

/** A reference whose target is not among the collected files; it is left unchanged. */
export interface MissingReference {
  /** The file containing the reference. */
  file: string;
  /** The URL as written. */
  reference: string;
}

/** One collected file after hashing. */
export interface HashedFile {
  /** Name relative to the collected directory, `/`-separated. */
  name: string;
  /** The name it is stored under: hashed, or `name` for bundler-hashed files. */
  storedName: string;
  /**
   * The rewritten content of a CSS/JS file whose references were rewritten (a minority of
   * a tree, and the only bodies held); `undefined` means "the bytes on disk". Not kept when
   * {@link HashTreeOptions.keepBodies} is false: use {@link HashTreeResult.render}.
   */
  body?: Buffer;
  /** The content's md5 (hex), for files kept under their own name: the name proves nothing. */
  md5?: string;
}

/**
 * Reads a file's bytes, or its md5 (hex) without keeping it in memory. `read` may be called
 * more than once for a CSS/JS file (once to find its references, once to rewrite it), so
 * that no more than the files in flight are held in memory.
 */
export interface HashReader {
  read(name: string): Promise<Buffer>;
  md5(name: string): Promise<string>;
}

/** The full md5 of `data` in hex. */
export function md5Hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

/**
 * `dir/name.ext` → `dir/name.<hash>.ext`, splitting the extension like Python's
 * `os.path.splitext` (last dot of the base name; a leading dot is not an extension).
 */
export function hashedName(name: string, hash: string): string {
  const slash = name.lastIndexOf('/');
  const base = name.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  // Like splitext, a name that is only dots before its last dot (`.htaccess`) has no extension.
  if (dot <= 0 || /^\.+$/.test(base.slice(0, dot))) return `${name}.${hash}`;
  return `${name.slice(0, slash + 1)}${base.slice(0, dot)}.${hash}${base.slice(dot)}`;
}

// Vite/Rollup/webpack `[name]-[hash:8].[ext]`: eight base64url characters. Names that only
// look like it (`Poppins-SemiBold.woff2`, `banner-20240101.png`, `logo-v2_final.png`) must
// not pass: a kept name is served `immutable`, so a later edit would never reach browsers.
// A real hash that happens to look like a word is merely hashed once more, which is harmless.
const BUNDLER_HASH = /-([A-Za-z0-9_-]{8})\.[A-Za-z0-9]+$/;
const LOOKS_LIKE_WORDS = [
  /^[A-Z]?[a-z]+(?:[A-Z][a-z]+)*$/, // CamelCase or lowercase words: SemiBold, settings
  /^\d+$/, // numbers and dates: 20240101
  /^[a-z0-9]+[_-][a-z0-9]+$/, // lowercase words joined by _ or -: v2_final
];

/**
 * True when the name looks like a bundler's `[name]-[hash:8]` output (`index-B4c9Xk2a.js`).
 * @deprecated a guess: pass an explicit {@link HashTreeOptions.keep} instead.
 */
export function isContentHashed(name: string): boolean {
  const m = BUNDLER_HASH.exec(name.slice(name.lastIndexOf('/') + 1));
  return m !== null && !LOOKS_LIKE_WORDS.some((words) => words.test(m[1]!));
}

/** Files whose references are rewritten: CSS (url, @import, source map) and JS (source map). */
export function isRewritable(name: string): boolean {
  return /\.(css|js|mjs)$/i.test(name);
}

const CSS_URL = /url\(\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^'"()\s]+))\s*\)/dgi;
const CSS_IMPORT = /@import\s*(?:"([^"\n]*)"|'([^'\n]*)')/dgi;
const CSS_SOURCEMAP = /^\/\*#[ \t]sourceMappingURL=(\S*?)[ \t]*\*\/[ \t\r]*$/dgm;
const JS_SOURCEMAP = /^\/\/# sourceMappingURL=(\S+?)[ \t\r]*$/dgm;
const CSS_COMMENT = /\/\*[\s\S]*?\*\//g;

/**
 * The references in a CSS or JS file. `text` is the file decoded as latin1, so that
 * offsets are byte offsets and a rewrite leaves every other byte exactly as it was, whatever
 * the file's encoding. References inside CSS comments are ignored (Django 4.2+ does too).
 */
export function findReferences(name: string, text: string): FileReference[] {
  const refs: FileReference[] = [];
  const collect = (re: RegExp, kind: FileReference['kind'], skip: [number, number][]) => {
    for (const m of text.matchAll(re)) {
      const group = [1, 2, 3].find((g) => m[g] !== undefined);
      if (group === undefined) continue;
      const [start, end] = m.indices![group]!;
      if (skip.some(([a, b]) => start >= a && start < b)) continue;
      refs.push({ start, end, url: m[group]!, kind });
    }
  };
  if (/\.css$/i.test(name)) {
    const comments = [...text.matchAll(CSS_COMMENT)].map((m): [number, number] => [m.index, m.index + m[0].length]);
    collect(CSS_URL, 'url', comments);
    collect(CSS_IMPORT, 'import', comments);
    collect(CSS_SOURCEMAP, 'sourcemap', []);
  } else {
    collect(JS_SOURCEMAP, 'sourcemap', []);
  }
  return refs.sort((a, b) => a.start - b.start);
}

/**
 * The collected file a reference in `fromName` points at, or undefined for URLs that are
 * not files of the tree: absolute URLs, `data:`, fragments, root-relative paths (their
 * meaning depends on where the site is served) and paths escaping the tree.
 * `suffix` is the query and fragment, kept on the rewritten URL (`font.woff?#iefix`).
 */
export function resolveReference(fromName: string, url: string): { target: string; path: string; suffix: string } | undefined {
  const trimmed = url.trim();
  if (trimmed === '' || /^[a-z][a-z0-9+.-]*:/i.test(trimmed) || trimmed.startsWith('//') || trimmed.startsWith('#') || trimmed.startsWith('/')) {
    return undefined;
  }
  const cut = trimmed.search(/[?#]/);
  const path = cut < 0 ? trimmed : trimmed.slice(0, cut);
  const suffix = cut < 0 ? '' : trimmed.slice(cut);
  if (path === '') return undefined;
  let decoded: string;
  try {
    // The URL bytes were decoded as latin1; they are UTF-8, possibly percent-encoded.
    decoded = decodeURIComponent(Buffer.from(path, 'latin1').toString('utf8'));
  } catch {
    return undefined;
  }
  const target = posix.normalize(posix.join(posix.dirname(fromName), decoded));
  if (target.startsWith('../') || target === '..' || target.startsWith('/')) return undefined;
  return { target, path, suffix };
}

/** Rewrites the URL `path` so that its last segment is the stored name's last segment. */
function rewriteUrl(url: string, path: string, target: string, storedName: string): string {
  if (storedName === target) return url;
  const lead = url.slice(0, url.length - url.trimStart().length);
  const trail = url.slice(url.trimEnd().length);
  const slash = path.lastIndexOf('/');
  // Keep the reference's own directory spelling (`../img/`), swap only the file name,
  // percent-encoded the way a browser would request it.
  const base = storedName.slice(storedName.lastIndexOf('/') + 1);
  const encodedBase = Buffer.from(encodeURI(base), 'utf8').toString('latin1');
  return `${lead}${path.slice(0, slash + 1)}${encodedBase}${url.trim().slice(path.length)}${trail}`;
}

/** Options of {@link hashTree}. */
export interface HashTreeOptions {
  /**
   * Stands for Django's `STATIC_URL`: a root-relative reference that starts with it
   * (`url(/static/img/a.png)`) names the collected file after it (`img/a.png`); other
   * root-relative references are left alone, as Django leaves them. Must end with `/`.
   * The caller decides the default from the storage location (`'/<location>/'`).
   * @default '/static/'
   */
  staticUrl?: string;
  /**
   * Names stored as they are: not hashed, not rewritten, only their md5 taken (for a
   * bundler's already-hashed output, chosen by glob or bundler manifest). References from
   * other files to a kept name stay that name.
   * @default nothing is kept
   */
  keep?: (name: string) => boolean;
  /**
   * Django's `support_js_module_import_aggregation`: also rewrite relative `import … from`,
   * `export … from`, `import "…"` and `import("…")` in `.js` files.
   * @default false (as in Django)
   */
  jsModules?: boolean;
  /**
   * Files read at once.
   * @default 16
   */
  concurrency?: number;
  /**
   * Keep each rewritten file's bytes in {@link HashedFile.body}. With `false`, only names
   * are kept and {@link HashTreeResult.render} regenerates a body when it is uploaded.
   * @default true
   */
  keepBodies?: boolean;
}

/** What {@link hashTree} found. */
export interface HashTreeResult {
  /** Every name given, with its stored name. */
  files: Map<string, HashedFile>;
  /**
   * References whose target is not among the names, left as written. Django fails the
   * run on the first one; the caller decides (strict by default, or warn).
   */
  missing: MissingReference[];
  /**
   * The stored bytes of a rewritten (CSS/JS) file, regenerated from the reader on demand
   * (each call reads the file again), or `undefined` for a file stored byte for byte,
   * which the caller streams from disk. Lets the caller upload without holding every body.
   */
  render(name: string): Promise<Buffer | undefined>;
}

/**
 * Hashes a tree of files in dependency order and rewrites references.
 *
 * Files are hashed after their references are rewritten, targets first, so a change
 * anywhere propagates to every file that points at it. Files in a reference cycle
 * (`a.css` imports `b.css` imports `a.css`) cannot each carry the md5 of their final
 * content; they get hashes derived from the whole cycle's content, so any change in the
 * cycle still renames all of its members.
 */
export async function hashTree(names: readonly string[], reader: HashReader, options: HashTreeOptions = {}): Promise<HashTreeResult> {
  const { keep = () => false, concurrency = 16, keepBodies = true } = options;
  void keepBodies;
  const files = new Map<string, HashedFile>();
  const missing: MissingReference[] = [];
  const known = new Set(names);
  const isContentHashed = keep;

  const kept = names.filter(isContentHashed);
  await forEachLimit(kept, concurrency, async (name) => {
    files.set(name, { name, storedName: name, md5: await reader.md5(name) });
  });
  const rewritable = names.filter((n) => !isContentHashed(n) && isRewritable(n));
  const plain = names.filter((n) => !isContentHashed(n) && !isRewritable(n));

  await forEachLimit(plain, concurrency, async (name) => {
    files.set(name, { name, storedName: hashedName(name, (await reader.md5(name)).slice(0, 12)) });
  });

  interface Node {
    name: string;
    text: string;
    refs: (FileReference & { target?: string; path?: string })[];
    deps: string[];
  }
  const nodes = new Map<string, Node>();
  await forEachLimit(rewritable, concurrency, async (name) => {
    const text = (await reader.read(name)).toString('latin1');
    const refs = findReferences(name, text).map((ref): Node['refs'][number] => {
      const resolved = resolveReference(name, ref.url);
      if (resolved && !known.has(resolved.target)) {
        missing.push({ file: name, reference: ref.url.trim() });
        return ref;
      }
      return resolved ? { ...ref, target: resolved.target, path: resolved.path } : ref;
    });
    const deps = [...new Set(refs.flatMap((r) => (r.target !== undefined ? [r.target] : [])))];
    nodes.set(name, { name, text, refs, deps });
  });

  const rewrite = (node: Node, stored: (target: string) => string): string => {
    let out = '';
    let at = 0;
    for (const ref of node.refs) {
      if (ref.target === undefined) continue;
      out += node.text.slice(at, ref.start) + rewriteUrl(ref.url, ref.path!, ref.target, stored(ref.target));
      at = ref.end;
    }
    return out + node.text.slice(at);
  };

  for (const component of stronglyConnected([...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), nodes)) {
    const cyclic = component.length > 1 || component[0]!.deps.includes(component[0]!.name);
    if (!cyclic) {
      const node = component[0]!;
      const body = Buffer.from(rewrite(node, (t) => files.get(t)!.storedName), 'latin1');
      files.set(node.name, { name: node.name, storedName: hashedName(node.name, md5Hex(body).slice(0, 12)), body });
      continue;
    }
    const members = new Set(component.map((n) => n.name));
    const outside = (t: string) => (members.has(t) ? t : files.get(t)!.storedName);
    const group = md5Hex(component.map((n) => `${n.name}\0${rewrite(n, outside)}`).sort().join('\0'));
    const stored = new Map(component.map((n) => [n.name, hashedName(n.name, md5Hex(`${group}\0${n.name}`).slice(0, 12))]));
    for (const node of component) {
      const body = Buffer.from(rewrite(node, (t) => stored.get(t) ?? files.get(t)!.storedName), 'latin1');
      files.set(node.name, { name: node.name, storedName: stored.get(node.name)!, body });
    }
  }
  const sortedMissing = missing.sort((a, b) => (a.file + a.reference < b.file + b.reference ? -1 : 1));
  return { files, missing: sortedMissing, render: async (name) => files.get(name)?.body };
}

/** Tarjan's algorithm: components in reverse topological order (dependencies first). */
function stronglyConnected<N extends { name: string; deps: string[] }>(order: N[], nodes: Map<string, N>): N[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: N[] = [];
  const out: N[][] = [];
  let counter = 0;
  // Iterative, so a long chain of imports cannot overflow the call stack.
  for (const root of order) {
    if (index.has(root.name)) continue;
    const work: { node: N; next: number }[] = [{ node: root, next: 0 }];
    index.set(root.name, counter);
    low.set(root.name, counter++);
    stack.push(root);
    onStack.add(root.name);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const { node } = frame;
      if (frame.next < node.deps.length) {
        const dep = nodes.get(node.deps[frame.next++]!);
        if (!dep) continue; // a plain file: already hashed
        if (!index.has(dep.name)) {
          index.set(dep.name, counter);
          low.set(dep.name, counter++);
          stack.push(dep);
          onStack.add(dep.name);
          work.push({ node: dep, next: 0 });
        } else if (onStack.has(dep.name)) {
          low.set(node.name, Math.min(low.get(node.name)!, index.get(dep.name)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node.name, Math.min(low.get(parent.node.name)!, low.get(node.name)!));
      if (low.get(node.name) === index.get(node.name)) {
        const component: N[] = [];
        let member: N;
        do {
          member = stack.pop()!;
          onStack.delete(member.name);
          component.push(member);
        } while (member !== node);
        out.push(component);
      }
    }
  }
  return out;
}

/**
 * The manifest for `paths`, with Django's `hash`: the first 12 hex of the md5 of
 * Python's `json.dumps(sorted(paths.items()))`. Paths are written sorted, so an unchanged
 * tree gives a byte-identical manifest (and the same ETag, which lets a re-run skip it).
 */
export function buildManifest(paths: Record<string, string>): { manifest: StaticManifest; body: Buffer } {
  const entries = Object.entries(paths).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const pythonDump = `[${entries.map(([k, v]) => `[${pythonJson(k)}, ${pythonJson(v)}]`).join(', ')}]`;
  const manifest: StaticManifest = {
    paths: Object.fromEntries(entries),
    version: MANIFEST_VERSION,
    hash: md5Hex(pythonDump).slice(0, 12),
  };
  return { manifest, body: Buffer.from(JSON.stringify(manifest), 'utf8') };
}

/** A JSON string as Python's `json.dumps` writes it (`ensure_ascii`: non-ASCII as `\uXXXX`). */
function pythonJson(value: string): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Parses a `staticfiles.json`. Accepts Django's versions 1.0 and 1.1.
 * @throws Error naming what is wrong (the caller wraps it in a `ManifestError`).
 */
export function parseManifest(text: string): Record<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new Error(`it is not valid JSON (${(error as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('it is not a JSON object');
  const { paths, version } = data as { paths?: unknown; version?: unknown };
  if (typeof version !== 'string' || !READABLE_VERSIONS.has(version)) {
    throw new Error(`its version is ${JSON.stringify(version)}; expected "1.0" or "1.1"`);
  }
  if (typeof paths !== 'object' || paths === null || Array.isArray(paths)) throw new Error('its "paths" is not an object');
  for (const [k, v] of Object.entries(paths)) {
    if (typeof v !== 'string') throw new Error(`its entry for ${JSON.stringify(k)} is not a string`);
  }
  return { ...(paths as Record<string, string>) };
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure stops new starts and is thrown. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let failure: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (error) {
        if (!failed) failure = error;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  if (failed) throw failure;
}

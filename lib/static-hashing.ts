/**
 * The pure part of `collectstatic`: Django-compatible hashed names, CSS/JS reference
 * rewriting and the `staticfiles.json` manifest. No S3, no file system: the caller supplies
 * a reader, so this file is unit-tested on strings.
 *
 * Follows Django's `ManifestStaticFilesStorage`:
 * - `css/app.css` is stored as `css/app.<first 12 hex of the md5 of its content>.css`;
 * - `url(...)`, `@import "..."` and `sourceMappingURL` references in CSS (and
 *   `//# sourceMappingURL`, plus module imports when asked, in JS) are rewritten to the
 *   hashed names of their targets, and a file is hashed after its rewrite, so a changed
 *   image changes every CSS that points at it;
 * - the manifest is `{ "paths": { name: hashedName }, "version": "1.1", "hash": "<12 hex>" }`.
 *
 * The rewriting itself (Django 5.2's patterns and URL converter, byte for byte) lives in
 * static-references.ts. Beyond Django: names the caller keeps (a bundler's hashed output)
 * keep their names and bytes, reference cycles get names instead of failing the run, and a
 * missing target is reported to the caller instead of failing it.
 */
import { md5Hex } from './hmac.js';
import { djangoHashedName, isAdjustable, rewriteReferences, type TreeLookup } from './static-references.js';

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

/** A reference whose target is not among the collected files; it is left as written. */
export interface MissingReference {
  /** The file containing the reference. */
  file: string;
  /** The URL as written. */
  reference: string;
  /** The name looked for (Django: "The file '<target>' could not be found"). */
  target: string;
  /** 1-based line of the reference in `file`. */
  line: number;
}

/** One collected file after hashing. */
export interface HashedFile {
  /** Name relative to the collected directory, `/`-separated. */
  name: string;
  /** The name it is stored under: hashed, or `name` for a kept file. */
  storedName: string;
  /**
   * The rewritten content of a CSS/JS file whose bytes changed (a minority of a tree, and
   * the only bodies held); `undefined` means "the bytes on disk". Not kept when
   * {@link HashTreeOptions.keepBodies} is false: use {@link HashTreeResult.render}.
   */
  body?: Buffer;
  /** The md5 (hex) of the file's bytes on disk. */
  md5: string;
  /** True for a name kept as it is ({@link HashTreeOptions.keep}): the name proves nothing about the content. */
  kept?: boolean;
}

/**
 * Reads a file's bytes, or its md5 (hex) without keeping it in memory. `read` is called
 * twice for a CSS/JS file (once to find its references, once to rewrite it, and again by
 * {@link HashTreeResult.render}), so that no more than the files in flight are held.
 */
export interface HashReader {
  read(name: string): Promise<Buffer>;
  md5(name: string): Promise<string>;
}

/**
 * `dir/name.ext` → `dir/name.<hash>.ext`, splitting the extension like Python's
 * `os.path.splitext` (last dot of the base name; a leading dot is not an extension).
 * Exactly Django's `hashed_name` for plain names (a name with `%`, `?` or `#` goes through
 * Django's URL parsing: see `djangoHashedName`).
 */
export function hashedName(name: string, hash: string): string {
  const slash = name.lastIndexOf('/');
  const base = name.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0 || /^\.+$/.test(base.slice(0, dot))) return `${name}.${hash}`;
  return `${name.slice(0, slash + 1)}${base.slice(0, dot)}.${hash}${base.slice(dot)}`;
}

// Vite/Rollup/webpack `[name]-[hash:8].[ext]`: eight base64url characters.
const BUNDLER_HASH = /-([A-Za-z0-9_-]{8})\.[A-Za-z0-9]+$/;
const LOOKS_LIKE_WORDS = [/^[A-Z]?[a-z]+(?:[A-Z][a-z]+)*$/, /^\d+$/, /^[a-z0-9]+[_-][a-z0-9]+$/];

/**
 * True when the name looks like a bundler's `[name]-[hash:8]` output (`index-B4c9Xk2a.js`).
 * @deprecated a guess that also matches `bg-Header01.png`: pass an explicit
 * {@link HashTreeOptions.keep} (globs, a bundler manifest) instead.
 */
export function isContentHashed(name: string): boolean {
  const m = BUNDLER_HASH.exec(name.slice(name.lastIndexOf('/') + 1));
  return m !== null && !LOOKS_LIKE_WORDS.some((words) => words.test(m[1]!));
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
   * `export … from`, `import "…"` and `import("…")` in `.js` files, with Django's patterns
   * (which also match inside comments and strings).
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
   * References whose target is not among the names, left as written, sorted by file and
   * line. Django fails the run on the first one; the caller decides (strict, or warn).
   * References inside CSS comments and strings are not reported (Django 5.2 would fail).
   */
  missing: MissingReference[];
  /**
   * Files in a reference cycle (`a.css` imports `b.css` imports `a.css`), one array per
   * cycle. Django fails such a run ("Max post-process passes exceeded"); here each member
   * gets a name derived from the whole cycle's content, so any change renames all of them.
   */
  cycles: string[][];
  /**
   * The stored bytes of a rewritten CSS/JS file, regenerated from the reader (each call
   * reads the file again), or `undefined` for a file stored byte for byte, which the caller
   * streams from disk. Lets the caller upload without holding every body.
   */
  render(name: string): Promise<Buffer | undefined>;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Django reads an adjustable file as UTF-8 (and fails on anything else); a file that is
 * not UTF-8 is handled here byte for byte through latin1, so its other bytes stay as they are.
 */
function decode(bytes: Buffer): { text: string; encoding: 'utf8' | 'latin1' } {
  try {
    return { text: UTF8.decode(bytes), encoding: 'utf8' };
  } catch {
    return { text: bytes.toString('latin1'), encoding: 'latin1' };
  }
}

/**
 * Hashes a tree of files and rewrites references in CSS and JS, byte for byte as Django
 * 5.2's `ManifestStaticFilesStorage.post_process` does (see static-references.ts).
 *
 * Django re-processes every adjustable file in up to 5 passes until no hashed name changes;
 * the result is the fixed point where each CSS/JS file's name is the md5 of its content
 * rewritten with the final names of its targets. That fixed point is unique for references
 * without cycles, so it is computed directly here, targets first (a chain deeper than
 * Django's passes, which Django rejects, works too). Each file is read once to find its
 * references and once to rewrite it; only the rewritten bodies are kept.
 */
export async function hashTree(names: readonly string[], reader: HashReader, options: HashTreeOptions = {}): Promise<HashTreeResult> {
  const { keep = () => false, concurrency = 16, keepBodies = true, jsModules = false } = options;
  const staticUrl = options.staticUrl ?? '/static/';
  if (!staticUrl.endsWith('/')) throw new TypeError(`hashTree: staticUrl must end with "/" (Django's STATIC_URL does); got ${JSON.stringify(staticUrl)}`);

  const files = new Map<string, HashedFile>();
  const known = new Set(names);
  const directories = new Set<string>();
  for (const name of names) for (let i = name.indexOf('/'); i > 0; i = name.indexOf('/', i + 1)) directories.add(name.slice(0, i));
  const isKept = new Set(names.filter((n) => keep(n)));
  const adjustable = names.filter((n) => !isKept.has(n) && isAdjustable(n));
  const adjustableSet = new Set(adjustable);
  const originalMd5 = new Map<string, string>();
  // Django's STATIC_ROOT also holds the hashed copies it has written, and a reference can name
  // one (a module pattern re-matching what an earlier pattern wrote): stored name → source
  // and the 12 hex of the copy's content. Pass 1 puts its placeholders here.
  const copies = new Map<string, { source: string; hash: string }>();
  const placeholders = new Map<string, { source: string; hash: string }>();

  await forEachLimit(
    names.filter((n) => !adjustableSet.has(n)),
    concurrency,
    async (name) => {
      const md5 = await reader.md5(name);
      originalMd5.set(name, md5);
      const kept = isKept.has(name);
      const storedName = kept ? name : djangoHashedName(name, md5.slice(0, 12));
      files.set(name, { name, storedName, md5, ...(kept ? { kept } : {}) });
      if (!kept) copies.set(storedName, { source: name, hash: md5.slice(0, 12) });
    },
  );

  const lookup = (stored: (name: string) => string | undefined, seen?: Set<string>): TreeLookup => {
    const copy = (name: string) => {
      const found = known.has(name) ? undefined : (copies.get(name) ?? (seen ? placeholders.get(name) : undefined));
      if (found && seen && adjustableSet.has(found.source)) seen.add(found.source);
      return found;
    };
    return {
      staticUrl,
      stored,
      isFile: (name) => known.has(name) || copy(name) !== undefined,
      isDirectory: (name) => directories.has(name),
      originalHash: (name) => (isKept.has(name) ? '' : known.has(name) ? (originalMd5.get(name) ?? '0'.repeat(32)).slice(0, 12) : copy(name)!.hash),
    };
  };
  const PLACEHOLDER = '0'.repeat(12);
  for (const name of adjustable) placeholders.set(djangoHashedName(name, PLACEHOLDER), { source: name, hash: PLACEHOLDER });

  // Pass 1: which files each adjustable file points at, and what is missing. Targets not
  // final yet answer with a same-shaped placeholder: the patterns cannot tell hex digits apart.
  const deps = new Map<string, string[]>();
  const missing: MissingReference[] = [];
  await forEachLimit(adjustable, concurrency, async (name) => {
    const bytes = await reader.read(name);
    originalMd5.set(name, md5Hex(bytes));
    const found = new Set<string>();
    const scan = lookup((key) => {
      if (!known.has(key)) return undefined;
      if (adjustableSet.has(key)) found.add(key);
      return files.get(key)?.storedName ?? djangoHashedName(key, PLACEHOLDER);
    }, found);
    const result = rewriteReferences(name, decode(bytes).text, scan, jsModules);
    for (const m of result.missing) missing.push({ file: name, ...m });
    deps.set(name, [...found]);
  });

  const rewrite = async (name: string, stored: (key: string) => string | undefined): Promise<{ body: Buffer; changed: boolean }> => {
    const bytes = await reader.read(name);
    const { text, encoding } = decode(bytes);
    const out = rewriteReferences(name, text, lookup(stored), jsModules).text;
    return out === text ? { body: bytes, changed: false } : { body: Buffer.from(out, encoding), changed: true };
  };
  const settled = new Set<string>();
  const finalName = (key: string) => {
    // Pass 1 found every adjustable target; one not settled here would get a wrong name.
    if (adjustableSet.has(key) && !settled.has(key)) throw new Error(`hashTree: ${key} was needed before it was hashed (a reference pass 1 did not see)`);
    return files.get(key)?.storedName;
  };

  // Pass 2: targets first. Components come dependencies first, so a component's targets
  // were started before it and awaiting them cannot deadlock the pool.
  const nodes = new Map(adjustable.map((name) => [name, { name, deps: deps.get(name)! }]));
  const components = stronglyConnected([...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), nodes);
  const done = new Map<string, Promise<void>>();
  const cycles: string[][] = [];
  const settle = (name: string, stored: string, result: { body: Buffer; changed: boolean }) => {
    files.set(name, { name, storedName: stored, md5: originalMd5.get(name)!, ...(result.changed && keepBodies ? { body: result.body } : {}) });
    copies.set(stored, { source: name, hash: md5Hex(result.body).slice(0, 12) });
    settled.add(name);
  };
  await forEachLimit(components, concurrency, async (component) => {
    const members = new Set(component.map((n) => n.name));
    let release!: () => void;
    const finished = new Promise<void>((resolve) => (release = resolve));
    for (const m of members) done.set(m, finished);
    try {
      const outside = new Set(component.flatMap((n) => n.deps).filter((d) => !members.has(d)));
      await Promise.all([...outside].map((d) => done.get(d)));
      const cyclic = component.length > 1 || component[0]!.deps.includes(component[0]!.name);
      if (!cyclic) {
        const name = component[0]!.name;
        const result = await rewrite(name, finalName);
        settle(name, djangoHashedName(name, md5Hex(result.body).slice(0, 12)), result);
        return;
      }
      const names = [...members].sort();
      cycles.push(names);
      // Members' names come from the content of all members, rewritten with the members
      // still unhashed; then each is rewritten with the members' new names.
      const parts: string[] = [];
      for (const name of names) parts.push(`${name}\0${md5Hex((await rewrite(name, (k) => (members.has(k) ? k : finalName(k)))).body)}`);
      const group = md5Hex(parts.join('\0'));
      const stored = new Map(names.map((n) => [n, djangoHashedName(n, md5Hex(`${group}\0${n}`).slice(0, 12))]));
      for (const name of names) settle(name, stored.get(name)!, await rewrite(name, (k) => stored.get(k) ?? finalName(k)));
    } finally {
      release();
    }
  });

  missing.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || (a.reference < b.reference ? -1 : 1)));
  return {
    files,
    missing,
    cycles: cycles.sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    render: async (name) => {
      if (!adjustableSet.has(name)) return undefined;
      const result = await rewrite(name, finalName);
      return result.changed ? result.body : undefined;
    },
  };
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

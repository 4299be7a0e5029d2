/**
 * Django 5.2's reference rewriting (`HashedFilesMixin.patterns` and `url_converter` in
 * `django/contrib/staticfiles/storage.py`), ported so that a rewritten CSS/JS file is
 * byte-identical to what `ManifestStaticFilesStorage` writes for the same input.
 *
 * Django runs its regular expressions over the whole file, one after the other, each over
 * the previous one's output; it does not know about CSS comments or strings (that came after
 * 5.2). Byte-identical output therefore means rewriting exactly where Django does, comments
 * included. What a real CSS scanner adds ({@link cssNonCodeRanges}) is only the decision
 * Django cannot make: a reference inside a comment or a string whose target does not exist
 * is left as written and NOT reported missing (Django 5.2 fails the whole run on it; later
 * versions skip comments). Where Django 5.2 succeeds, the output is the same.
 *
 * The URL handling goes through ports of the Python functions Django calls (`urldefrag`,
 * `urlsplit`, `unquote`, `posixpath.normpath`, `urljoin`, …), as CPython 3.11 behaves, because
 * their quirks (a `?` dropped before an empty fragment, `%xx` decoded twice, a trailing `\r`
 * removed) are part of the output.
 */

/** Python's `str.isspace()` / `re` `\s` set for str (differs from JS `\s`: \x1c-\x1f, \x85, no \ufeff). */
const PY_WS = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS = `[${PY_WS}]`;
const PY_STRIP = new RegExp(`^${WS}+|${WS}+$`, 'gu');

/** A literal word under Python's `re.IGNORECASE` (which also folds ı, İ to i and ſ to s). */
function ci(word: string): string {
  return [...word].map((c) => (c === 'i' ? '[iIıİ]' : c === 's' ? '[sSſ]' : /[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c)).join('');
}

/** One of Django's patterns: the regex (group 1 = `matched`, then the named groups) and its template. */
interface DjangoPattern {
  re: RegExp;
  /** Names of the capture groups after `matched`, in order. */
  groups: readonly string[];
  template: (g: Record<string, string>) => string;
  /** The pattern is a source-map comment: a missing target there is always reported. */
  comment?: boolean;
}

// Python's `^`/`$` under (?m) see only \n as a line end; JS's m flag also sees \r, \u2028, \u2029.
const BOL = '(?<![^\\n])';
const EOL = '(?![^\\n])';
const ANY = '[^\\n]'; // Python `.` without DOTALL

const CSS_PATTERNS: readonly DjangoPattern[] = [
  {
    // r"""(?P<matched>url\(['"]{0,1}\s*(?P<url>.*?)["']{0,1}\))"""
    re: new RegExp(`(${ci('url')}\\(['"]?${WS}*(${ANY}*?)["']?\\))`, 'gu'),
    groups: ['url'],
    template: (g) => `url("${g.url}")`,
  },
  {
    // r"""(?P<matched>@import\s*["']\s*(?P<url>.*?)["'])""", """@import url("%(url)s")"""
    re: new RegExp(`(@${ci('import')}${WS}*["']${WS}*(${ANY}*?)["'])`, 'gu'),
    groups: ['url'],
    template: (g) => `@import url("${g.url}")`,
  },
  {
    // r"(?m)^(?P<matched>/\*#[ \t](?-i:sourceMappingURL)=(?P<url>.*)[ \t]*\*/)$"
    re: new RegExp(`${BOL}(\\/\\*#[ \\t]sourceMappingURL=(${ANY}*)[ \\t]*\\*\\/)${EOL}`, 'gu'),
    groups: ['url'],
    template: (g) => `/*# sourceMappingURL=${g.url} */`,
    comment: true,
  },
];

const JS_PATTERNS: readonly DjangoPattern[] = [
  {
    // r"(?m)^(?P<matched>//# (?-i:sourceMappingURL)=(?P<url>.*))$"
    re: new RegExp(`${BOL}(\\/\\/# sourceMappingURL=(${ANY}*))${EOL}`, 'gu'),
    groups: ['url'],
    template: (g) => `//# sourceMappingURL=${g.url}`,
    comment: true,
  },
];

const WORD = '[\\p{L}\\p{N}_]'; // Python `\w` for str
/** `_js_module_import_aggregation_patterns`, used when `support_js_module_import_aggregation`. */
const JS_MODULE_PATTERNS: readonly DjangoPattern[] = [
  {
    // import(?s:(?P<import>[\s\{].*?|\*\s*as\s*\w+))\s*from\s*['"](?P<url>[./].*?)["']\s*;
    re: new RegExp(`(${ci('import')}([${PY_WS}{][\\s\\S]*?|\\*${WS}*${ci('as')}${WS}*${WORD}+)${WS}*${ci('from')}${WS}*['"]([./]${ANY}*?)["']${WS}*;)`, 'gu'),
    groups: ['import', 'url'],
    template: (g) => `import${g.import} from "${g.url}";`,
  },
  {
    // export(?s:(?P<exports>[\s\{].*?))\s*from\s*["'](?P<url>[./].*?)["']\s*;
    re: new RegExp(`(${ci('export')}([${PY_WS}{][\\s\\S]*?)${WS}*${ci('from')}${WS}*["']([./]${ANY}*?)["']${WS}*;)`, 'gu'),
    groups: ['exports', 'url'],
    template: (g) => `export${g.exports} from "${g.url}";`,
  },
  {
    // import\s*['"](?P<url>[./].*?)["']\s*;
    re: new RegExp(`(${ci('import')}${WS}*['"]([./]${ANY}*?)["']${WS}*;)`, 'gu'),
    groups: ['url'],
    // Spelt in two parts so that no import scanner takes the template for an import.
    template: (g) => `${'import'}"${g.url}";`,
  },
  {
    // import\(["'](?P<url>.*?)["']\)
    re: new RegExp(`(${ci('import')}\\(["'](${ANY}*?)["']\\))`, 'gu'),
    groups: ['url'],
    template: (g) => `${'import'}("${g.url}")`,
  },
];

/** Django's `matches_patterns(path, ("*.css", "*.js"))`: fnmatchcase, so `.CSS` and `.mjs` are not adjustable. */
export function isAdjustable(name: string): boolean {
  return name.endsWith('.css') || name.endsWith('.js');
}

/** The patterns Django applies to `name`, in its order. */
export function patternsFor(name: string, jsModules: boolean): readonly DjangoPattern[] {
  if (name.endsWith('.css')) return CSS_PATTERNS;
  if (name.endsWith('.js')) return jsModules ? [...JS_PATTERNS, ...JS_MODULE_PATTERNS] : JS_PATTERNS;
  return [];
}

// ---------------------------------------------------------------------------------------
// Python's urllib.parse / posixpath, as CPython 3.11 behaves.

const SCHEME_CHARS = /^[A-Za-z0-9+\-.]*$/;
const USES_NETLOC = new Set(['', 'ftp', 'http', 'gopher', 'nntp', 'telnet', 'imap', 'wais', 'file', 'mms', 'https', 'shttp', 'snews', 'prospero', 'rtsp', 'rtsps', 'rtspu', 'rsync', 'svn', 'svn+ssh', 'sftp', 'nfs', 'git', 'git+ssh', 'ws', 'wss', 'itms-services']);
const USES_PARAMS = new Set(['', 'ftp', 'hdl', 'prospero', 'http', 'imap', 'https', 'shttp', 'rtsp', 'rtsps', 'rtspu', 'sip', 'sips', 'mms', 'sftp', 'tel']);
const USES_RELATIVE = new Set(['', 'ftp', 'http', 'gopher', 'nntp', 'imap', 'wais', 'file', 'https', 'shttp', 'mms', 'prospero', 'rtsp', 'rtsps', 'rtspu', 'sftp', 'svn', 'svn+ssh', 'ws', 'wss']);

interface SplitUrl {
  scheme: string;
  netloc: string;
  path: string;
  query: string;
  fragment: string;
}

export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

export function urlsplit(input: string): SplitUrl {
  let url = input.replace(/^[\x00-\x20]+/, '').replace(/[\t\r\n]/g, '');
  let scheme = '';
  let netloc = '';
  let query = '';
  let fragment = '';
  const i = url.indexOf(':');
  if (i > 0 && /^[A-Za-z]/.test(url) && SCHEME_CHARS.test(url.slice(0, i))) {
    scheme = url.slice(0, i).toLowerCase();
    url = url.slice(i + 1);
  }
  if (url.startsWith('//')) {
    let delim = url.length;
    for (const c of '/?#') {
      const w = url.indexOf(c, 2);
      if (w >= 0) delim = Math.min(delim, w);
    }
    netloc = url.slice(2, delim);
    url = url.slice(delim);
  }
  const hash = url.indexOf('#');
  if (hash >= 0) {
    fragment = url.slice(hash + 1);
    url = url.slice(0, hash);
  }
  const q = url.indexOf('?');
  if (q >= 0) {
    query = url.slice(q + 1);
    url = url.slice(0, q);
  }
  return { scheme, netloc, path: url, query, fragment };
}

export function urlunsplit({ scheme, netloc, path, query, fragment }: SplitUrl): string {
  let url = path;
  if (netloc || (scheme && USES_NETLOC.has(scheme) && !url.startsWith('//'))) {
    if (url && !url.startsWith('/')) url = `/${url}`;
    url = `//${netloc}${url}`;
  }
  if (scheme) url = `${scheme}:${url}`;
  if (query) url += `?${query}`;
  if (fragment) url += `#${fragment}`;
  return url;
}

/** `urlparse` then `urlunparse`'s round trip of the path: `;params` split off and put back (an empty one dropped). */
function paramsRoundTrip(split: SplitUrl): SplitUrl {
  if (!USES_PARAMS.has(split.scheme) || !split.path.includes(';')) return split;
  const url = split.path;
  let i: number;
  if (url.includes('/')) {
    i = url.indexOf(';', url.lastIndexOf('/'));
    if (i < 0) return split;
  } else {
    i = url.indexOf(';');
  }
  const params = url.slice(i + 1);
  return { ...split, path: params ? `${url.slice(0, i)};${params}` : url.slice(0, i) };
}

export function urldefrag(url: string): [string, string] {
  if (!url.includes('#')) return [url, ''];
  const split = paramsRoundTrip(urlsplit(url));
  return [urlunsplit({ ...split, fragment: '' }), split.fragment];
}

/** `urllib.parse.unquote`: %XX runs decoded as UTF-8 with replacement characters. */
export function unquote(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/[\x00-\x7f]+/g, (ascii) => {
    if (!ascii.includes('%')) return ascii;
    const bytes: number[] = [];
    const bits = ascii.split('%');
    for (const c of bits[0]!) bytes.push(c.charCodeAt(0));
    for (const item of bits.slice(1)) {
      const hex = item.slice(0, 2);
      const rest = /^[0-9A-Fa-f]{2}$/.test(hex) ? (bytes.push(parseInt(hex, 16)), item.slice(2)) : `%${item}`;
      for (const c of rest) bytes.push(c.charCodeAt(0));
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  });
}

/** `urllib.parse.quote(s, safe="/~!*()'")`, as `filepath_to_uri` calls it. */
function quoteFilepath(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.\-~/!*()']/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** `urljoin(base, ref)` for the refs `FileSystemStorage.url` builds (a relative path). */
function urljoin(base: string, ref: string): string {
  if (!base) return ref;
  if (!ref) return base;
  const b = paramsRoundTrip(urlsplit(base));
  const r = urlsplit(ref);
  const scheme = r.scheme || b.scheme;
  if (scheme !== b.scheme || !USES_RELATIVE.has(scheme)) return ref;
  if (USES_NETLOC.has(scheme) && r.netloc) return urlunsplit({ ...r, scheme });
  const netloc = USES_NETLOC.has(scheme) ? b.netloc : r.netloc;
  const baseParts = b.path.split('/');
  if (baseParts[baseParts.length - 1] !== '') baseParts.pop();
  let segments: string[];
  if (r.path.startsWith('/')) {
    segments = r.path.split('/');
  } else {
    segments = [...baseParts, ...r.path.split('/')];
    if (segments.length > 2) segments = [segments[0]!, ...segments.slice(1, -1).filter(Boolean), segments[segments.length - 1]!];
  }
  const resolved: string[] = [];
  for (const seg of segments) {
    if (seg === '..') resolved.pop();
    else if (seg !== '.') resolved.push(seg);
  }
  const last = segments[segments.length - 1];
  if (last === '.' || last === '..') resolved.push('');
  return urlunsplit({ scheme, netloc, path: resolved.join('/') || '/', query: r.query, fragment: r.fragment });
}

export function normpath(path: string): string {
  if (path === '') return '.';
  let initial = path.startsWith('/') ? 1 : 0;
  if (path.startsWith('//') && !path.startsWith('///')) initial = 2;
  const comps: string[] = [];
  for (const comp of path.split('/')) {
    if (comp === '' || comp === '.') continue;
    if (comp !== '..' || (!initial && comps.length === 0) || comps[comps.length - 1] === '..') comps.push(comp);
    else if (comps.length > 0) comps.pop();
  }
  return '/'.repeat(initial) + comps.join('/') || '.';
}

function dirname(p: string): string {
  let head = p.slice(0, p.lastIndexOf('/') + 1);
  if (head && head !== '/'.repeat(head.length)) head = head.replace(/\/+$/, '');
  return head;
}

function join(a: string, b: string): string {
  if (b.startsWith('/')) return b;
  return !a || a.endsWith('/') ? a + b : `${a}/${b}`;
}

/** `os.path.splitext`: the last dot of the base name, unless the base is only dots before it. */
function splitext(p: string): [string, string] {
  const sep = p.lastIndexOf('/');
  const dot = p.lastIndexOf('.');
  if (dot > sep) {
    for (let i = sep + 1; i < dot; i++) if (p[i] !== '.') return [p.slice(0, dot), p.slice(dot)];
  }
  return [p, ''];
}

// ---------------------------------------------------------------------------------------
// The storage's side of the converter.

/** What a rewrite needs to know about the collected tree. */
export interface TreeLookup {
  /** Django's `STATIC_URL` (ends with `/`). */
  staticUrl: string;
  /** The final stored name of a collected file (`hashed_files[name]`), or undefined for a name not collected. */
  stored(name: string): string | undefined;
  /** Whether a name is a collected file (`storage.exists`). */
  isFile(name: string): boolean;
  /** Whether a name is a directory of the tree (exists, but opening it fails). */
  isDirectory(name: string): boolean;
  /**
   * The 12 hex Django puts in a name it hashes from the file on disk (the md5 of the
   * ORIGINAL content, even for a CSS/JS file it rewrites), or '' for a name kept as is.
   */
  originalHash(name: string): string;
}

/** A reference whose target does not exist: Django raises `ValueError` "The file '…' could not be found with …". */
export class MissingTarget extends Error {
  constructor(readonly target: string) {
    super(`The file '${target}' could not be found`);
  }
}

/** Django's `hashed_name(name, content)`: `dir/root.<hash>.ext`, query and fragment kept. */
export function djangoHashedName(name: string, hash: string): string {
  const parsed = urlsplit(unquote(name));
  const clean = pyStrip(parsed.path);
  const slash = clean.lastIndexOf('/') + 1;
  let head = clean.slice(0, slash);
  if (head && head !== '/'.repeat(head.length)) head = head.replace(/\/+$/, '');
  const [root, ext] = splitext(clean.slice(slash));
  const file = `${root}${hash ? `.${hash}` : ''}${ext}`;
  const out = { ...parsed, path: head ? (head.endsWith('/') ? head + file : `${head}/${file}`) : file };
  if (name.includes('?#') && !out.query) out.path += '?';
  return urlunsplit(out);
}

/** `hashed_name(name)` with no content: hashes the file on disk, or raises for a missing one. */
function hashedNameFromDisk(name: string, tree: TreeLookup): string {
  const filename = pyStrip(urlsplit(unquote(name)).path);
  const resolved = normpath(filename);
  // Escaping the root makes Django's safe_join raise; either way there is no such file.
  if (resolved === '..' || resolved.startsWith('../') || resolved.startsWith('/')) throw new MissingTarget(filename);
  if (resolved === '.' || tree.isDirectory(resolved)) return name; // open() fails: "Handle directory paths"
  if (!tree.isFile(resolved)) throw new MissingTarget(filename);
  return djangoHashedName(name, tree.originalHash(resolved));
}

/** `_stored_name(name, hashed_files)`. */
function storedName(name: string, tree: TreeLookup): string {
  const normalized = normpath(name);
  const key = normalized.replace(/\\/g, '/');
  return tree.stored(key) ?? hashedNameFromDisk(normalized, tree).replace(/\\/g, '/');
}

/** `_url(self._stored_name, name, force=True, hashed_files=…)`. */
function djangoUrl(name: string, tree: TreeLookup): string {
  const [cleanName, fragment] = urldefrag(name);
  const hashed = urlsplit(cleanName).path.endsWith('/') ? name : storedName(cleanName, tree);
  let finalUrl = urljoin(tree.staticUrl, quoteFilepath(hashed.replace(/\\/g, '/')).replace(/^\/+/, ''));
  const queryFragment = name.includes('?#');
  if (fragment || queryFragment) {
    const parts = urlsplit(finalUrl);
    if (fragment && !parts.fragment) parts.fragment = fragment;
    if (queryFragment && !parts.query) parts.path += '?';
    finalUrl = urlunsplit(parts);
  }
  return unquote(finalUrl);
}

/**
 * `url_converter(name, hashed_files)(match)`'s decision for one URL: the rewritten URL, or
 * undefined where Django returns the match unchanged.
 * @throws MissingTarget where Django raises ValueError.
 */
export function convertUrl(fromName: string, url: string, tree: TreeLookup): string | undefined {
  if (/^[a-z]+:/.test(url) || url.startsWith('//')) return undefined;
  if (url.startsWith('/') && !url.startsWith(tree.staticUrl)) return undefined;
  const [urlPath, fragment] = urldefrag(url);
  if (!urlPath) return undefined;
  const target = urlPath.startsWith('/') ? urlPath.slice(tree.staticUrl.length) : join(dirname(fromName), urlPath);
  const hashedUrl = djangoUrl(unquote(target), tree);
  let transformed = [...urlPath.split('/').slice(0, -1), hashedUrl.split('/').pop()!].join('/');
  if (fragment) transformed += (url.includes('?#') ? '?#' : '#') + fragment;
  return unquote(transformed);
}

// ---------------------------------------------------------------------------------------
// The CSS scanner: where comments, strings and url() tokens are.

const CSS_WS = /[ \t\n\r\f]/;
const IDENT_CHAR = /[A-Za-z0-9_\-\u0080-\uffff]/;

/**
 * The spans of `text` (CSS) that are not code, as `[start, end)` pairs: comments, the
 * contents of strings and of unquoted `url(…)` tokens. Follows CSS Syntax Level 3: a `/*`
 * inside a string or a `url()` is not a comment, a quote inside a comment starts nothing,
 * escapes are honoured, and a newline ends a bad string.
 */
export function cssNonCodeRanges(text: string): number[] {
  const ranges: number[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      const end = close < 0 ? n : close + 2;
      ranges.push(i, end);
      i = end;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && text[j] !== c && text[j] !== '\n' && text[j] !== '\r' && text[j] !== '\f') j += text[j] === '\\' ? 2 : 1;
      ranges.push(i + 1, Math.min(j, n));
      i = text[j] === c ? j + 1 : j;
    } else if (c === '\\') {
      i += 2;
    } else if ((c === 'u' || c === 'U') && /^url\(/i.test(text.slice(i, i + 4)) && !(i > 0 && IDENT_CHAR.test(text[i - 1]!))) {
      let j = i + 4;
      while (j < n && CSS_WS.test(text[j]!)) j++;
      if (text[j] === '"' || text[j] === "'") {
        i = j; // a function token: its string argument is scanned as a string
        continue;
      }
      const start = j;
      while (j < n && text[j] !== ')') j += text[j] === '\\' ? 2 : 1;
      ranges.push(start, Math.min(j, n));
      i = j + 1;
    } else {
      i++;
    }
  }
  return ranges;
}

function inRanges(ranges: number[], pos: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (pos < ranges[mid * 2]!) hi = mid - 1;
    else if (pos >= ranges[mid * 2 + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** A reference Django would fail on. */
export interface UnresolvedReference {
  /** The URL as written. */
  reference: string;
  /** The name Django looked for. */
  target: string;
  /** 1-based line of the reference (in the text as it was when its pattern ran). */
  line: number;
}

/** What {@link rewriteReferences} did. */
export interface RewriteResult {
  text: string;
  /** Missing targets outside comments and strings (and in source-map comments). */
  missing: UnresolvedReference[];
}

/**
 * Applies Django's patterns for `name` to `text`, each over the previous one's output,
 * exactly as `HashedFilesMixin._post_process` does. A missing target leaves its match as
 * written; it is reported unless it sits in a CSS comment or string.
 */
export function rewriteReferences(name: string, text: string, tree: TreeLookup, jsModules: boolean): RewriteResult {
  const missing: UnresolvedReference[] = [];
  const css = name.endsWith('.css');
  for (const pattern of patternsFor(name, jsModules)) {
    let ranges: number[] | undefined;
    const current = text;
    text = current.replace(pattern.re, (...args: unknown[]) => {
      const matched = args[0] as string;
      const offset = args[pattern.groups.length + 2] as number;
      const groups: Record<string, string> = {};
      pattern.groups.forEach((g, k) => (groups[g] = (args[k + 2] as string | undefined) ?? ''));
      try {
        const url = convertUrl(name, groups.url!, tree);
        return url === undefined ? matched : pattern.template({ ...groups, url });
      } catch (error) {
        if (!(error instanceof MissingTarget)) throw error;
        if (css && !pattern.comment && inRanges((ranges ??= cssNonCodeRanges(current)), offset)) return matched;
        let line = 1;
        for (let k = current.indexOf('\n'); k >= 0 && k < offset; k = current.indexOf('\n', k + 1)) line++;
        missing.push({ reference: pyStrip(groups.url!), target: error.target, line });
        return matched;
      }
    });
  }
  return { text, missing };
}

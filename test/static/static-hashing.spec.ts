import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { buildManifest, forEachLimit, hashedName, hashTree, isContentHashed, parseManifest, type HashReader } from '../../lib/static-hashing.js';
import { convertUrl, cssNonCodeRanges, type TreeLookup } from '../../lib/static-references.js';

const md5 = (s: string | Buffer) => createHash('md5').update(s).digest('hex');

/** An in-memory tree for hashTree. */
function reader(tree: Record<string, string | Buffer>): HashReader & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    read: async (name) => {
      reads.push(name);
      return Buffer.from(tree[name]!);
    },
    md5: async (name) => {
      reads.push(name);
      return md5(Buffer.from(tree[name]!));
    },
  };
}

async function hashed(tree: Record<string, string | Buffer>) {
  const r = reader(tree);
  const { files, missing } = await hashTree(Object.keys(tree), r, { keep: isContentHashed });
  const stored = (name: string) => files.get(name)!.storedName;
  const body = (name: string) => files.get(name)!.body?.toString('latin1');
  return { files, missing, stored, body, reads: r.reads };
}

describe('hashedName (Django: name.<12 hex>.ext, extension as os.path.splitext)', () => {
  it('inserts the hash before the last extension', () => {
    expect(hashedName('css/app.css', '0123456789ab')).toBe('css/app.0123456789ab.css');
    expect(hashedName('css/app.css.map', '0123456789ab')).toBe('css/app.css.0123456789ab.map');
    expect(hashedName('a..b', '0123456789ab')).toBe('a..0123456789ab.b');
  });

  it('appends the hash when there is no extension (dot-files and dotted folders included)', () => {
    expect(hashedName('LICENSE', '0123456789ab')).toBe('LICENSE.0123456789ab');
    expect(hashedName('conf/.htaccess', '0123456789ab')).toBe('conf/.htaccess.0123456789ab');
    expect(hashedName('dir.x/file', '0123456789ab')).toBe('dir.x/file.0123456789ab');
    expect(hashedName('..b', '0123456789ab')).toBe('..b.0123456789ab');
  });
});

describe('isContentHashed (bundler output keeps its name)', () => {
  it.each(['assets/index-B4c9Xk2a.js', 'assets/logo-Dx_3k2ja.png', 'vendor-3f2a9c1b.css', 'assets/a-b-c-Diw0gTda.js'])('%s is bundler-hashed', (name) => {
    expect(isContentHashed(name)).toBe(true);
  });
  it.each([
    'app-settings.js',
    'css/app.css',
    'index-B4c9Xk2.js',
    'index-B4c9Xk2ab.js',
    'B4c9Xk2a.js',
    'x-B4c9Xk2a/app.js',
    'fonts/Poppins-SemiBold.woff2',
    'img/banner-20240101.png',
    'img/logo-v2_final.png',
  ])('%s is not', (name) => {
    expect(isContentHashed(name)).toBe(false);
  });
});

describe('cssNonCodeRanges (where comments and strings are)', () => {
  const spans = (css: string) => {
    const r = cssNonCodeRanges(css);
    return Array.from({ length: r.length / 2 }, (_, i) => css.slice(r[i * 2], r[i * 2 + 1]));
  };
  it('knows a /* inside a string opens no comment, and a quote inside a comment opens no string', () => {
    expect(spans('.x{content:"/*"}.a{background:url(a.png)}/* it\'s */.b{}')).toEqual(['/*', 'a.png', "/* it's */"]);
  });
  it('honours escapes, ends a bad string at a newline, and keeps /* inside an unquoted url()', () => {
    expect(spans('.a{content:"a\\"b"}')).toEqual(['a\\"b']);
    expect(spans('.a{content:"open\n.b{background:url(x/*y.png)}')).toEqual(['open', 'x/*y.png']);
    expect(spans('.a{background:url( "q.png" )}')).toEqual(['q.png']);
  });
});

describe('convertUrl (Django 5.2 url_converter)', () => {
  const tree: TreeLookup = {
    staticUrl: '/static/',
    stored: (n) => ({ 'img/a.png': 'img/a.0123456789ab.png', 'css/f.woff': 'css/f.ba9876543210.woff' })[n],
    isFile: (n) => ['img/a.png', 'css/f.woff'].includes(n),
    isDirectory: (n) => n === 'img' || n === 'css',
    originalHash: () => 'fedcba987654',
  };
  it('resolves relative and STATIC_URL paths and keeps the reference\'s own directory spelling', () => {
    expect(convertUrl('css/app.css', '../img/a.png', tree)).toBe('../img/a.0123456789ab.png');
    expect(convertUrl('css/app.css', '/static/img/a.png', tree)).toBe('/static/img/a.0123456789ab.png');
    expect(convertUrl('css/app.css', '../css/../img/a.png', tree)).toBe('../css/../img/a.0123456789ab.png');
  });
  it('keeps fragments and the ?#iefix hack; a query makes Django hash the file on disk', () => {
    expect(convertUrl('css/app.css', 'f.woff?#iefix', tree)).toBe('f.ba9876543210.woff?#iefix');
    expect(convertUrl('css/app.css', 'f.woff#x', tree)).toBe('f.ba9876543210.woff#x');
    expect(convertUrl('css/app.css', 'f.woff?v=1', tree)).toBe('f.fedcba987654.woff?v=1');
  });
  it('leaves what Django leaves: data:, http(s):, //, other root paths, fragment-only', () => {
    for (const url of ['data:image/png;base64,AA', 'https://cdn/x.png', '//cdn/x.png', '/media/x.png', '#icon']) {
      expect(convertUrl('css/app.css', url, tree)).toBeUndefined();
    }
  });
  it('throws MissingTarget naming the file Django looks for', () => {
    expect(() => convertUrl('css/app.css', 'gone.png', tree)).toThrow("The file 'css/gone.png' could not be found");
    expect(() => convertUrl('css/app.css', '../../escape.png', tree)).toThrow("The file '../escape.png' could not be found");
  });
});

describe('hashTree', () => {
  it('hashes plain files by content (md5, 12 hex) and rewrites CSS to the hashed names, as url("…"), keeping paths', async () => {
    const { stored, body, missing } = await hashed({
      'img/logo.png': 'PNG1',
      'css/app.css': "a{background:url('../img/logo.png?v=1#x')}\nb{background:url(https://cdn/x.png)}",
    });
    // md5("PNG1") starts 890af5194a6f (checked with Python's hashlib).
    expect(stored('img/logo.png')).toBe('img/logo.890af5194a6f.png');
    expect(body('css/app.css')).toBe('a{background:url("../img/logo.890af5194a6f.png?v=1#x")}\nb{background:url(https://cdn/x.png)}');
    // Hashed after rewriting: the name carries the md5 of the bytes actually stored.
    expect(stored('css/app.css')).toBe(`css/app.${md5(body('css/app.css')!).slice(0, 12)}.css`);
    expect(missing).toEqual([]);
  });

  it('changes the CSS hash when only a referenced image changes (dependency order, @import chains too)', async () => {
    const tree = (png: string) => ({
      'img/bg.png': png,
      'css/theme.css': '.t{background:url(../img/bg.png)}',
      'css/app.css': '@import "theme.css";\n',
      'css/unrelated.css': '.u{}',
    });
    const a = await hashed(tree('one'));
    const b = await hashed(tree('two'));
    expect(b.stored('img/bg.png')).not.toBe(a.stored('img/bg.png'));
    expect(b.stored('css/theme.css')).not.toBe(a.stored('css/theme.css'));
    expect(b.stored('css/app.css')).not.toBe(a.stored('css/app.css'));
    expect(b.stored('css/unrelated.css')).toBe(a.stored('css/unrelated.css'));
    expect(b.body('css/app.css')).toBe(`@import url("${b.stored('css/theme.css').slice('css/'.length)}");\n`);
  });

  it('rewrites sourceMappingURL in CSS and JS to the hashed map', async () => {
    const { stored, body } = await hashed({
      'js/app.js': 'console.log(1);\n//# sourceMappingURL=app.js.map\n',
      'js/app.js.map': '{"version":3}',
      'css/a.css': '.a{}\n/*# sourceMappingURL=a.css.map */',
      'css/a.css.map': '{"version":3,"x":1}',
    });
    expect(body('js/app.js')).toBe(`console.log(1);\n//# sourceMappingURL=${stored('js/app.js.map').slice(3)}\n`);
    expect(body('css/a.css')).toBe(`.a{}\n/*# sourceMappingURL=${stored('css/a.css.map').slice(4)} */`);
  });

  it('keeps the names the caller keeps, with their bytes, only taking their md5', async () => {
    const css = '.a{background:url(./logo-Dx3k2jaP.png)}';
    const { stored, files, reads } = await hashed({
      'assets/index-B4c9Xk2a.css': css,
      'assets/logo-Dx3k2jaP.png': 'png',
      'css/site.css': '.s{background:url(../assets/logo-Dx3k2jaP.png)}',
    });
    expect(stored('assets/index-B4c9Xk2a.css')).toBe('assets/index-B4c9Xk2a.css');
    expect(files.get('assets/index-B4c9Xk2a.css')!.body).toBeUndefined();
    expect(stored('assets/logo-Dx3k2jaP.png')).toBe('assets/logo-Dx3k2jaP.png');
    // md5 only (to tell a changed file behind the same name); never parsed or rewritten.
    expect([...reads].sort()).toEqual(['assets/index-B4c9Xk2a.css', 'assets/logo-Dx3k2jaP.png', 'css/site.css', 'css/site.css']);
    expect(files.get('assets/logo-Dx3k2jaP.png')!.md5).toBe(createHash('md5').update('png').digest('hex'));
    expect(stored('css/site.css')).toMatch(/^css\/site\.[0-9a-f]{12}\.css$/);
  });

  it('reports references to missing files and leaves them unchanged', async () => {
    const { files, missing } = await hashed({ 'css/app.css': '.a{background:url(gone.png)}' });
    // No body: the stored bytes are the file's own.
    expect(files.get('css/app.css')!.body).toBeUndefined();
    expect(files.get('css/app.css')!.storedName).toBe(`css/app.${md5('.a{background:url(gone.png)}').slice(0, 12)}.css`);
    expect(missing).toEqual([{ file: 'css/app.css', reference: 'gone.png', target: 'css/gone.png', line: 1 }]);
  });

  it('reports a missing url() after content:"/*" (a string, not a comment), but not one inside a real comment', async () => {
    const { missing } = await hashed({ 'css/app.css': '.x:before{content:"/*"}\n.a{background:url(gone.png)}\n/* url(old.png) */\n' });
    expect(missing).toEqual([{ file: 'css/app.css', reference: 'gone.png', target: 'css/gone.png', line: 2 }]);
  });

  it('names the members of an @import cycle from the whole cycle, so a change in one renames both', async () => {
    const tree = (extra: string) => ({ 'a.css': `@import "b.css";${extra}`, 'b.css': '@import "a.css";' });
    const one = await hashed(tree(''));
    const two = await hashed(tree('.x{}'));
    expect(one.body('a.css')).toBe(`@import url("${one.stored('b.css')}");`);
    expect(one.body('b.css')).toBe(`@import url("${one.stored('a.css')}");`);
    expect(two.stored('a.css')).not.toBe(one.stored('a.css'));
    expect(two.stored('b.css')).not.toBe(one.stored('b.css'));
  });

  it('rewrites byte-exactly in non-UTF-8 files (Django fails on them) and resolves %-encoded UTF-8 names', async () => {
    const latin1Css = Buffer.concat([Buffer.from('/* caf'), Buffer.from([0xe9]), Buffer.from(' */.a{background:url(caf%C3%A9.png)}')]);
    const { body, stored } = await hashed({ 'css/a.css': latin1Css, 'css/café.png': 'x' });
    const out = Buffer.from(body('css/a.css')!, 'latin1');
    expect(out.subarray(0, 10)).toEqual(latin1Css.subarray(0, 10));
    // Django unquote()s the URL it writes: the name comes out decoded, here as a latin1 é.
    expect(out.toString('latin1')).toContain(`url("${stored('css/café.png').slice(4)}")`);
  });
});

describe('manifest', () => {
  it('is Django-compatible: sorted paths, version 1.1, hash of json.dumps(sorted(items)) (checked with Python)', () => {
    const { manifest, body } = buildManifest({
      'img/logo.png': 'img/logo.890af5194a6f.png',
      'fonts/é.woff': 'fonts/é.0123456789ab.woff',
      'css/app.css': 'css/app.3ba9a0d88bf1.css',
    });
    expect(manifest.hash).toBe('35fd2c31a33f');
    expect(manifest.version).toBe('1.1');
    expect(Object.keys(manifest.paths)).toEqual(['css/app.css', 'fonts/é.woff', 'img/logo.png']);
    expect(JSON.parse(body.toString('utf8'))).toEqual(manifest);
  });

  it('parses versions 1.0 and 1.1 and rejects anything else with the reason', () => {
    expect(parseManifest('{"paths":{"a.css":"a.1.css"},"version":"1.0"}')).toEqual({ 'a.css': 'a.1.css' });
    expect(() => parseManifest('{nope')).toThrow(/not valid JSON/);
    expect(() => parseManifest('[]')).toThrow('it is not a JSON object');
    expect(() => parseManifest('{"paths":{},"version":"2"}')).toThrow('its version is "2"; expected "1.0" or "1.1"');
    expect(() => parseManifest('{"paths":[],"version":"1.1"}')).toThrow('its "paths" is not an object');
    expect(() => parseManifest('{"paths":{"a":1},"version":"1.1"}')).toThrow('its entry for "a" is not a string');
  });
});

describe('forEachLimit', () => {
  it('never runs more than the limit at once and throws the first failure', async () => {
    let running = 0;
    let peak = 0;
    await forEachLimit([...Array(20).keys()], 3, async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
    });
    expect(peak).toBe(3);
    await expect(
      forEachLimit([1, 2, 3], 2, async (n) => {
        if (n === 2) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });
});

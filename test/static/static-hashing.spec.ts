import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import {
  buildManifest,
  findReferences,
  forEachLimit,
  hashedName,
  hashTree,
  isContentHashed,
  parseManifest,
  resolveReference,
  type HashReader,
} from '../../lib/static-hashing.js';

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

describe('findReferences / resolveReference', () => {
  it('finds url() in its three spellings, @import strings and the source map comment, ignoring other comments', () => {
    const css = [
      'a{background:url(img/a.png)}',
      "b{background:url( 'img/b.png' )}",
      'c{background:url("img/c.png")}',
      '@import "base.css";',
      "@import url('print.css') print;",
      '/* d{background:url(img/commented.png)} */',
      '/*# sourceMappingURL=app.css.map */',
    ].join('\n');
    expect(findReferences('css/app.css', css).map((r) => [r.kind, r.url])).toEqual([
      ['url', 'img/a.png'],
      ['url', 'img/b.png'],
      ['url', 'img/c.png'],
      ['import', 'base.css'],
      ['url', 'print.css'],
      ['sourcemap', 'app.css.map'],
    ]);
  });

  it('finds only the source map comment in JS', () => {
    const js = 'const u = "url(x.png)";\n//# sourceMappingURL=app.js.map\n';
    expect(findReferences('app.js', js).map((r) => r.url)).toEqual(['app.js.map']);
  });

  it('resolves relative paths, keeps query and fragment, and skips what is not a file of the tree', () => {
    expect(resolveReference('css/app.css', '../img/a.png')).toEqual({ target: 'img/a.png', path: '../img/a.png', suffix: '' });
    expect(resolveReference('css/app.css', 'fonts/f.woff?#iefix')).toMatchObject({ target: 'css/fonts/f.woff', suffix: '?#iefix' });
    expect(resolveReference('css/app.css', 'my%20img.png')?.target).toBe('css/my img.png');
    for (const url of ['data:image/png;base64,AA', 'https://cdn/x.png', '//cdn/x.png', '#icon', '/static/x.png', '../../escape.png', '']) {
      expect(resolveReference('css/app.css', url)).toBeUndefined();
    }
  });
});

describe('hashTree', () => {
  it('hashes plain files by content (md5, 12 hex) and rewrites CSS to the hashed names, keeping quotes and paths', async () => {
    const { stored, body, missing } = await hashed({
      'img/logo.png': 'PNG1',
      'css/app.css': 'a{background:url("../img/logo.png?v=1#x")}\nb{background:url(https://cdn/x.png)}',
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
    expect(b.body('css/app.css')).toBe(`@import "${b.stored('css/theme.css').slice('css/'.length)}";\n`);
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

  it('keeps bundler-hashed files under their own names and bytes, only taking their md5', async () => {
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
    expect([...reads].sort()).toEqual(['assets/index-B4c9Xk2a.css', 'assets/logo-Dx3k2jaP.png', 'css/site.css']);
    expect(files.get('assets/logo-Dx3k2jaP.png')!.md5).toBe(createHash('md5').update('png').digest('hex'));
    expect(stored('css/site.css')).toMatch(/^css\/site\.[0-9a-f]{12}\.css$/);
  });

  it('reports references to missing files and leaves them unchanged', async () => {
    const { body, missing } = await hashed({ 'css/app.css': '.a{background:url(gone.png)}' });
    expect(body('css/app.css')).toBe('.a{background:url(gone.png)}');
    expect(missing).toEqual([{ file: 'css/app.css', reference: 'gone.png' }]);
  });

  it('names the members of an @import cycle from the whole cycle, so a change in one renames both', async () => {
    const tree = (extra: string) => ({ 'a.css': `@import "b.css";${extra}`, 'b.css': '@import "a.css";' });
    const one = await hashed(tree(''));
    const two = await hashed(tree('.x{}'));
    expect(one.body('a.css')).toBe(`@import "${one.stored('b.css')}";`);
    expect(one.body('b.css')).toBe(`@import "${one.stored('a.css')}";`);
    expect(two.stored('a.css')).not.toBe(one.stored('a.css'));
    expect(two.stored('b.css')).not.toBe(one.stored('b.css'));
  });

  it('rewrites byte-exactly in non-UTF-8 files and resolves UTF-8 names', async () => {
    const latin1Css = Buffer.concat([Buffer.from('/* caf'), Buffer.from([0xe9]), Buffer.from(' */.a{background:url(caf%C3%A9.png)}')]);
    const { body, stored } = await hashed({ 'css/a.css': latin1Css, 'css/café.png': 'x' });
    const out = Buffer.from(body('css/a.css')!, 'latin1');
    expect(out.subarray(0, 10)).toEqual(latin1Css.subarray(0, 10));
    expect(out.toString('latin1')).toContain(`url(${encodeURI(stored('css/café.png').slice(4))})`);
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

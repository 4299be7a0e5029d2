/**
 * Pure parts of the collect pipeline: the `keepNames` glob matcher, `static.url` (Django's
 * STATIC_URL) validation and defaults, and the `STATIC_URL` variable.
 */
import { describe, expect, it } from '@jest/globals';
import { globToRegExp } from '../../lib/static-local-files.js';
import { storageOptionsFromEnv } from '../../lib/storage-env.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';

const matches = (glob: string, name: string) => globToRegExp(glob).test(name);

describe('keepNames globs', () => {
  it('** spans directories (also none), * and ? stay within one segment', () => {
    expect(matches('assets/**', 'assets/a.js')).toBe(true);
    expect(matches('assets/**', 'assets/deep/b/c.js')).toBe(true);
    expect(matches('assets/**', 'assetsx/a.js')).toBe(false);
    expect(matches('**/*.woff2', 'a.woff2')).toBe(true);
    expect(matches('**/*.woff2', 'fonts/x/a.woff2')).toBe(true);
    expect(matches('assets/*.js', 'assets/deep/a.js')).toBe(false);
    expect(matches('img/?.png', 'img/a.png')).toBe(true);
    expect(matches('img/?.png', 'img/ab.png')).toBe(false);
  });

  it('knows {a,b} and [ab] / [!ab], and takes everything else literally', () => {
    expect(matches('{js,css}/**', 'css/a.css')).toBe(true);
    expect(matches('{js,css}/**', 'img/a.png')).toBe(false);
    expect(matches('v[12]/*', 'v2/a')).toBe(true);
    expect(matches('v[!12]/*', 'v2/a')).toBe(false);
    expect(matches('a.b(c)+$.js', 'a.b(c)+$.js')).toBe(true);
    expect(matches('a.js', 'aXjs')).toBe(false);
  });

  it('[!a] never matches "/", a leading ] is literal in a class, \\x escapes, a leading ./ or / is ignored, names are matched as Unicode', () => {
    expect(matches('a[!x]b', 'a/b')).toBe(false);
    expect(matches('a[!x]b', 'acb')).toBe(true);
    expect(matches('[]x]', ']')).toBe(true);
    expect(matches('[]x]', 'x')).toBe(true);
    expect(matches('[!]]', ']')).toBe(false);
    expect(matches('[!]]', 'a')).toBe(true);
    expect(matches('a\\*.js', 'a*.js')).toBe(true);
    expect(matches('a\\*.js', 'ab.js')).toBe(false);
    expect(matches('[\\]]', ']')).toBe(true);
    expect(matches('v[\\-1]', 'v-')).toBe(true);
    expect(matches('v[\\-1]', 'v0')).toBe(false);
    expect(matches('./assets/**', 'assets/a.js')).toBe(true);
    expect(matches('/assets/*.js', 'assets/a.js')).toBe(true);
    expect(matches('img/?.png', 'img/😀.png')).toBe(true);
    expect(matches('[a-c].txt', 'b.txt')).toBe(true);
  });

  it('refuses an unclosed brace with a configuration error naming the glob', () => {
    expect(() => globToRegExp('{a,b')).toThrow(StorageConfigurationError);
    expect(() => globToRegExp('{a,b')).toThrow('keepNames: the glob "{a,b" has an unclosed "{"');
  });
});

describe('static.url', () => {
  const resolve = (st: Record<string, unknown>) => resolveStorageOptions({ media: { bucket: 'media' }, static: { bucket: 'assets', ...st } }).static!;

  it('defaults to /<location>/ (/ at the bucket root), as STATIC_URL stands for the location', () => {
    expect(resolve({}).url).toBe('/static/');
    expect(resolve({ location: 'assets/v2' }).url).toBe('/assets/v2/');
    expect(resolve({ location: '' }).url).toBe('/');
    expect(resolve({ url: 'https://cdn.example.com/static/' }).url).toBe('https://cdn.example.com/static/');
  });

  it('must end in "/", like Django\'s STATIC_URL', () => {
    expect(() => resolve({ url: '/static' })).toThrow('static.url: must be a path or absolute URL ending in "/"');
    expect(() => resolve({ url: 'static/' })).toThrow('static.url: must be a path or absolute URL ending in "/"');
  });

  it('is read from STATIC_URL', () => {
    expect(storageOptionsFromEnv({ AWS_STORAGE_BUCKET_NAME: 'assets', STATIC_URL: '/s/' }).static?.url).toBe('/s/');
  });
});

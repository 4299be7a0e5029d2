import { describe, expect, it } from '@jest/globals';
import { alternativeName, fromKey, normalizeName, normalizePrefix, toKey } from '../../lib/key-normalizer.js';
import { InvalidKeyError, StorageError } from '../../lib/storage.errors.js';

describe('normalizeName', () => {
  it.each([
    ['a.png', 'a.png'],
    ['/a.png', 'a.png'],
    ['//x//y.png', 'x/y.png'],
    ['./x/./y.png', 'x/y.png'],
    ['x\\y\\z.png', 'x/y/z.png'],
    ['x/../y.png', 'y.png'],
    ['x/y/../../z.png', 'z.png'],
    ['dir/', 'dir'],
    ['with space/ü+%#?~.png', 'with space/ü+%#?~.png'],
    ['cafe\u0301.png', 'caf\u00e9.png'], // NFD → NFC
  ])('%j → %j', (input, expected) => {
    expect(normalizeName(input)).toBe(expected);
  });

  it.each([
    ['', 'it is empty once slashes and dots are removed'],
    ['/', 'it is empty once slashes and dots are removed'],
    ['./.', 'it is empty once slashes and dots are removed'],
    ['..', "it escapes the storage location with '..'"],
    ['../etc/passwd', "it escapes the storage location with '..'"],
    ['a/../../b', "it escapes the storage location with '..'"],
    ['..\\windows', "it escapes the storage location with '..'"],
    ['a\u0000b', 'it contains a control character (NUL, newline, tab, …)'],
    ['a\nb', 'it contains a control character (NUL, newline, tab, …)'],
    ['a\u007fb', 'it contains a control character (NUL, newline, tab, …)'],
    ['a\u2028b', 'it contains a control character (NUL, newline, tab, …)'],
    ['a\ud800.png', 'it contains an unpaired UTF-16 surrogate (not valid Unicode)'],
  ])('rejects %j', (input, reason) => {
    const error = captureError(() => normalizeName(input));
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as InvalidKeyError).reason).toBe(reason);
    expect((error as InvalidKeyError).code).toBe('STORAGE_INVALID_KEY');
  });

  it('rejects non-strings with a typed error', () => {
    expect(() => normalizeName(42)).toThrow(InvalidKeyError);
    expect(() => normalizeName(undefined)).toThrow('a name must be a string, got undefined');
  });
});

describe('toKey / fromKey', () => {
  it('joins the location and strips it back', () => {
    expect(toKey('media', 'a/b.png')).toBe('media/a/b.png');
    expect(toKey('', 'a/b.png')).toBe('a/b.png');
    expect(fromKey('media', 'media/a/b.png')).toBe('a/b.png');
    expect(fromKey('', 'a/b.png')).toBe('a/b.png');
  });

  it('rejects keys over 1,024 bytes of UTF-8, counting the location', () => {
    expect(toKey('', 'a'.repeat(1024))).toHaveLength(1024);
    expect(() => toKey('', 'a'.repeat(1025))).toThrow('the key is 1025 bytes long; S3 allows at most 1024');
    expect(Buffer.byteLength(toKey('m', 'é'.repeat(511)))).toBe(1024); // 'm/' + 1,022 bytes
    expect(() => toKey('mm', 'é'.repeat(511))).toThrow('the key is 1025 bytes long');
  });
});

describe('normalizePrefix', () => {
  it('keeps a trailing slash and allows the empty prefix', () => {
    expect(normalizePrefix(undefined)).toBe('');
    expect(normalizePrefix('')).toBe('');
    expect(normalizePrefix('/')).toBe('');
    expect(normalizePrefix('avatars/')).toBe('avatars/');
    expect(normalizePrefix('/avatars')).toBe('avatars');
    expect(() => normalizePrefix('../x/')).toThrow(InvalidKeyError);
  });
});

describe('alternativeName', () => {
  const fixed = (n: number): Buffer => Buffer.alloc(n, 0);
  it('adds a suffix before the extension, in the same folder', () => {
    expect(alternativeName('dir/photo.png', fixed)).toBe('dir/photo_AAAAAAAA.png');
    expect(alternativeName('README', fixed)).toBe('README_AAAAAAAA');
    expect(alternativeName('.env', fixed)).toBe('.env_AAAAAAAA');
    expect(alternativeName('a.tar.gz', fixed)).toBe('a.tar_AAAAAAAA.gz');
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

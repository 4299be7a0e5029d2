/**
 * Both builds in one process (an ESM app whose CommonJS dependency requires the package):
 * an error made by either copy is `instanceof` the error classes of both, and the DI tokens
 * behave as the README says. Plain Node runs the real thing (jest cannot `require` Nest 12);
 * under jest the error module itself, which imports nothing, is loaded twice.
 * Needs `npm run build` first (`npm test` does it).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as lib from '../../lib/storage.errors.js';
import { deleteTestBucket, s3, uniqueBucket } from '../harness/s3-test-env.js';

const ROOT = resolve('.');
const run = promisify(execFile);

type ErrorModule = typeof lib;
type ErrorClass = abstract new (...args: never[]) => Error;

/** Every class the module exports (all derive from Error). */
function errorClasses(m: ErrorModule): [string, ErrorClass][] {
  return (Object.entries(m) as [string, unknown][]).filter(
    (e): e is [string, ErrorClass] => typeof e[1] === 'function' && (e[1] as { prototype?: unknown }).prototype instanceof Error,
  );
}

function samples(m: ErrorModule): Record<string, Error> {
  return {
    StorageError: new m.StorageError('x'),
    StorageConfigurationError: new m.StorageConfigurationError(['a: b']),
    InvalidKeyError: new m.InvalidKeyError('n', 'r'),
    ObjectNotFoundError: new m.ObjectNotFoundError({ key: 'k', bucket: 'b' }),
    BucketBootstrapError: new m.BucketBootstrapError('missing', 'd', { bucket: 'b' }),
    StorageOperationError: new m.StorageOperationError('op', 'd', { bucket: 'b' }),
    StorageTimeoutError: new m.StorageTimeoutError('op', 'd', { bucket: 'b' }),
    StorageAbortedError: new m.StorageAbortedError('op', 'd', { bucket: 'b' }),
    UploadRejectedError: new m.UploadRejectedError('empty', 'm'),
    ManifestError: new m.ManifestError('missing-entry', 'm'),
    InvalidBodyError: new m.InvalidBodyError('m'),
    CollectStaticError: new m.CollectStaticError('missing-reference', 'm', [{ file: 'a.css', reference: 'b.png' }]),
  };
}

describe('error classes across copies, under jest', () => {
  const copies: [string, ErrorModule][] = [['lib (ts-jest)', lib]];
  const cjsPath = resolve(ROOT, 'dist/cjs/storage.errors.js');
  const esmPath = resolve(ROOT, 'dist/esm/storage.errors.js');

  it('loads the module from the CJS and ESM builds as distinct copies', async () => {
    if (!existsSync(cjsPath) || !existsSync(esmPath)) throw new Error('dist/ is missing: run "npm run build" first');
    copies.push(['dist/cjs', createRequire(import.meta.url)(cjsPath) as ErrorModule]);
    copies.push(['dist/esm', (await import(pathToFileURL(esmPath).href)) as ErrorModule]);
    expect(new Set(copies.map(([, m]) => m.StorageError)).size).toBe(3);
  });

  it('samples every exported error class', () => {
    expect(Object.keys(samples(lib)).sort()).toEqual(errorClasses(lib).map(([name]) => name).sort());
  });

  it('an instance from any copy is instanceof exactly the classes it is within its own copy, in every copy', () => {
    const answers: Record<string, boolean> = {};
    const truth: Record<string, boolean> = {};
    for (const [maker, made] of copies) {
      const instances = samples(made);
      for (const [checker, checking] of copies) {
        for (const [instanceName, instance] of Object.entries(instances)) {
          for (const [className, cls] of errorClasses(checking)) {
            const label = `${maker} ${instanceName} instanceof ${checker} ${className}`;
            answers[label] = instance instanceof cls;
            truth[label] = instance instanceof errorClasses(made).find(([n]) => n === className)![1];
          }
          expect(instance).toBeInstanceOf(Error);
        }
      }
    }
    const n = errorClasses(lib).length;
    expect(Object.keys(answers)).toHaveLength(3 * 3 * n * n);
    expect(answers).toEqual(truth);
    // Each of the 9 (maker, checker) pairs: every class is itself, every subclass a StorageError,
    // and StorageTimeoutError and StorageAbortedError are StorageOperationErrors.
    expect(Object.values(truth).filter(Boolean).length).toBe(9 * (n + (n - 1) + 2));
  });

  it('keeps ordinary semantics for a subclass a user writes', () => {
    class QuotaError extends lib.StorageConfigurationError {}
    const quota = new QuotaError(['quota: exceeded']);
    for (const [, m] of copies) {
      expect(quota).toBeInstanceOf(m.StorageConfigurationError);
      expect(quota).toBeInstanceOf(m.StorageError);
      expect(new m.StorageConfigurationError(['x']) instanceof QuotaError).toBe(false);
      expect(new m.StorageError('x') instanceof QuotaError).toBe(false);
    }
    for (const value of [null, undefined, 0, 'StorageError', {}, new Error('plain'), Object.create(null)]) {
      expect(copies.some(([, m]) => value instanceof m.StorageError)).toBe(false);
    }
  });
});

describe('both builds in one plain Node process (Nest 12, require(esm))', () => {
  const bucket = uniqueBucket('dual');
  afterAll(() => deleteTestBucket(bucket));

  it('errors made or thrown by either build are instanceof both; Symbol.for tokens are shared, class tokens are not', async () => {
    const { stdout } = await run(process.execPath, ['--disable-warning=ExperimentalWarning', 'test/package/fixtures/dual-build.mjs', ROOT], {
      env: { ...process.env, DUAL_BUCKET: bucket, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', S3_TEST_ENDPOINT: s3.endpoint, S3_TEST_REGION: s3.region, S3_TEST_ACCESS_KEY: s3.accessKeyId, S3_TEST_SECRET_KEY: s3.secretAccessKey },
      timeout: 60_000,
    });
    const report = JSON.parse(stdout) as {
      sameClass: boolean;
      exportedErrorClasses: string[];
      classes: Record<string, { got: boolean; truth: boolean }>;
      thrown: Record<string, unknown[]>;
      userSubclass: Record<string, boolean[]>;
      tokens: Record<string, boolean>;
    };
    expect(report.sameClass).toBe(false); // really two copies
    expect(report.exportedErrorClasses).toEqual(errorClasses(lib).map(([name]) => name).sort());
    const wrong = Object.entries(report.classes).filter(([, v]) => v.got !== v.truth).map(([k]) => k);
    expect(wrong).toEqual([]);
    const n = errorClasses(lib).length;
    expect(Object.keys(report.classes)).toHaveLength(2 * 2 * n * n + 2 * n);
    expect(report.thrown).toEqual({
      'esm configuration error': [true, true, false],
      'esm invalid key': [true, true, false],
      'cjs configuration error': [true, true, false],
      'cjs invalid key': [true, true, false],
      'esm read of a missing object': [true, true, 'ObjectNotFoundError'],
    });
    expect(report.userSubclass).toEqual({ subclassIsBaseOfBoth: [true, true], baseIsNotSubclass: [false, false], plainValuesAreNot: [false, false, false, false, false, false] });
    // What the README says: MediaStorage is a class token, so the other build's class finds nothing.
    expect(report.tokens).toEqual({ esmMediaStorage: true, cjsMediaStorage: false, cjsMediaClientSymbol: true, cjsOptionsSymbol: true });
  });
});

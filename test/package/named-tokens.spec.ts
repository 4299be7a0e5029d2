/**
 * A named storage's tokens are strings, the same in the ESM and the CommonJS build: an app
 * holding both builds finds the storage one build provides with the other's
 * `getStorageToken(name)`. Plain Node runs it (jest cannot `require` Nest 12), as in
 * dual-build.spec.ts. Needs `npm run build` first (`npm test` does it).
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { s3 } from '../harness/s3-test-env.js';

const ROOT = resolve('.');
const run = promisify(execFile);

describe('named storage tokens across both builds (plain Node)', () => {
  it('getStorageToken(name) and the client/options tokens are equal strings in dist/esm and dist/cjs, and find the other build\'s storage', async () => {
    const { stdout } = await run(process.execPath, ['--disable-warning=ExperimentalWarning', 'test/package/fixtures/named-tokens.mjs', ROOT], {
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', S3_TEST_ENDPOINT: s3.endpoint, S3_TEST_REGION: s3.region, S3_TEST_ACCESS_KEY: s3.accessKeyId, S3_TEST_SECRET_KEY: s3.secretAccessKey },
      timeout: 60_000,
    });
    const report = JSON.parse(stdout) as Record<string, unknown>;
    const tokens = ['nestjs-s3-storage:storage:invoices', 'nestjs-s3-storage:media-s3-client:invoices', 'nestjs-s3-storage:options:invoices'];
    expect(report).toEqual({
      tokens: { esm: tokens, cjs: tokens },
      unnamedIsClass: [true, true],
      foundWithCjsToken: true,
      sameInstance: true,
      clientWithCjsToken: true,
      optionsBucketWithCjsToken: 'nss3-named-tokens',
      keyThroughCjsToken: 'a.txt',
    });
  });
});

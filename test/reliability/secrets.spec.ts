/**
 * The secret key never leaks. Each error path (bad config, unreachable endpoint, wrong
 * credentials, stalled server, bad keys, 4xx/5xx HTTP answers) runs with a known secret,
 * while every write to stdout/stderr and console is captured; the secret must appear in no
 * log line, error message, stack, `util.inspect(error, { depth: 10 })`, JSON of the error,
 * nor in any HTTP response head or body.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { StorageError } from '../../lib/storage.errors.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';
import { StorageModule } from '../../lib/storage.module.js';
import { createTestBucket, deleteTestBucket, itRequires, mediaOptions, s3 } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp } from '../sample-app/app-fixture.js';
import { png } from '../sample-app/images.js';
import { FaultProxy } from './fault-proxy.js';
import { multipart, rawRequest } from './http-raw.js';

/** A wrong but well-formed secret, and the real one the server knows: neither may show. */
const KNOWN_SECRET = `nss3KnownSecret${randomBytes(12).toString('hex')}`;
const SECRETS = [KNOWN_SECRET, s3.secretAccessKey];
let bucket: string;
let proxy: FaultProxy;
const captured: string[] = [];
const restore: (() => void)[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('rel-secrets');
  proxy = await FaultProxy.start(s3.endpoint);
  // Everything written anywhere during this file: Nest's ConsoleLogger writes to the streams.
  // Kept, not printed: the error paths would fill the CI log.
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      captured.push(String(chunk));
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as typeof stream.write;
    restore.push(() => (stream.write = write));
  }
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[method];
    console[method] = (...args: unknown[]) => {
      captured.push(args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 10 }))).join(' '));
    };
    restore.push(() => (console[method] = original));
  }
});
afterAll(async () => {
  for (const undo of restore) undo();
  await proxy?.close();
  await deleteTestBucket(bucket);
});

/** Every way an error could be shown to someone. */
function renderings(error: unknown): string {
  const e = error as Error;
  return [String(e), e.message, e.stack, inspect(e, { depth: 10 }), JSON.stringify(e), JSON.stringify((e as { cause?: unknown }).cause ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))].join('\n');
}

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) expect(text.includes(secret)).toBe(false);
}

const errors: [string, unknown][] = [];

/** Runs `work`, expecting a StorageError; keeps it for the checks. Also logs it, as an app would. */
async function failing(label: string, work: () => Promise<unknown>): Promise<void> {
  const error = await work().then(() => undefined, (e: unknown) => e);
  expect([label, error]).toEqual([label, expect.any(Error)]);
  errors.push([label, error]);
  new Logger('secrets-test').error(error as Error);
}

async function module(options: StorageModuleOptions) {
  const moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot(options)] }).compile();
  return moduleRef;
}

// Wrong credentials must be refused for their errors to be checked.
itRequires('signatures', 'bad configuration, unreachable, wrong credentials, stalled, bad keys: no error and no log line holds the secret', async () => {
  const creds = { accessKeyId: s3.accessKeyId, secretAccessKey: KNOWN_SECRET };
  await failing('bad config', () =>
    module({ media: { bucket: 'Not_A_Bucket!', endpoint: 'ftp//nowhere', credentials: { accessKeyId: '', secretAccessKey: KNOWN_SECRET }, maxAttempts: -1, timeout: -5 } }),
  );
  await failing('secret in the endpoint URL', () =>
    module({ media: { bucket, endpoint: `http://${s3.accessKeyId}:${KNOWN_SECRET}@127.0.0.1:${proxy.port}`, credentials: creds, maxAttempts: 0 } }),
  );

  await proxy.refuse();
  try {
    await failing('unreachable at start-up', async () => (await module({ media: mediaOptions(bucket, { endpoint: proxy.endpoint, credentials: creds }), bootstrapTimeout: 2000 })).init());
    const offline = await module({ media: mediaOptions(bucket, { endpoint: proxy.endpoint, credentials: creds }), ensureBucket: 'off' });
    await offline.init();
    const { MediaStorage } = await import('../../lib/media.storage.js');
    await failing('unreachable save', () => offline.get(MediaStorage).save('a.txt', 'x'));
    await offline.close();
  } finally {
    await proxy.pass();
  }

  await failing('wrong credentials at start-up', async () => (await module({ media: mediaOptions(bucket, { credentials: creds }) })).init());
  const wrong = await module({ media: mediaOptions(bucket, { credentials: creds }), ensureBucket: 'off' });
  await wrong.init();
  const { MediaStorage } = await import('../../lib/media.storage.js');
  const denied = wrong.get(MediaStorage);
  await failing('wrong credentials save', () => denied.save('a.txt', 'x'));
  await failing('wrong credentials read', () => denied.read('a.txt'));
  await failing('wrong credentials list', async () => {
    for await (const entry of denied.list()) return entry;
    return undefined;
  });
  await failing('bad key', () => denied.save('../../etc/passwd', 'x'));
  await wrong.close();

  const stalled = await module({ media: mediaOptions(bucket, { endpoint: proxy.endpoint, credentials: creds, timeout: 800 }), ensureBucket: 'off' });
  await stalled.init();
  proxy.stall();
  try {
    await failing('stalled stat', () => stalled.get(MediaStorage).stat('a.txt'));
  } finally {
    await proxy.pass();
  }
  await stalled.close();

  // The paths really failed the way the labels say, as typed errors.
  expect(errors.map(([label, e]) => [label, e instanceof StorageError])).toEqual(errors.map(([label]) => [label, true]));
  for (const [label, error] of errors) {
    const text = renderings(error);
    expect([label, text.includes(KNOWN_SECRET) || text.includes(s3.secretAccessKey)]).toEqual([label, false]);
  }
  // The capture works (each error was logged), and nothing captured holds the secret.
  const log = captured.join('\n');
  expect(log).toMatch(/access denied/);
  expectNoSecret(log);
});

itRequires('signatures', '4xx and 5xx answers of the sample app, and its logs, never hold the secret', async () => {
  const before = captured.length;
  const responses: string[] = [];
  // The real secret, so uploads work; then the app with a wrong one, for 5xx paths.
  for (const secret of [s3.secretAccessKey, KNOWN_SECRET]) {
    const app = await startSampleApp({ ...mediaEnv(bucket), MEDIA_S3_SECRET_KEY: secret, STORAGE_ENSURE_BUCKET: 'off' });
    const port = Number(new URL(app.baseUrl).port);
    const { body, contentType } = multipart([{ field: 'avatar', filename: 'a.png', contentType: 'image/png', data: png(8) }]);
    const text = multipart([{ field: 'avatar', filename: 'a.png', contentType: 'image/png', data: 'not an image' }]);
    const answers = await Promise.all([
      rawRequest(port, 'POST', '/users/ok/avatar', { 'Content-Type': contentType, 'Content-Length': String(body.length) }, body),
      rawRequest(port, 'POST', '/users/ok/avatar', { 'Content-Type': text.contentType, 'Content-Length': String(text.body.length) }, text.body),
      rawRequest(port, 'POST', '/users/..%2F..%2Fetc/avatar', { 'Content-Type': contentType, 'Content-Length': String(body.length) }, body),
      rawRequest(port, 'GET', '/users/nobody-here/avatar?format=json', {}),
      rawRequest(port, 'GET', '/health', {}),
    ]);
    await app.close();
    const statuses = answers.map((a) => a.status);
    // The real secret: 201, 415, 400, 404, 200; the wrong one: every storage call is denied.
    expect(statuses).toEqual(secret === KNOWN_SECRET ? [503, 415, 400, 503, 503] : [201, 415, 400, 404, 200]);
    responses.push(...answers.map((a) => a.text));
  }
  for (const text of responses) expectNoSecret(text);
  const log = captured.slice(before).join('\n');
  // The 503s were logged for the operator (so the capture saw the app's logger), without the secret.
  expect(log).toMatch(/-> 503/);
  expectNoSecret(log);
});

it('signed URLs carry the access key id and a signature, never the secret', async () => {
  const moduleRef = await module({ media: mediaOptions(bucket), ensureBucket: 'off' });
  await moduleRef.init();
  const { MediaStorage } = await import('../../lib/media.storage.js');
  const storage = moduleRef.get(MediaStorage);
  const url = await storage.url('any/name.png', { downloadAs: 'ä.png' });
  const post = await storage.createUpload({ maxBytes: 1024 });
  await moduleRef.close();
  expect(url).toContain(`X-Amz-Credential=${s3.accessKeyId}`);
  expectNoSecret(url);
  expectNoSecret(JSON.stringify(post));
});

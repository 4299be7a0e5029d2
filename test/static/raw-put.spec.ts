/**
 * collectstatic's PutObject without the SDK (lib/raw-put.ts): the server verifies its
 * header signature (a wrong secret is refused), a session token, the key encoding, the
 * Content-MD5 check, and the stored metadata; clients it cannot speak for keep the SDK.
 */
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSessionTokenCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawPutter, RawS3Error } from '../../lib/raw-put.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { createTestBucket, deleteTestBucket, itRequires, rawClient, s3, skipWithReason } from '../harness/s3-test-env.js';
import { countRequests, staticOptions } from './static-fixtures.js';

// Whether the server issues session credentials decides, at load time, whether that test runs.
let stsProblem: string | undefined;
const sts = new STSClient({ endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, maxAttempts: 1 });
const session = await sts
  .send(new GetSessionTokenCommand({ DurationSeconds: 900 }))
  .then((out) => out.Credentials)
  .catch((error: unknown) => {
    stsProblem = `${(error as Error).name} (HTTP ${(error as RawS3Error).$metadata?.httpStatusCode ?? '?'})`;
    return undefined;
  })
  .finally(() => sts.destroy());

function itSts(name: string, fn: () => Promise<void>): void {
  if (stsProblem === undefined) it(name, fn);
  else skipWithReason(name, `the ${s3.kind} server at ${s3.endpoint} issues no session credentials (STS GetSessionToken failed: ${stsProblem}); test/s3-server/ceph.sh enables RGW's STS`, fn);
}

let bucket: string;
let raw: S3Client;
const clients: S3Client[] = [];

beforeAll(async () => {
  bucket = await createTestBucket('rawput');
  raw = rawClient();
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  raw.destroy();
  await deleteTestBucket(bucket);
});

function client(credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): S3Client {
  const c = createS3Client(staticOptions(bucket, { maxAttempts: 1, ...(credentials ? { credentials } : {}) }));
  clients.push(c);
  return c;
}

const md5 = (body: Buffer) => createHash('md5').update(body).digest('base64');

async function putter(c: S3Client): Promise<RawPutter> {
  const p = await RawPutter.forClient(c, bucket, 4);
  if (!p) throw new Error('expected the raw path for a client built by createS3Client');
  return p;
}

describe('raw PutObject', () => {
  it('stores the bytes with Content-Type and Cache-Control, for keys needing percent-encoding', async () => {
    const p = await putter(client());
    for (const key of ['raw/plain.css', 'raw/a b+c=d&e/ü ñ~(x)!*\'.js', 'raw/%2F/semi;colon,comma@at$.txt']) {
      const body = Buffer.from(`body of ${key}`);
      await p.put({ key, contentType: 'text/css; charset=utf-8', cacheControl: 'public, max-age=60', contentMd5: md5(body) }, body);
      const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(await out.Body!.transformToString()).toBe(`body of ${key}`);
      expect(out.ContentType).toBe('text/css; charset=utf-8');
      expect(out.CacheControl).toBe('public, max-age=60');
    }
  });

  itRequires('signatures', 'a wrong secret is refused with 403 (the server verifies the signature)', async () => {
    const p = await putter(client({ accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}-wrong` }));
    const body = Buffer.from('x');
    const error = await p.put({ key: 'raw/denied.txt', contentType: 'text/plain' }, body).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RawS3Error);
    expect((error as RawS3Error).$metadata.httpStatusCode).toBe(403);
    // AWS and MinIO say SignatureDoesNotMatch, Ceph RGW AccessDenied.
    expect(['SignatureDoesNotMatch', 'AccessDenied']).toContain((error as RawS3Error).name);
    await expect(raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/denied.txt' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });

  const digest = async () => {
    const p = await putter(client());
    const error = await p.put({ key: 'raw/digest.txt', contentType: 'text/plain', contentMd5: md5(Buffer.from('other')) }, Buffer.from('mine')).catch((e: unknown) => e);
    expect((error as RawS3Error).name).toBe('BadDigest');
    await expect(raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/digest.txt' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  };
  const digestName = 'a body that does not match its Content-MD5 is refused (BadDigest) and not stored';
  if (s3.kind === 's3rver') skipWithReason(digestName, 'the embedded s3rver does not check Content-MD5', digest);
  else it(digestName, digest);

  itSts('signs with a session token (STS GetSessionToken); a wrong token is refused', async () => {
    const temporary = session!;
    const credentials = { accessKeyId: temporary.AccessKeyId!, secretAccessKey: temporary.SecretAccessKey!, sessionToken: temporary.SessionToken! };
    const body = Buffer.from('with a token');
    await (await putter(client(credentials))).put({ key: 'raw/token.txt', contentType: 'text/plain', contentMd5: md5(body) }, body);
    const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'raw/token.txt' }));
    expect(await out.Body!.transformToString()).toBe('with a token');
    if (s3.capabilities.has('signatures')) {
      const error = await (await putter(client({ ...credentials, sessionToken: `${credentials.sessionToken}x` })))
        .put({ key: 'raw/badtoken.txt', contentType: 'text/plain' }, body)
        .catch((e: unknown) => e);
      // A token the server cannot read: 400 (RGW) or 403 (AWS InvalidToken / ExpiredToken).
      expect([400, 403]).toContain((error as RawS3Error).$metadata.httpStatusCode);
    }
  });

  it('streams a file body of its stated size (several MiB, and empty); a file that shrank fails and stores nothing', async () => {
    const p = await putter(client());
    const dir = mkdtempSync(join(tmpdir(), 'nss3-rawput-'));
    try {
      const big = randomBytes(3 * 1024 * 1024 + 123);
      writeFileSync(join(dir, 'big.bin'), big);
      await p.put({ key: 'raw/big.bin', contentType: 'application/octet-stream', contentMd5: md5(big) }, { path: join(dir, 'big.bin'), size: big.length });
      const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'raw/big.bin' }));
      expect(Buffer.from(await out.Body!.transformToByteArray()).equals(big)).toBe(true);

      writeFileSync(join(dir, 'empty.txt'), '');
      await p.put({ key: 'raw/empty.txt', contentType: 'text/plain', contentMd5: md5(Buffer.alloc(0)) }, { path: join(dir, 'empty.txt'), size: 0 });
      expect((await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/empty.txt' }))).ContentLength).toBe(0);

      // Hashed at 300,000 bytes, 1,000 by the time it is sent.
      writeFileSync(join(dir, 'shrank.bin'), randomBytes(1000));
      const error = await p.put({ key: 'raw/shrank.bin', contentType: 'application/octet-stream' }, { path: join(dir, 'shrank.bin'), size: 300_000 }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'FileChanged' });
      expect(String((error as Error).message)).toContain('has 1000 bytes, not the 300000');
      await expect(raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/shrank.bin' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const skewName = 'signs again with the server clock after RequestTimeTooSkewed, and shares the correction with the SDK';
  const skew = async () => {
    const c = createS3Client(staticOptions(bucket, { maxAttempts: 2 }));
    clients.push(c);
    const config = c.config as unknown as { systemClockOffset?: number };
    config.systemClockOffset = -30 * 60_000; // this machine's clock as if 30 minutes slow
    const body = Buffer.from('signed in time');
    await (await putter(c)).put({ key: 'raw/skew.txt', contentType: 'text/plain', contentMd5: md5(body) }, body);
    expect(Math.abs(config.systemClockOffset)).toBeLessThan(60_000);
    const out = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: 'raw/skew.txt' }));
    expect(await out.Body!.transformToString()).toBe('signed in time');
    // Uploads in flight together all fail so; each signs again, not only the one that corrected the clock.
    const together = createS3Client(staticOptions(bucket, { maxAttempts: 2 }));
    clients.push(together);
    (together.config as unknown as { systemClockOffset?: number }).systemClockOffset = -30 * 60_000;
    const p = await putter(together);
    await Promise.all([0, 1, 2, 3].map((i) => p.put({ key: `raw/skew-${i}.txt`, contentType: 'text/plain', contentMd5: md5(body) }, body)));
    // With one attempt there is no second signing: the server's refusal is what the caller sees.
    const once = createS3Client(staticOptions(bucket, { maxAttempts: 1 }));
    clients.push(once);
    (once.config as unknown as { systemClockOffset?: number }).systemClockOffset = -30 * 60_000;
    await expect((await putter(once)).put({ key: 'raw/skew2.txt', contentType: 'text/plain' }, body)).rejects.toMatchObject({ name: 'RequestTimeTooSkewed', $metadata: { httpStatusCode: 403 } });
  };
  if (!s3.capabilities.has('signatures')) skipWithReason(skewName, `the ${s3.kind} server at ${s3.endpoint} does not verify signatures, so it accepts any request time`, skew);
  else it(skewName, skew);

  itRequires('signatures', 'a refused file body ends with the server answer, not a reset or a hung socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nss3-rawput-'));
    try {
      const big = randomBytes(8 * 1024 * 1024);
      writeFileSync(join(dir, 'refused.bin'), big);
      const refused = client({ accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}-wrong` });
      const p = await putter(refused);
      const error = await p.put({ key: 'raw/refused.bin', contentType: 'application/octet-stream', contentMd5: md5(big) }, { path: join(dir, 'refused.bin'), size: big.length }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RawS3Error);
      expect((error as RawS3Error).$metadata.httpStatusCode).toBe(403);
      // No socket is left in use (one stuck mid-body would hold an agent slot and keep the process alive).
      // (The putter's agent: the handler's own, or the keep-alive one the putter made where the handler creates its lazily.)
      const { agent } = p as unknown as { agent: Agent };
      await new Promise((ok) => setTimeout(ok, 200));
      expect(Object.values(agent.sockets).flat()).toHaveLength(0);
      await expect(raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/refused.bin' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });

      // Below the client's expectContinueHeader size (2 MiB), or with it off, the body goes at once;
      // a refusal still settles the upload and frees its socket.
      const small = randomBytes(1024 * 1024);
      writeFileSync(join(dir, 'small.bin'), small);
      for (const expectContinueHeader of [undefined, false]) {
        const c = client({ accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}-wrong` });
        if (expectContinueHeader !== undefined) (c.config as unknown as { expectContinueHeader: boolean }).expectContinueHeader = expectContinueHeader;
        const q = await putter(c);
        const body = expectContinueHeader === false ? { path: join(dir, 'refused.bin'), size: big.length } : { path: join(dir, 'small.bin'), size: small.length };
        await expect(q.put({ key: 'raw/refused-now.bin', contentType: 'application/octet-stream' }, body)).rejects.toBeInstanceOf(Error);
        await new Promise((ok) => setTimeout(ok, 200));
        expect(Object.values((q as unknown as { agent: Agent }).agent.sockets).flat()).toHaveLength(0);
      }
      // And a good upload with expect-continue off stores every byte.
      const off = client();
      (off.config as unknown as { expectContinueHeader: boolean }).expectContinueHeader = false;
      await (await putter(off)).put({ key: 'raw/no-expect.bin', contentType: 'application/octet-stream', contentMd5: md5(big) }, { path: join(dir, 'refused.bin'), size: big.length });
      expect((await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: 'raw/no-expect.bin' }))).ContentLength).toBe(big.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the SDK for clients with middleware added, or a custom request handler', async () => {
    const counted = client();
    countRequests(counted);
    expect(await RawPutter.forClient(counted, bucket, 4)).toBeUndefined();
    const custom = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: s3, requestHandler: { handle: async () => ({ response: undefined as never }) } });
    clients.push(custom);
    expect(await RawPutter.forClient(custom, bucket, 4)).toBeUndefined();
    expect(await RawPutter.forClient(client(), bucket, 4)).toBeInstanceOf(RawPutter);
  });
});

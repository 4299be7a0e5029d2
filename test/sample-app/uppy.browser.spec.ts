/**
 * The sample page's "Files" section in headless Chromium: Uppy's Dashboard (bundled from the
 * npm packages by `npm run build:sample`) uploads a generated 120 MiB file, above Uppy 6.3.1's
 * 100 MiB multipart threshold, straight to the S3 server (Ceph in CI) through `publicEndpoint`
 * (a fault proxy in front of it), using the app's DirectUploadsModule routes.
 *
 * Mid-way the proxy stops accepting connections and closes the open ones, cutting a part
 * PUT in flight; Uppy's own retries run out and it reports the error. Once S3 is back, the
 * Dashboard's Retry resumes: Uppy lists the parts S3 holds and sends only the others. Every
 * part PUT the browser makes is counted: no part that had completed before the cut is sent
 * again, and the stored object's SHA-256 is the file's.
 */
import { ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { type Browser, chromium, type Page } from 'playwright-core';
import { FaultProxy } from '../reliability/fault-proxy.js';
import { closedPort } from '../harness/net.js';
import { createTestBucket, deleteTestBucket, rawClient, s3, skipWithReason } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';
import { png } from './images.js';

const CHROMIUM = '/usr/bin/chromium';
const MIB = 1024 * 1024;
const FILE_BYTES = 120 * MIB;
// Uppy 6.3.1's chunk size for this file: max(5 MiB, ceil(size / 10000)).
const PART_BYTES = 5 * MIB;
const PARTS = FILE_BYTES / PART_BYTES;
/** Parts done before the connection to S3 is cut. */
const CUT_AFTER = 8;
const USER = 'uppy-user';
const haveChromium = existsSync(CHROMIUM);
const haveBundle = existsSync(join(process.cwd(), 'dist', 'sample-app', 'public', 'files.js'));

interface PartPut {
  partNumber: number;
  status?: number;
  failed?: string;
  /** Sent after the cut. */
  afterCut: boolean;
}

let bucket: string;
let proxy: FaultProxy;
let sample: SampleApp | undefined;
let browser: Browser | undefined;
let page: Page;
let dir: string;
let filePath: string;
let fileSha256: string;

/** Writes `bytes` random bytes to a file, hashing them on the way. */
async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= MIB) {
    const chunk = randomBytes(Math.min(MIB, left));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return hash.digest('hex');
}

beforeAll(async () => {
  bucket = await createTestBucket('uppy-browser');
  if (!haveChromium || !haveBundle) return;
  dir = mkdtempSync(join(tmpdir(), 'nss3-uppy-'));
  filePath = join(dir, 'big-video.bin');
  fileSha256 = await writeRandomFile(filePath, FILE_BYTES);
  proxy = await FaultProxy.start(s3.endpoint);
  const port = await closedPort();
  sample = await startSampleApp(
    {
      ...mediaEnv(bucket),
      // The browser reaches S3 only through the proxy: every part URL is signed for it.
      MEDIA_S3_URL_ENDPOINT_URL: proxy.endpoint,
      MEDIA_S3_CORS_ORIGINS: `http://127.0.0.1:${port}`,
      FILE_MAX_BYTES: String(512 * MIB),
    },
    { port },
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await sample?.close();
  await proxy?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await deleteTestBucket(bucket);
}, 60_000);

function itInBrowser(name: string, fn: () => Promise<void>): void {
  if (!haveChromium) return skipWithReason(name, `${CHROMIUM} is missing (apt-get install chromium)`, fn);
  if (!haveBundle) return skipWithReason(name, 'dist/sample-app/public/files.js is missing: run "npm run build:sample" (npm test does)', fn);
  // On a server that checks signatures (Ceph in CI) this also proves the part URLs are signed
  // for publicEndpoint; on the embedded one it still proves the resume and the bytes.
  it(name, fn, 600_000);
}

describe('the sample page\'s Files section (Uppy) in Chromium', () => {
  itInBrowser('uploads 120 MiB straight to S3 through publicEndpoint, resumes after S3 is cut without re-sending done parts, and stores the same bytes', async () => {
    const proxyOrigin = new URL(proxy.endpoint).origin;
    const puts: PartPut[] = [];
    const byRequest = new Map<object, PartPut>();
    let cut = false;
    const listCalls: string[] = [];
    const partUrls: string[] = [];
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (req.method() === 'PUT' && url.origin === proxyOrigin) {
        const put: PartPut = { partNumber: Number(url.searchParams.get('partNumber')), afterCut: cut };
        partUrls.push(req.url());
        puts.push(put);
        byRequest.set(req, put);
      }
      // Uppy's list parts (resume): GET <path>/s3/multipart/<uploadId>?key=…
      if (req.method() === 'GET' && /\/uploads\/s3\/multipart\/[^/]+$/.test(url.pathname)) listCalls.push(url.pathname);
    });
    page.on('requestfinished', (req) => {
      const put = byRequest.get(req);
      if (put) void req.response().then((res) => (put.status = res?.status()));
    });
    page.on('requestfailed', (req) => {
      const put = byRequest.get(req);
      if (put) put.failed = req.failure()?.errorText ?? 'failed';
    });
    const done = () => puts.filter((p) => p.status === 200);

    await page.goto(`${sample!.baseUrl}/`);
    await page.fill('#user-id', USER);
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#uppy-dashboard .uppy-Dashboard', { timeout: 30_000 });
    await page.locator('#uppy-dashboard input.uppy-Dashboard-input[type=file]').first().setInputFiles(filePath);
    await page.locator('#uppy-dashboard .uppy-StatusBar-actionBtn--upload').click();

    // Cut S3 once CUT_AFTER parts are in, while the next one is on the wire.
    await waitFor(() => done().length >= CUT_AFTER, 300_000, 'the first parts to upload');
    cut = true;
    const doneBeforeCut = new Set(done().map((p) => p.partNumber));
    await proxy.refuse();
    // Uppy retries a failed PUT 3 times (0.15 s, 0.3 s, 0.6 s), then reports the error.
    await page.waitForFunction(`window.filesUppy.getFiles().some((f) => f.error)`, undefined, { timeout: 60_000 });
    const failedPuts = puts.filter((p) => p.failed);
    // Every part went to the public endpoint with a SigV4 query signature.
    for (const url of partUrls) expect(new URL(url).searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(failedPuts.length).toBeGreaterThan(0);
    const listsBefore = listCalls.length;

    await proxy.pass();
    await page.locator('#uppy-dashboard .uppy-StatusBar-actionBtn--retry').click();
    await page.waitForFunction(`window.filesUppy.getFiles().every((f) => f.progress.uploadComplete)`, undefined, { timeout: 300_000 });
    await page.waitForSelector('#file-list a', { timeout: 30_000 });

    // Resumed from S3's list of parts, not from the start.
    expect(listCalls.length).toBeGreaterThan(listsBefore);
    // Every part was sent, and none was stored twice. (A part whose answer the cut lost may have
    // no 200 here: S3 holds it, so the resume rightly skips it. The SHA-256 below proves the whole.)
    expect([...new Set(puts.map((p) => p.partNumber))].sort((a, b) => a - b)).toEqual(Array.from({ length: PARTS }, (_, i) => i + 1));
    for (let n = 1; n <= PARTS; n++) expect(done().filter((p) => p.partNumber === n).length).toBeLessThanOrEqual(1);
    // No part that had completed before the cut went over the wire again.
    for (const n of doneBeforeCut) expect(puts.filter((p) => p.partNumber === n)).toHaveLength(1);
    expect(puts.filter((p) => p.afterCut && doneBeforeCut.has(p.partNumber))).toEqual([]);
    // Parts re-sent at all: only those whose PUT the cut broke.
    const resent = [...new Set(puts.map((p) => p.partNumber))].filter((n) => puts.filter((p) => p.partNumber === n).length > 1);
    expect(resent.every((n) => puts.some((p) => p.partNumber === n && p.failed))).toBe(true);
    const unanswered = Array.from({ length: PARTS }, (_, i) => i + 1).filter((n) => !done().some((p) => p.partNumber === n));
    console.log(
      `Uppy browser upload: ${PARTS} parts, ${puts.length} part PUTs (${failedPuts.length} cut, parts re-sent: ${resent.join(', ') || 'none'}, ` +
        `stored but unanswered: ${unanswered.join(', ') || 'none'}), ${doneBeforeCut.size} done before the cut`,
    );

    // The stored object is the file, published under the user's folder and listed by the page.
    const client = rawClient();
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `files/${USER}/` }));
      expect(listed.Contents?.map((o) => o.Size)).toEqual([FILE_BYTES]);
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: listed.Contents![0]!.Key! }));
      const hash = createHash('sha256');
      for await (const chunk of object.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
      expect(hash.digest('hex')).toBe(fileSha256);
    } finally {
      client.destroy();
    }
    const link = await page.locator('#file-list a').first().getAttribute('href');
    expect(link).toMatch(new RegExp(`^/users/${USER}/files/[^/]+/big-video\\.bin\\?download$`));
    const head = await fetch(`${sample!.baseUrl}${link!}`, { headers: { Range: 'bytes=0-99' } });
    expect(head.status).toBe(206);
    expect((await head.arrayBuffer()).byteLength).toBe(100);
  });
});

describe('the Files section with a small file', () => {
  itInBrowser('sends a file under 100 MiB as one presigned POST, which the page confirms: published, listed, same bytes', async () => {
    const user = 'uppy-small';
    const bytes = png(64);
    const seen: string[] = [];
    const proxyOrigin = new URL(proxy.endpoint).origin;
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (req.method() === 'OPTIONS') return;
      if (url.origin === proxyOrigin) seen.push(`${req.method()} S3`);
      else if (url.pathname.startsWith(`/users/${user}/uploads/`)) seen.push(`${req.method()} ${url.pathname}`);
    });
    await page.goto(`${sample!.baseUrl}/`);
    await page.fill('#user-id', user);
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#uppy-dashboard .uppy-Dashboard', { timeout: 30_000 });
    await page.locator('#uppy-dashboard input.uppy-Dashboard-input[type=file]').first().setInputFiles({ name: 'tiny.png', mimeType: 'image/png', buffer: bytes });
    await page.locator('#uppy-dashboard .uppy-StatusBar-actionBtn--upload').click();
    await page.waitForSelector('#file-list a', { timeout: 60_000 });
    await expect(page.locator('#files-status').textContent()).resolves.toBe('Uploaded 1 file(s).');

    // params, the POST to the bucket (through publicEndpoint), then the page's confirm; no multipart.
    expect(seen).toEqual([`GET /users/${user}/uploads/s3/params`, 'POST S3', `POST /users/${user}/uploads/s3/confirm`]);
    const link = await page.locator('#file-list a').first().getAttribute('href');
    expect(link).toMatch(new RegExp(`^/users/${user}/files/[0-9a-f-]{36}-tiny\\.png\\?download$`));
    const served = Buffer.from(await (await fetch(`${sample!.baseUrl}${link!}`)).arrayBuffer());
    expect(createHash('sha256').update(served).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

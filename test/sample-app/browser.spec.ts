/**
 * The seed's endpoint split, proved from a real browser: the app talks to S3 at
 * `http://127.0.0.1:<port>` and signs URLs for `http://localhost:<port>`, two names for the
 * same signature-verifying server. Headless Chromium opens the page, uploads a PNG through
 * the form, and the `<img>` must decode it from the public host. A URL signed for the wrong
 * host would fail the signature check there, and the image would not load.
 */
import { afterAll, beforeAll, describe, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { createTestBucket, deleteTestBucket, itRequires, s3, skipWithReason } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';
import { png } from './images.js';

const CHROMIUM = '/usr/bin/chromium';
// Page-side code as strings: the tests compile without the DOM library.
const IMG_LOADED = `(() => { const img = document.querySelector('#avatar'); return !!img && !img.hidden && img.complete && img.naturalWidth > 0; })()`;
const IMG_STATE = `(() => { const img = document.querySelector('#avatar'); return { src: img.src, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight }; })()`;
const haveChromium = existsSync(CHROMIUM);

/** The same server under the other loopback name: localhost ↔ 127.0.0.1. */
function otherHostName(endpoint: string): string {
  const url = new URL(endpoint);
  url.hostname = url.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
  return url.toString().replace(/\/$/, '');
}

let bucket: string;
let sample: SampleApp | undefined;
let browser: Browser | undefined;
let page: Page;
const internal = s3.endpoint;
const external = otherHostName(s3.endpoint);

beforeAll(async () => {
  bucket = await createTestBucket('sample-browser');
  if (!haveChromium || !s3.capabilities.has('signatures')) return;
  sample = await startSampleApp({ ...mediaEnv(bucket), MEDIA_S3_ENDPOINT_URL: internal, MEDIA_S3_URL_ENDPOINT_URL: external });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sample?.close();
  await deleteTestBucket(bucket);
});

/** Like `itRequires('signatures', …)`, and also skips (or fails under S3_TEST_REQUIRE_ALL) without Chromium. */
function itInBrowser(name: string, fn: () => Promise<void>): void {
  if (haveChromium) return itRequires('signatures', name, fn, 60_000);
  skipWithReason(name, `${CHROMIUM} is missing (apt-get install chromium)`, fn);
}

describe('the sample page in Chromium', () => {
  itInBrowser('uploads a PNG through the form and renders it from the public endpoint through a signed URL', async () => {
    expect(new URL(internal).host).not.toBe(new URL(external).host);
    await page.goto(`${sample!.baseUrl}/`);
    await page.fill('#user-id', 'browser-user');
    await page.click('#user-form button[type=submit]');
    await expect(page.locator('#caption').textContent()).resolves.toContain('has no avatar yet');

    await page.setInputFiles('#avatar-file', { name: 'me.png', mimeType: 'image/png', buffer: png(8) });
    await page.click('#upload-form button[type=submit]');
    await page.waitForFunction(IMG_LOADED, undefined, { timeout: 15_000 });

    const img = await page.evaluate<{ src: string; naturalWidth: number; naturalHeight: number }>(IMG_STATE);
    expect(img.naturalWidth).toBe(8);
    expect(img.naturalHeight).toBe(8);
    const src = new URL(img.src);
    expect(src.origin).toBe(new URL(external).origin);
    expect(src.pathname).toMatch(new RegExp(`^/${bucket}/avatars/browser-user/.+\\.png$`));
    expect(src.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    await expect(page.locator('#status').textContent()).resolves.toBe('Uploaded.');
    await expect(page.locator('#caption').textContent()).resolves.toContain(`loaded from ${src.host}`);
    // The host is part of the signature: the same URL through the internal name is refused,
    // so only a URL signed for the public name could have loaded.
    const throughInternal = new URL(src);
    throughInternal.host = new URL(internal).host;
    expect((await fetch(throughInternal)).status).toBe(403);

    // A fresh visit shows the stored avatar again, through a newly signed URL.
    await page.reload();
    await page.fill('#user-id', 'browser-user');
    await page.click('#user-form button[type=submit]');
    await page.waitForFunction(IMG_LOADED, undefined, { timeout: 15_000 });
  });

  itInBrowser('shows a refused upload to the person in words', async () => {
    await page.goto(`${sample!.baseUrl}/`);
    await page.fill('#user-id', 'browser-text');
    await page.setInputFiles('#avatar-file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('plain text, not a picture') });
    await page.click('#upload-form button[type=submit]');
    await page.waitForFunction(`document.querySelector('#status').classList.contains('error')`, undefined, { timeout: 15_000 });
    await expect(page.locator('#status').textContent()).resolves.toMatch(/is not a PNG, JPEG, WebP or GIF image/);
  });
});

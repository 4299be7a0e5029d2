/**
 * Browser caching of avatars, proved from a real browser: headless Chromium loads the sample
 * page 10 times, and a counting proxy in front of the public S3 endpoint shows how often S3
 * served the avatar's bytes. With stable URLs (the sample's avatars use a cache window) that
 * is once; with a new signature per page view it was 10 times.
 */
import { afterAll, beforeAll, describe, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, chromium } from 'playwright-core';
import { createTestBucket, deleteTestBucket, itRequires, s3, skipWithReason } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';
import { png } from './images.js';

const CHROMIUM = '/usr/bin/chromium';
const IMG_LOADED = `(() => { const img = document.querySelector('#avatar'); return !!img && !img.hidden && img.complete && img.naturalWidth > 0; })()`;
const haveChromium = existsSync(CHROMIUM);
/** The sample's AVATAR_URL_CACHE_WINDOW. */
const WINDOW_MS = 3600 * 1000;

/** An HTTP proxy to the S3 server that counts the object bodies it passed back. */
class CountingProxy {
  /** Path → GETs answered 200 with a body. */
  readonly served = new Map<string, number>();
  /** Every distinct URL asked for. */
  readonly urls = new Set<string>();
  private constructor(private readonly server: Server) {}

  static async start(target: string): Promise<CountingProxy> {
    const to = new URL(target);
    const server = createServer();
    const proxy = new CountingProxy(server);
    server.on('request', (req, res) => {
      // The Host header is kept: the URL was signed for the proxy's host.
      const upstream = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        // Every GET counts, 304 revalidations included: only a browser-cache hit sends nothing.
        if (req.method === 'GET') {
          const path = new URL(req.url!, 'http://x').pathname;
          proxy.served.set(path, (proxy.served.get(path) ?? 0) + 1);
        }
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      if (req.method === 'GET') proxy.urls.add(req.url!);
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let bucket: string;
let proxy: CountingProxy;
let sample: SampleApp | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  bucket = await createTestBucket('avatar-cache');
  proxy = await CountingProxy.start(s3.endpoint);
  if (!haveChromium || !s3.capabilities.has('signatures')) return;
  sample = await startSampleApp({ ...mediaEnv(bucket), MEDIA_S3_URL_ENDPOINT_URL: proxy.endpoint });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sample?.close();
  await proxy?.close();
  await deleteTestBucket(bucket);
});

function itInBrowser(name: string, fn: () => Promise<void>): void {
  if (haveChromium) return itRequires('signatures', name, fn, 150_000);
  skipWithReason(name, `${CHROMIUM} is missing (apt-get install chromium)`, fn);
}

describe('avatars in Chromium, through a counting proxy', () => {
  itInBrowser('10 page views within one window: S3 serves the avatar bytes once', async () => {
    // Keep the ten views inside one window: start again after a boundary that is near.
    const left = WINDOW_MS - (Date.now() % WINDOW_MS);
    if (left < 60_000) await sleep(left + 1000);

    const user = 'cache-user';
    const form = new FormData();
    form.append('avatar', new Blob([png(8)], { type: 'image/png' }), 'me.png');
    const uploaded = await fetch(`${sample!.baseUrl}/users/${user}/avatar`, { method: 'POST', body: form });
    expect(uploaded.status).toBe(201);
    const { key } = (await uploaded.json()) as { key: string };
    const path = `/${bucket}/${key}`;

    const context = await browser!.newContext();
    const page = await context.newPage();
    const seen = new Set<string>();
    for (let view = 0; view < 10; view++) {
      await page.goto(`${sample!.baseUrl}/`);
      await page.fill('#user-id', user);
      await page.click('#user-form button[type=submit]');
      await page.waitForFunction(IMG_LOADED, undefined, { timeout: 15_000 });
      seen.add(await page.evaluate<string>(`document.querySelector('#avatar').src`));
      // A second apart, so a new signature per view would be a new URL each time.
      await sleep(1100);
    }
    await context.close();

    expect(seen.size).toBe(1);
    const [src] = [...seen] as [string];
    expect(new URL(src).origin).toBe(proxy.endpoint);
    expect(new URL(src).pathname).toBe(path);
    expect(proxy.served.get(path)).toBe(1);
  });
});

/**
 * `npm start` with no configuration at all: the app starts its embedded S3 server (data in
 * ./.data/), prints its address, and an upload works end to end. Runs the built app as a
 * child process with a newcomer's bare environment in an empty directory, so no .env and no
 * MEDIA_S3_* variable can reach it. (No test bucket: this test must not touch the test server.)
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, spawnApp, type RunningApp } from './spawn-app.js';
import { png } from './images.js';

let dir: string;
let app: RunningApp | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nss3-sample-embedded-'));
});

afterAll(async () => {
  await app?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('npm start with no configuration', () => {
  it('starts the embedded S3 server under ./.data, prints the page address and serves an upload', async () => {
    app = await spawnApp(dir, cleanEnv({ PORT: '0' }));
    expect(app.output()).toMatch(/No MEDIA_S3_\* configuration found: started an embedded S3 server \(s3rver\) at http:\/\/127\.0\.0\.1:\d+/);
    expect(existsSync(join(dir, '.data', 's3'))).toBe(true);

    const page = await fetch(app.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<h1>Avatars</h1>');

    const image = png(8);
    const form = new FormData();
    form.append('avatar', new Blob([image], { type: 'image/png' }), 'me.png');
    const upload = await fetch(new URL('/users/newcomer/avatar', app.url), { method: 'POST', body: form });
    expect(upload.status).toBe(201);
    const { key, url } = (await upload.json()) as { key: string; url: string };
    expect(key).toMatch(/^avatars\/newcomer\/.+\.png$/);
    expect(new URL(url).hostname).toBe('127.0.0.1');

    const served = await fetch(url);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(image)).toBe(true);
    expect((await fetch(new URL('/health', app.url))).status).toBe(200);

    // A key the embedded server cannot keep as a file (a 300-byte segment) gets an S3 error
    // for that request; the app's process stays up and keeps serving.
    const endpoint = /embedded S3 server \(s3rver\) at (http:\/\/127\.0\.0\.1:\d+)/.exec(app.output())![1]!;
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, maxAttempts: 1 });
    try {
      const refused = await client.send(new PutObjectCommand({ Bucket: 'media', Key: `avatars/${'x'.repeat(300)}/a.png`, Body: 'x' })).then(
        () => undefined,
        (error: { name?: string; $metadata?: { httpStatusCode?: number } }) => ({ name: error.name, status: error.$metadata?.httpStatusCode }),
      );
      expect(refused).toEqual({ name: 'KeyTooLongError', status: 400 });
    } finally {
      client.destroy();
    }
    expect((await fetch(new URL('/health', app.url))).status).toBe(200);
    const again = new FormData();
    again.append('avatar', new Blob([image], { type: 'image/png' }), 'again.png');
    expect((await fetch(new URL('/users/newcomer/avatar', app.url), { method: 'POST', body: again })).status).toBe(201);

    expect(await app.stop()).toBe(0);
    app = undefined;
  });
});

/**
 * `GET /` and its static assets: the page links content-hashed JS and CSS, which the app
 * serves with a year-long immutable Cache-Control (the WhiteNoise role in the seed).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import request from 'supertest';
import { createTestBucket, deleteTestBucket } from '../harness/s3-test-env.js';
import { mediaEnv, startSampleApp, type SampleApp } from './app-fixture.js';

let bucket: string;
let sample: SampleApp;

beforeAll(async () => {
  bucket = await createTestBucket('sample-page');
  sample = await startSampleApp(mediaEnv(bucket));
});

afterAll(async () => {
  await sample?.close();
  await deleteTestBucket(bucket);
});

const http = () => request(sample.app.getHttpServer());

function assetLinks(html: string): string[] {
  return [...html.matchAll(/(?:href|src)="(\/static\/[^"]+)"/g)].map((m) => m[1]!);
}

describe('GET /', () => {
  it('serves the HTML page with the upload form, revalidated on every visit', async () => {
    const res = await http().get('/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.text).toMatch(/<input id="avatar-file" name="avatar" type="file"/);
    expect(res.text).toMatch(/<img id="avatar"/);
    expect(res.text).toContain('at most 5 MiB');
  });

  it('links its JS and CSS (and the Uppy bundle built into dist/) under names carrying the MD5 of their content, served immutable', async () => {
    const links = assetLinks((await http().get('/')).text);
    expect(links.map((l) => l.replace(/\.[0-9a-f]{12}\./, '.*.'))).toEqual(['/static/app.*.css', '/static/app.*.js', '/static/files.*.css', '/static/files.*.js']);
    for (const link of links) {
      const res = await http().get(link).buffer(true).parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      });
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-type']).toMatch(link.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      const hash = createHash('md5').update(res.body as Buffer).digest('hex').slice(0, 12);
      expect(link).toContain(`.${hash}.`);
    }
  });

  it('serves the unhashed name too, but only with revalidation; unknown names are 404', async () => {
    const plain = await http().get('/static/app.js');
    expect(plain.status).toBe(200);
    expect(plain.headers['cache-control']).toBe('no-cache');
    const missing = await http().get('/static/app.000000000000.js');
    expect(missing.status).toBe(404);
    expect(missing.body.message).toContain('app.000000000000.js');
  });
});

/** The pure half of `sendMedia()`: which status and bytes a request's headers get (RFC 9110). */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseRange, planMediaResponse, sendMedia, type SentMedia } from '../../lib/media-download.js';
import { InMemoryStorage } from '../../lib/testing/in-memory.storage.js';

const stat = { size: 1000, etag: 'abc', lastModified: new Date('2026-12-01T10:00:00.500Z') };

describe('parseRange', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=900-', { start: 900, end: 999 }],
    ['bytes=-100', { start: 900, end: 999 }],
    ['bytes=-5000', { start: 0, end: 999 }],
    ['bytes=990-5000', { start: 990, end: 999 }],
    ['BYTES = 1 - 2', { start: 1, end: 2 }],
    ['bytes=1000-', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=5-4', undefined],
    ['bytes=0-1,5-6', undefined],
    ['items=0-1', undefined],
    ['bytes=-', undefined],
    ['bytes=a-b', undefined],
  ])('%s of 1000 bytes → %j', (header, expected) => {
    expect(parseRange(header, 1000)).toEqual(expected);
  });

  it('no range of an empty object is satisfiable', () => {
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange('bytes=-10', 0)).toBe('unsatisfiable');
  });
});

describe('planMediaResponse', () => {
  it('no headers: the whole object; an empty object has no range', () => {
    expect(planMediaResponse({}, stat)).toEqual({ status: 200, range: { start: 0, end: 999 } });
    expect(planMediaResponse({}, { ...stat, size: 0 })).toEqual({ status: 200, range: undefined });
  });

  it('If-None-Match: any listed tag, weak or strong, or *, is a 304 before Range is looked at', () => {
    for (const value of ['"abc"', 'W/"abc"', '"x", "abc"', '*']) {
      expect(planMediaResponse({ 'if-none-match': value, range: 'bytes=0-1' }, stat)).toEqual({ status: 304 });
    }
    expect(planMediaResponse({ 'if-none-match': '"x"' }, stat).status).toBe(200);
  });

  it('If-Modified-Since counts only without If-None-Match, in whole seconds', () => {
    expect(planMediaResponse({ 'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT' }, stat)).toEqual({ status: 304 });
    expect(planMediaResponse({ 'if-modified-since': 'Tue, 01 Dec 2026 09:59:59 GMT' }, stat).status).toBe(200);
    expect(planMediaResponse({ 'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT', 'if-none-match': '"x"' }, stat).status).toBe(200);
  });

  it('If-Range: the strong ETag or the exact date keeps the range; anything else gets the whole object', () => {
    const range = { range: 'bytes=10-19' };
    expect(planMediaResponse({ ...range, 'if-range': '"abc"' }, stat)).toEqual({ status: 206, range: { start: 10, end: 19 } });
    expect(planMediaResponse({ ...range, 'if-range': 'Tue, 01 Dec 2026 10:00:00 GMT' }, stat).status).toBe(206);
    for (const value of ['"other"', 'W/"abc"', 'Tue, 01 Dec 2026 10:00:01 GMT', 'not a date']) {
      expect(planMediaResponse({ ...range, 'if-range': value }, stat)).toEqual({ status: 200, range: { start: 0, end: 999 } });
    }
  });

  it('a range past the end is 416; a malformed or multiple one is ignored', () => {
    expect(planMediaResponse({ range: 'bytes=1000-1001' }, stat)).toEqual({ status: 416 });
    expect(planMediaResponse({ range: 'bytes=0-1,5-6' }, stat).status).toBe(200);
  });
});

describe('sendMedia on a plain node:http server, over InMemoryStorage', () => {
  const storage = new InMemoryStorage();
  const sent: SentMedia[] = [];
  let server: Server;
  let base: string;
  beforeAll(async () => {
    await storage.save('a.txt', '0123456789', { contentType: 'text/plain' });
    server = createServer((req, res) => {
      sendMedia(storage, req.url!.slice(1), req, res).then(
        (result) => sent.push(result),
        (error: Error) => res.writeHead(error.name === 'ObjectNotFoundError' ? 404 : 500).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('answers ranges from the in-memory storage, reports what it sent, and leaves a 404 to the caller', async () => {
    const part = await fetch(`${base}/a.txt`, { headers: { Range: 'bytes=-3' } });
    expect([part.status, part.headers.get('content-range'), await part.text()]).toEqual([206, 'bytes 7-9/10', '789']);
    expect(sent.at(-1)).toEqual({ status: 206, range: { start: 7, end: 9 }, complete: true });
    const whole = await fetch(`${base}/a.txt`);
    expect([whole.status, whole.headers.get('content-type'), await whole.text()]).toEqual([200, 'text/plain', '0123456789']);
    expect(sent.at(-1)).toEqual({ status: 200, complete: true });
    expect((await fetch(`${base}/missing.txt`)).status).toBe(404);
  });
});

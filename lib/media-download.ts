/**
 * Downloads back through the app: `sendMedia()` streams one object to an HTTP response with
 * the parts of HTTP a `<video>` and a download manager rely on (RFC 9110): byte ranges (206,
 * 416), validators (ETag, Last-Modified, 304) and `If-Range`.
 *
 * It works on the Node request and response, so on Express and on Fastify alike (Fastify's
 * reply is hijacked before anything is written), and never buffers: the bytes go from the S3
 * response to the client as the client reads them.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { nodeRequest, nodeResponse } from './fastify-multipart.js';
import type { ReadOptions } from './media-storage.api.js';
import type { ObjectStat } from './media-storage.types.js';
import { StorageOperationError } from './storage.errors.js';
import { contentDisposition } from './url-signer.js';

/** What `sendMedia()` needs of a storage: `MediaStorage` and `InMemoryStorage` both fit. */
export interface MediaSource {
  stat(name: string): Promise<ObjectStat>;
  open(name: string, options?: ReadOptions): Promise<Readable>;
}

/** Per-call options of {@link sendMedia}. */
export interface SendMediaOptions {
  /**
   * Answers with `Content-Disposition` naming this file (RFC 6266, non-ASCII safe), so that a
   * browser saves it under that name.
   * @default undefined (no Content-Disposition)
   */
  downloadAs?: string;
  /**
   * The disposition type sent with `downloadAs`: `'inline'` lets the browser show the file,
   * and still names it when saved.
   * @default 'attachment'
   */
  disposition?: 'attachment' | 'inline';
  /**
   * The `Content-Type` sent.
   * @default the object's stored Content-Type, or `application/octet-stream`
   */
  contentType?: string;
  /**
   * The `Cache-Control` sent.
   * @default the object's stored Cache-Control, or `private, no-cache` (revalidate with the ETag)
   */
  cacheControl?: string;
  /**
   * Sends `Content-Security-Policy: sandbox; default-src 'none'`. The bytes are users' and are
   * served from the app's own origin: an uploaded HTML or SVG page opened from this URL would
   * otherwise run script as the app. Media elements, image tags and downloads are unaffected.
   * @default true
   */
  sandbox?: boolean;
}

/** What {@link sendMedia} answered. */
export interface SentMedia {
  /** 200, 206, 304 or 416; 0 when the client left before S3 answered (nothing was written). */
  status: number;
  /** The bytes sent, inclusive, for a 206. */
  range?: { start: number; end: number };
  /** False when the client went away (or S3 failed) before the last byte. */
  complete: boolean;
}

/** A response planned from the request's headers and the object's stat. */
export interface MediaPlan {
  status: 200 | 206 | 304 | 416;
  /** The bytes to send, inclusive; for a 200 the whole object (undefined when it is empty). */
  range?: { start: number; end: number };
}

/**
 * Streams the object `name` to `response` with HTTP Range and conditional-request support.
 * Call it from a controller that injects the raw request and response
 * (`@Req() req, @Res() res`, Express or Fastify).
 *
 * - A plain GET answers 200 with `Content-Length`, `Content-Type`, `ETag`, `Last-Modified` and
 *   `Accept-Ranges: bytes`; HEAD answers the same headers without a body.
 * - `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` answer 206 with `Content-Range`; a range that
 *   starts past the end answers 416 with `Content-Range: bytes *\/<size>`. Several ranges
 *   (`bytes=0-1,5-6`) answer the whole object with 200, which RFC 9110 allows, instead of
 *   `multipart/byteranges` (which media players do not send and few clients parse).
 * - `If-None-Match` (or, without it, `If-Modified-Since`) answers 304 when the object is
 *   unchanged; `If-Range` with a stale ETag or date answers the whole object with 200.
 *
 * The size and ETag come from a HEAD (`stat()`); the bytes from a GET carrying `If-Match` with
 * that ETag, so an object replaced in between can never be sent under the old one's
 * Content-Range. On that 412 the object is looked at once more and the answer planned again;
 * replaced a second time, the `StorageOperationError` (status 412) is thrown.
 *
 * Errors before the first byte (`ObjectNotFoundError` for a missing object, S3 failures) are
 * thrown with nothing written, for the app's exception filter to answer (404, 503). Once the
 * headers are out, a failure can only cut the response short: the promise then resolves with
 * `complete: false`. When the client goes away the S3 response is destroyed, which closes its
 * socket.
 */
export async function sendMedia(storage: MediaSource, name: string, request: object, response: object, options: SendMediaOptions = {}): Promise<SentMedia> {
  const req = nodeRequest(request);
  const res = nodeResponse(response);
  const head = req.method === 'HEAD';
  // Cancels the GET when the client leaves while S3 is still answering its headers. Only
  // then: once the body is in hand, pipeline() alone tears it down, and aborting the signal
  // after the body has ended would make it emit an error no one listens to any more.
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  res.once('close', onClose);
  let stat: ObjectStat;
  let plan: MediaPlan;
  let body: Readable | undefined;
  try {
    stat = await storage.stat(name);
    plan = planMediaResponse(req.headers, stat);
    if (!head && hasBody(plan)) {
      try {
        body = await storage.open(name, { range: plan.range, ifMatch: stat.etag, signal: gone.signal });
      } catch (error) {
        if (!isPreconditionFailed(error)) throw error;
        // Replaced between the HEAD and the GET: plan again against the new version, once.
        stat = await storage.stat(name);
        plan = planMediaResponse(req.headers, stat);
        if (hasBody(plan)) body = await storage.open(name, { range: plan.range, ifMatch: stat.etag, signal: gone.signal });
      }
    }
  } catch (error) {
    // The client left while S3 was answering: nobody is there to read an error page.
    if (gone.signal.aborted) return { status: 0, complete: false };
    throw error;
  } finally {
    res.off('close', onClose);
  }
  const sent = (complete: boolean): SentMedia => ({ status: plan.status, range: plan.status === 206 ? plan.range : undefined, complete });
  // From here on the answer is ours to write, also on Fastify.
  hijack(response);
  if (gone.signal.aborted || res.destroyed) {
    body?.destroy();
    return sent(false);
  }
  res.writeHead(plan.status, headersFor(plan, stat, options));
  if (!body) {
    res.end();
    return sent(true);
  }
  try {
    // pipeline destroys the S3 body when the response closes early (the client left), which
    // closes its socket; and destroys the response when S3 fails mid-way (a truncated body).
    await pipeline(body, res);
    return sent(true);
  } catch {
    return sent(false);
  }
}

/** Whether the plan sends bytes (an empty object's 200 has none). */
function hasBody(plan: MediaPlan): plan is MediaPlan & { range: { start: number; end: number } } {
  return plan.range !== undefined && (plan.status === 200 || plan.status === 206);
}

/**
 * The status and byte range to answer `headers` with for an object of this stat (RFC 9110
 * §13.2.2 order: If-None-Match / If-Modified-Since, then If-Range, then Range). Pure, for tests.
 */
export function planMediaResponse(headers: IncomingMessage['headers'], stat: Pick<ObjectStat, 'size' | 'etag' | 'lastModified'>): MediaPlan {
  const whole: MediaPlan = { status: 200, range: stat.size > 0 ? { start: 0, end: stat.size - 1 } : undefined };
  const ifNoneMatch = header(headers, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    if (etagListMatches(ifNoneMatch, stat.etag)) return { status: 304 };
  } else {
    const since = Date.parse(header(headers, 'if-modified-since') ?? '');
    if (!Number.isNaN(since) && seconds(stat.lastModified) <= since) return { status: 304 };
  }
  const rangeHeader = header(headers, 'range');
  if (rangeHeader === undefined) return whole;
  const ifRange = header(headers, 'if-range');
  if (ifRange !== undefined && !ifRangeHolds(ifRange, stat)) return whole;
  const range = parseRange(rangeHeader, stat.size);
  if (range === 'unsatisfiable') return { status: 416 };
  if (range === undefined) return whole;
  return { status: 206, range };
}

/**
 * One `bytes=` range of `Range` against `size`, clamped to it: `undefined` when the header is to
 * be ignored (another unit, malformed, several ranges), `'unsatisfiable'` for a 416.
 */
export function parseRange(value: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value);
  if (!match) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  // A last byte before the first makes the range invalid, so the header is ignored (RFC 9110 §14.1.1).
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
}

function headersFor(plan: MediaPlan, stat: ObjectStat, options: SendMediaOptions): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    ETag: `"${stat.etag}"`,
    'Last-Modified': stat.lastModified.toUTCString(),
    'Cache-Control': options.cacheControl ?? stat.cacheControl ?? 'private, no-cache',
    'Accept-Ranges': 'bytes',
  };
  if (plan.status === 304) return headers;
  headers['X-Content-Type-Options'] = 'nosniff';
  if (options.sandbox !== false) headers['Content-Security-Policy'] = "sandbox; default-src 'none'";
  if (plan.status === 416) {
    headers['Content-Range'] = `bytes */${stat.size}`;
    headers['Content-Length'] = 0;
    return headers;
  }
  headers['Content-Type'] = options.contentType ?? stat.contentType ?? 'application/octet-stream';
  if (options.downloadAs !== undefined) headers['Content-Disposition'] = contentDisposition(options.downloadAs, options.disposition ?? 'attachment');
  if (plan.status === 206 && plan.range) {
    headers['Content-Range'] = `bytes ${plan.range.start}-${plan.range.end}/${stat.size}`;
    headers['Content-Length'] = plan.range.end - plan.range.start + 1;
  } else {
    headers['Content-Length'] = stat.size;
  }
  return headers;
}

/** `If-None-Match`: `*`, or a list of entity tags compared weakly (W/ ignored). */
function etagListMatches(value: string, etag: string): boolean {
  if (value.trim() === '*') return true;
  return value.split(',').some((tag) => tag.trim().replace(/^W\//, '').replace(/^"|"$/g, '') === etag);
}

/** `If-Range`: a strong ETag compared exactly, or a date equal to Last-Modified. */
function ifRangeHolds(value: string, stat: Pick<ObjectStat, 'etag' | 'lastModified'>): boolean {
  const text = value.trim();
  if (text.startsWith('"')) return text === `"${stat.etag}"`;
  if (text.startsWith('W/')) return false;
  const date = Date.parse(text);
  return !Number.isNaN(date) && date === seconds(stat.lastModified);
}

/** HTTP dates have whole seconds. */
function seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000) * 1000;
}

function header(headers: IncomingMessage['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function isPreconditionFailed(error: unknown): boolean {
  return error instanceof StorageOperationError && error.status === 412;
}

/**
 * Fastify's reply would otherwise answer again when the handler returns (or complain that it
 * could not); Express's response has no `hijack`.
 */
function hijack(response: object): void {
  const reply = response as { hijack?: unknown; raw?: unknown };
  if (typeof reply.hijack === 'function' && reply.raw !== undefined) (reply.hijack as () => void).call(response);
}

/**
 * The complete route's JSON body on Express. A complete lists every part (about 60 bytes
 * each), and Uppy's default 5 MiB chunks pass Express's default JSON limit (100 kB, about
 * 1,650 parts) for files above ~8 GiB: the app's parser would answer an HTML 413 after every
 * byte was uploaded. So, on Express only, the complete route reads its own JSON up to
 * {@link COMPLETE_BODY_LIMIT} (10,000 parts fit) before the app's parser sees it, and answers
 * JSON errors. Fastify's default body limit (1 MiB) holds 10,000 parts already.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpStatus } from '@nestjs/common';
import type { DirectUploadErrorBody } from './direct-uploads.http-errors.js';

/** The largest complete body accepted on Express: 10,000 parts with long ETags fit. */
export const COMPLETE_BODY_LIMIT = 1024 * 1024;

interface ExpressLayer {
  name?: string;
}
interface ExpressApp {
  use(handler: (req: IncomingMessage & { path?: string; body?: unknown; _body?: boolean }, res: ServerResponse, next: () => void) => void): unknown;
  router?: { stack?: ExpressLayer[] };
  _router?: { stack?: ExpressLayer[] };
}

/** The pattern of `<path>/s3/multipart/:uploadId/complete` under any global prefix. */
export function completeRoutePattern(path: string): RegExp {
  const segments = path.split('/').map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`(?:^|/)${segments.join('/')}/s3/multipart/[^/]+/complete/?$`);
}

/**
 * Puts the complete route's parser in front of the app's JSON parser (Express 4 and 5).
 * @returns false when there is no Express JSON parser to go in front of (nothing done)
 */
export function installCompleteBodyParser(app: ExpressApp, path: string): boolean {
  const stack = (app.router ?? app._router)?.stack;
  if (!Array.isArray(stack)) return false;
  const parserAt = stack.findIndex((layer) => layer.name === 'jsonParser');
  if (parserAt < 0) return false;
  const pattern = completeRoutePattern(path);
  app.use(function directUploadsCompleteBody(req, res, next) {
    const type = String(req.headers['content-type'] ?? '');
    if (req.method !== 'POST' || !/^application\/json\b/i.test(type) || !pattern.test(req.path ?? (req.url ?? '').split('?')[0]!)) return next();
    readJson(req, res, next);
  });
  // Moved from the end of the stack to just before the app's parser.
  const layer = stack.pop()!;
  stack.splice(parserAt, 0, layer);
  return true;
}

function readJson(req: IncomingMessage & { body?: unknown; _body?: boolean }, res: ServerResponse, next: () => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > COMPLETE_BODY_LIMIT) {
      refused = true;
      chunks.length = 0;
      answer(res, HttpStatus.PAYLOAD_TOO_LARGE, 'Payload Too Large', 'request-too-large', `The complete request is larger than ${COMPLETE_BODY_LIMIT} bytes; list each part once as { "PartNumber", "ETag" } (10,000 parts fit).`);
      return;
    }
    chunks.push(chunk);
  });
  req.on('error', () => {
    if (!refused) answer(res, HttpStatus.BAD_REQUEST, 'Bad Request', 'bad-request', 'The complete request was cut off; send it again.');
    refused = true;
  });
  req.on('end', () => {
    if (refused) return;
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      req.body = text === '' ? {} : (JSON.parse(text) as unknown);
    } catch {
      answer(res, HttpStatus.BAD_REQUEST, 'Bad Request', 'bad-request', 'The complete request is not valid JSON: send { "parts": [{ "PartNumber": 1, "ETag": "…" }, …] }.');
      return;
    }
    // body-parser 1.x (Express 4) skips a request marked parsed; 2.x one whose body was read.
    req._body = true;
    next();
  });
}

function answer(res: ServerResponse, status: number, error: string, reason: string, message: string): void {
  if (res.headersSent) return;
  const body: DirectUploadErrorBody = { statusCode: status, error, reason, message };
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Connection', 'close');
  res.end(JSON.stringify(body));
}

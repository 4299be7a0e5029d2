/**
 * HTTP for hostile-input tests, written byte by byte over a loopback socket: supertest and
 * fetch repair what these tests must send broken (truncated bodies, missing boundaries,
 * oversized headers). Plus the bits every reliability spec shares.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** The raw response text, head and body. */
  text: string;
  body: string;
  /** The body parsed as JSON, or undefined. */
  json?: { statusCode?: number; message?: unknown; error?: unknown };
}

export interface FilePart {
  field: string;
  filename?: string;
  contentType?: string;
  data: Buffer | string;
}

/** A multipart/form-data body with the given parts, closing boundary included. */
export function multipart(parts: FilePart[], boundary = `----nss3${randomBytes(8).toString('hex')}`): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.field}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}`;
    const type = p.contentType ? `\r\nContent-Type: ${p.contentType}` : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Sends one request and reads the answer until the server closes (we send
 * `Connection: close`). `headers` may hold anything, including a 64 KiB value.
 * `hangUpAfterMs` drops the connection that long after sending, like a client that goes away.
 */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer = Buffer.alloc(0),
  timeoutMs = 15_000,
  hangUpAfterMs?: number,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${method} ${path}: no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk) => received.push(chunk));
    // The server may answer early and close while we still write: that is an answer, not a failure.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(received).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      if (!status) {
        reject(new Error(`${method} ${path}: the connection closed without an HTTP answer (${text.length} bytes)`));
        return;
      }
      const [head, ...rest] = text.split('\r\n\r\n');
      const parsed: Record<string, string> = {};
      for (const line of head!.split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) parsed[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      let bodyText = rest.join('\r\n\r\n');
      if (/chunked/i.test(parsed['transfer-encoding'] ?? '')) bodyText = dechunk(bodyText);
      let json: RawResponse['json'];
      try {
        json = bodyText ? JSON.parse(Buffer.from(bodyText, 'latin1').toString('utf8')) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status: Number(status), headers: parsed, text, body: bodyText, json });
    });
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    // No half-close: Node's HTTP server drops the request of a client that sends FIN first.
    socket.write(body);
    if (hangUpAfterMs !== undefined) setTimeout(() => socket.destroy(), hangUpAfterMs);
  });
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/** Every key and every in-progress multipart upload in `bucket`, asked of the server directly. */
export async function bucketContents(client: S3Client, bucket: string): Promise<{ keys: string[]; uploads: string[] }> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return { keys: keys.sort(), uploads: (uploads.Uploads ?? []).map((u) => u.Key!) };
}

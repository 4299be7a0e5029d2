/**
 * Single PutObject requests sent over node:http(s) without the AWS SDK, for collectstatic's
 * tens of thousands of small files: the SDK's per-request middleware, signing and SHA-256 of
 * each body were a third of a run's CPU, and its per-request garbage most of its memory.
 *
 * Used only where it sends what the SDK would: {@link RawPutter.forClient} returns undefined
 * (callers keep the SDK) when the client has middleware beyond its defaults (a caller's
 * counters, rewrites, extra headers), a request handler other than the SDK's
 * `NodeHttpHandler`, FIPS/dual-stack/accelerate endpoints, or credentials the SDK does not
 * resolve through `config.credentials`. The endpoint, addressing style and signing region
 * are the client's (url-signer.ts `computeBase`), the sockets its handler's agents, the
 * credentials its memoized provider (refreshed before they expire), the attempts its
 * `maxAttempts` (5xx, throttling and connection resets are retried, as the SDK does), the
 * clock its `systemClockOffset` (corrected from the server's `Date` after `RequestTimeTooSkewed`).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { createReadStream } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { HeaderSigner } from './sigv4-headers.js';
import { computeBase, encodeKeyPath, type SigningCredentials } from './url-signer.js';

/** What one PutObject sends besides the body. */
export interface RawPutParams {
  key: string;
  contentType: string;
  cacheControl?: string;
  /** Base64 MD5 of the body; the server refuses the body (BadDigest) when it does not match. */
  contentMd5?: string;
}

/**
 * A body streamed from a file of `size` bytes, a chunk at a time (re-read on each attempt),
 * so a file of several MiB costs the upload 64 KiB of memory instead of its size.
 */
export interface RawFileBody {
  path: string;
  size: number;
}

/** An S3 error answer, shaped like the SDK's service exceptions (s3-errors.ts reads it the same way). */
export class RawS3Error extends Error {
  readonly $metadata: { httpStatusCode: number };
  readonly $fault: 'client' | 'server';
  /** The answer's `Date` header (ms), for clock-skew correction. */
  readonly serverTime?: number;
  constructor(code: string, status: number, message: string | undefined, serverTime?: number) {
    super(message ?? code);
    this.name = code;
    this.$metadata = { httpStatusCode: status };
    this.$fault = status >= 500 ? 'server' : 'client';
    if (serverTime !== undefined && !Number.isNaN(serverTime)) this.serverTime = serverTime;
  }
}

interface HandlerConfig {
  httpAgent?: HttpAgent;
  httpsAgent?: HttpsAgent;
  socketTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
}

interface ClientConfig {
  credentials?: () => Promise<SigningCredentials>;
  endpoint?: () => Promise<{ protocol: string; hostname: string; port?: number; path: string }>;
  isCustomEndpoint?: boolean;
  forcePathStyle?: boolean;
  region: () => Promise<string>;
  maxAttempts?: number | (() => Promise<number>);
  useFipsEndpoint?: () => Promise<boolean>;
  useDualstackEndpoint?: () => Promise<boolean>;
  useAccelerateEndpoint?: () => Promise<boolean>;
  requestHandler?: { constructor: { name: string }; configProvider?: Promise<HandlerConfig> };
  /** The SDK's correction of this machine's clock (ms), shared with every request of the client. */
  systemClockOffset?: number;
  disableClockSkewCorrection?: boolean | (() => Promise<boolean>);
  /** When the SDK sends `Expect: 100-continue`: `false` never, `true` always, a number from that body size (default 2 MiB). */
  expectContinueHeader?: boolean | number;
}

const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNABORTED', 'EAI_AGAIN']);
let defaultStack: Set<string> | undefined;

/** PutObject for one bucket through one client's endpoint, credentials and sockets. */
export class RawPutter {
  private constructor(
    private readonly config: ClientConfig,
    private readonly base: ReturnType<typeof computeBase>,
    private readonly agent: HttpAgent | HttpsAgent,
    private readonly timeout: number | undefined,
    private readonly attempts: number,
    private readonly signer: HeaderSigner,
    /** False when the client was built with `disableClockSkewCorrection`. */
    private readonly skewCorrection: boolean,
  ) {
    const url = new URL(base.origin);
    this.target = { protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || undefined };
  }

  /** Where requests go, parsed once. */
  private readonly target: { protocol: string; hostname: string; port: string | undefined };

  /** A raw putter sending what `client` would, or undefined where only the SDK can (see the file comment). */
  static async forClient(client: S3Client, bucket: string, concurrency: number): Promise<RawPutter | undefined> {
    const config = client.config as unknown as ClientConfig;
    const handler = config.requestHandler;
    if (!handler || handler.constructor.name !== 'NodeHttpHandler' || !handler.configProvider) return undefined;
    if (typeof config.credentials !== 'function' || typeof config.region !== 'function') return undefined;
    if (!onlyDefaultMiddleware(client)) return undefined;
    for (const flag of [config.useFipsEndpoint, config.useDualstackEndpoint, config.useAccelerateEndpoint]) {
      if (flag && (await flag())) return undefined;
    }
    const region = await config.region();
    let endpoint: string | undefined;
    if (config.isCustomEndpoint && config.endpoint) {
      const e = await config.endpoint();
      endpoint = `${e.protocol}//${e.hostname.includes(':') && !e.hostname.startsWith('[') ? `[${e.hostname}]` : e.hostname}${e.port ? `:${e.port}` : ''}${e.path}`;
    } else if (config.isCustomEndpoint) return undefined;
    const base = computeBase(bucket, endpoint, config.forcePathStyle ?? false, region);
    const handlerConfig = await handler.configProvider;
    const https = base.origin.startsWith('https:');
    // The handler's own agents (socket limits, TLS options, proxies); a keep-alive one of ours where it creates them lazily.
    const agent =
      (https ? handlerConfig.httpsAgent : handlerConfig.httpAgent) ??
      (https ? new HttpsAgent({ keepAlive: true, maxSockets: concurrency }) : new HttpAgent({ keepAlive: true, maxSockets: concurrency }));
    const maxAttempts = typeof config.maxAttempts === 'function' ? await config.maxAttempts() : (config.maxAttempts ?? 3);
    const timeout = handlerConfig.socketTimeout ?? handlerConfig.requestTimeout;
    const disable = config.disableClockSkewCorrection;
    const skewCorrection = (typeof disable === 'function' ? await disable() : disable) !== true;
    return new RawPutter(config, base, agent, timeout, Math.max(1, maxAttempts), new HeaderSigner(base.region), skewCorrection);
  }

  /** PUTs `body` to `key`, retrying 5xx, throttling and connection resets. */
  async put(params: RawPutParams, body: Buffer | RawFileBody): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const offset = this.skewCorrection ? (this.config.systemClockOffset ?? 0) : 0;
      try {
        await this.once(params, body, offset);
        return;
      } catch (error) {
        // A clock off by minutes: sign again with the server's time, as the SDK does (and tell the SDK).
        if (attempt < this.attempts && this.correctClock(error, offset)) continue;
        if (attempt >= this.attempts || !retryable(error)) throw error;
        // The SDK's standard strategy: full-jitter exponential backoff from 100 ms, at most 20 s.
        await new Promise((ok) => setTimeout(ok, Math.random() * Math.min(20_000, 100 * 2 ** attempt)));
      }
    }
  }

  /**
   * Whether `error` says the request, signed with clock offset `used`, had a skewed time that
   * the server's `Date` corrects. Requests in flight together all fail so; the first one sets
   * the client's offset, and every one of them signs again.
   */
  private correctClock(error: unknown, used: number): boolean {
    if (!this.skewCorrection || !(error instanceof RawS3Error) || error.name !== 'RequestTimeTooSkewed' || error.serverTime === undefined) return false;
    const offset = error.serverTime - Date.now();
    if (Math.abs(offset - used) < 60_000) return false;
    if (Math.abs(offset - (this.config.systemClockOffset ?? 0)) >= 60_000) this.config.systemClockOffset = offset;
    return true;
  }

  private async once(params: RawPutParams, body: Buffer | RawFileBody, clockOffset: number): Promise<void> {
    const credentials = await this.config.credentials!();
    const path = this.base.pathPrefix + encodeKeyPath(params.key);
    const length = Buffer.isBuffer(body) ? body.length : body.size;
    const own: Record<string, string> = { 'content-length': String(length), 'content-type': params.contentType };
    if (params.cacheControl !== undefined) own['cache-control'] = params.cacheControl;
    if (params.contentMd5 !== undefined) own['content-md5'] = params.contentMd5;
    const headers = this.signer.sign({ method: 'PUT', host: this.base.host, path, headers: own }, credentials, Date.now() + clockOffset);
    // A file body from the client's `expectContinueHeader` size on (2 MiB by default, as the SDK)
    // waits for the server's go-ahead: a refusal (signature, time, permission) then comes before
    // any byte is sent rather than as a reset halfway.
    const file = Buffer.isBuffer(body) || body.size === 0 ? undefined : body;
    const expect = this.config.expectContinueHeader ?? 2 * 1024 * 1024;
    const waits = file !== undefined && (typeof expect === 'number' ? file.size >= expect : expect);
    if (waits) headers.expect = '100-continue';
    const { protocol, hostname, port } = this.target;
    const send = protocol === 'https:' ? httpsRequest : httpRequest;
    await new Promise<void>((resolve, reject) => {
      let started = false;
      let fallback: NodeJS.Timeout | undefined;
      const start = () => {
        clearTimeout(fallback);
        if (started || !file) return;
        started = true;
        sendFile(req, file);
      };
      const req = send(
        { agent: this.agent, method: 'PUT', protocol, hostname, port, path, headers },
        (res) => {
          started = true; // an answer before the body: nothing more is sent
          clearTimeout(fallback);
          void readAnswer(res)
            .then(resolve, reject)
            .finally(() => {
              // Answered before the whole body went out: the socket cannot carry another request.
              if (!req.writableFinished) req.destroy();
            });
        },
      );
      if (this.timeout) {
        req.setTimeout(this.timeout, () => {
          const error = Object.assign(new Error(`no answer within ${this.timeout} ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' });
          req.destroy(error);
        });
      }
      req.on('error', (error) => {
        clearTimeout(fallback);
        reject(error);
      });
      if (Buffer.isBuffer(body)) req.end(body);
      else if (!file) req.end();
      else if (!waits) start();
      else {
        req.on('continue', start);
        // A server that ignores Expect gets the body after a second (as curl does) of the
        // request's own connection: not counted while it waits for a socket or connects.
        const wait = Math.min(1000, this.timeout ? this.timeout / 2 : 1000);
        req.on('socket', (socket) => {
          const arm = () => {
            if (!started) fallback = setTimeout(start, wait);
          };
          if (socket.connecting) socket.once('connect', arm);
          else arm();
        });
        req.flushHeaders();
      }
    });
  }
}

/**
 * Streams exactly `size` bytes of the file into `req`. A file that has shrunk since it was
 * hashed fails the request (the server would wait for the missing bytes); one whose bytes
 * changed is refused by the server through Content-MD5.
 */
function sendFile(req: ClientRequest, { path, size }: RawFileBody): void {
  const stream = createReadStream(path, { start: 0, end: size - 1, highWaterMark: 64 * 1024 });
  let sent = 0;
  stream.on('data', (chunk) => {
    sent += chunk.length;
    if (!req.write(chunk)) {
      stream.pause();
      req.once('drain', () => stream.resume());
    }
  });
  stream.on('end', () => {
    if (sent === size) req.end();
    else req.destroy(Object.assign(new Error(`"${path}" has ${sent} bytes, not the ${size} it had when it was hashed`), { name: 'FileChanged' }));
  });
  stream.on('error', (error) => req.destroy(error));
  req.on('close', () => stream.destroy());
}

async function readAnswer(res: IncomingMessage): Promise<void> {
  const status = res.statusCode ?? 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  if (status >= 200 && status < 300) return;
  const text = Buffer.concat(chunks).toString('utf8');
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? (status >= 500 ? 'InternalError' : `Http${status}`);
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  throw new RawS3Error(code, status, message, res.headers.date === undefined ? undefined : Date.parse(res.headers.date));
}

function retryable(error: unknown): boolean {
  if (error instanceof RawS3Error) {
    const status = error.$metadata.httpStatusCode;
    return status >= 500 || status === 429 || error.name === 'SlowDown' || error.name === 'RequestTimeout';
  }
  const code = (error as { code?: string }).code;
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/** The client's stack holds only what every S3Client has: nothing a caller added. */
function onlyDefaultMiddleware(client: S3Client): boolean {
  if (!defaultStack) {
    const fresh = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    defaultStack = new Set(fresh.middlewareStack.identify());
    fresh.destroy();
  }
  return client.middlewareStack.identify().every((name) => defaultStack!.has(name));
}

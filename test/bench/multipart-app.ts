/**
 * The child processes of test/bench/multipart.bench.ts, one per role, so that each one's memory
 * is its own:
 * - `sign`: the app of a direct upload. A plain node:http server that only creates, signs and
 *   completes (the calls a browser uploader makes); the part PUTs go straight to S3 from the
 *   client process. Prints `listening <port>` when ready.
 * - `save <file>`: one server-side `save()` of a file read stream, default options. Prints one
 *   JSON line: seconds, RSS before, peak RSS (MiB).
 * Both read the server from S3_TEST_* and the bucket from BENCH_BUCKET.
 */
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { createMediaSigner, createS3Client, ensureBucket, MediaStorage, resolveStorageOptions, type CompletedPart } from 'nestjs-s3-storage';
import { benchServer } from './bench-util.js';

/** VmRSS and VmHWM (the kernel's high-water mark) of a process, in MiB. */
export function memoryOf(pid: number | 'self'): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN);
  return { rss: kib('VmRSS:') / 1024, hwm: kib('VmHWM:') / 1024 };
}

/** Resets a process's VmHWM to its current RSS (Linux `clear_refs` 5), so the peak is this run's. */
export function resetPeak(pid: number | 'self'): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

async function storageFromEnv(): Promise<{ storage: MediaStorage; destroy: () => void }> {
  const server = benchServer();
  const bucket = process.env.BENCH_BUCKET;
  if (!server || !bucket) throw new Error('multipart-app: set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY and BENCH_BUCKET');
  // Default options: only the connection is given.
  const { media } = resolveStorageOptions({
    media: { bucket, endpoint: server.endpoint, region: server.region, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } },
  });
  const client = createS3Client(media);
  // What an app's bootstrap does; it also loads the SDK's request path before anything is measured.
  await ensureBucket(client, media, 'create', 10_000);
  return { storage: new MediaStorage(client, media, createMediaSigner(media, client)), destroy: () => client.destroy() };
}

async function json(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}

async function sign(): Promise<void> {
  const { storage } = await storageFromEnv();
  const prefix = 'bench';
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    json(req)
      .then(async (body) => {
        if (req.url === '/create') {
          return reply(200, await storage.createMultipartUpload({ prefix, name: String(body.name), maxBytes: Number(body.maxBytes), contentType: 'application/octet-stream' }));
        }
        if (req.url === '/sign') {
          return reply(200, await storage.signParts(String(body.name), String(body.uploadId), body.partNumbers as number[], { prefix }));
        }
        if (req.url === '/complete') {
          return reply(200, await storage.completeMultipartUpload(String(body.name), String(body.uploadId), body.parts as CompletedPart[], { prefix }));
        }
        if (req.url === '/abort') return reply(200, await storage.abortMultipartUpload(String(body.name), String(body.uploadId), { prefix }));
        reply(404, { message: `no route ${req.url}` });
      })
      .catch((error: unknown) => reply(500, { message: error instanceof Error ? error.message : String(error) }));
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
  });
}

async function save(file: string): Promise<void> {
  const { storage, destroy } = await storageFromEnv();
  resetPeak('self');
  const before = memoryOf('self').rss;
  const start = process.hrtime.bigint();
  const name = await storage.save('bench/save.bin', createReadStream(file));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const { hwm } = memoryOf('self');
  await storage.delete(name);
  destroy();
  console.log(JSON.stringify({ seconds, rssBeforeMiB: before, peakMiB: hwm, name }));
}

// Run only as a child process (the bench imports memoryOf/resetPeak from here).
if (process.argv[1]?.endsWith('multipart-app.js')) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const [mode, file] = process.argv.slice(2);
  const run = mode === 'sign' ? sign() : mode === 'save' && file ? save(file) : Promise.reject(new Error('usage: multipart-app.js sign | save <file>'));
  run.catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

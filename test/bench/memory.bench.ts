/**
 * Peak memory of an app receiving a 1 GiB upload: the sample app's streamed
 * `POST /users/:id/files` (MediaUploadInterceptor) against the same upload through
 * `FileInterceptor` with multer's default memory storage. Each app is a fresh process;
 * its peak RSS is the kernel's high-water mark (VmHWM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { benchServer, dropBucket, table } from './bench-util.js';

const MIB = 1024 * 1024;

interface Measured {
  status: number;
  seconds: number;
  startMiB: number;
  peakMiB: number;
}

function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN);
  return { rss: kib('VmRSS:') / 1024, hwm: kib('VmHWM:') / 1024 };
}

async function startApp(script: string, env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start: ${output}`)), 30_000);
    const onData = (data: Buffer): void => {
      output += data.toString();
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}: ${output}`)));
  });
  return { child, port };
}

/** POSTs a multipart body with one `file` field of `size` bytes, generated as it is sent. */
function upload(port: number, path: string, size: number): Promise<number> {
  const boundary = `----nss3bench${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const block = randomBytes(MIB);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': head.length + size + tail.length } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.write(head);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const chunk = block.subarray(0, Math.min(MIB, size - sent));
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end(tail);
    };
    pump();
  });
}

async function measure(script: string, env: NodeJS.ProcessEnv, ready: RegExp, size: number): Promise<Measured> {
  const { child, port } = await startApp(script, env, ready);
  try {
    const startMiB = memoryOf(child.pid!).rss;
    const started = process.hrtime.bigint();
    const status = await upload(port, '/users/bench/files', size);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { status, seconds, startMiB, peakMiB: memoryOf(child.pid!).hwm };
  } finally {
    child.kill('SIGTERM');
  }
}

export async function runMemoryBench(sizeMiB = 1024): Promise<void> {
  const server = benchServer();
  if (!server) {
    console.log('\n## Upload memory: skipped (set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY)');
    return;
  }
  const bucket = `nss3-bench-mem-${Date.now().toString(36)}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    PORT: '0',
    MEDIA_S3_ENDPOINT_URL: server.endpoint,
    MEDIA_S3_REGION: server.region,
    MEDIA_S3_ACCESS_KEY: server.accessKeyId,
    MEDIA_S3_SECRET_KEY: server.secretAccessKey,
    MEDIA_S3_BUCKET_NAME: bucket,
    FILE_MAX_BYTES: String(2 * 1024 * MIB),
  };
  const sampleApp = fileURLToPath(new URL('../sample-app/src/main.js', import.meta.url));
  const multerApp = fileURLToPath(new URL('./multer-app.js', import.meta.url));
  const size = sizeMiB * MIB;
  let ours: Measured;
  let theirs: Measured;
  try {
    ours = await measure(sampleApp, env, /ready: http:\/\/localhost:(\d+)\//, size);
    theirs = await measure(multerApp, env, /listening (\d+)/, size);
  } finally {
    await dropBucket(server, bucket);
  }
  console.log(`\n## Upload memory: one ${sizeMiB} MiB file to POST /users/:id/files, peak RSS of the app process\n`);
  console.log(
    table([
      ['app', 'HTTP', 'seconds', 'RSS before MiB', 'peak RSS MiB', 'ratio vs multer'],
      ['sample app (MediaUploadInterceptor)', ours.status, ours.seconds, ours.startMiB, ours.peakMiB, ours.peakMiB / theirs.peakMiB],
      ['FileInterceptor + memory storage', theirs.status, theirs.seconds, theirs.startMiB, theirs.peakMiB, 1],
    ]),
  );
  console.log(`target: sample app peak RSS < 200 MiB -> ${ours.peakMiB < 200 && ours.status === 201 ? 'met' : 'NOT MET'}`);
}

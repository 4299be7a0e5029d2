/**
 * `npm run bench multipart`: one 512 MiB file to the same server three ways, in alternating
 * rounds (median of 3 each), against `aws s3 cp` of the same file measured in the same run:
 * - direct: the file goes up through presigned part URLs (`signParts()`), 4 PUTs in parallel,
 *   by this process (node:http, each part streamed from the file), completed with
 *   `completeMultipartUpload()`. The app that creates, signs and completes is a child
 *   process; its RSS growth during the upload is the memory figure.
 * - save: server-side `save()` of a file read stream with default options, in a child
 *   process (time and peak RSS are its own).
 * Ratios are throughput ratios, ours / aws (= aws seconds / our seconds): above 1 is faster.
 */
import { AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveStorageOptions } from 'nestjs-s3-storage';
import { benchServer, dropBucket, rawS3Client, table, type BenchServer } from './bench-util.js';
import { memoryOf, resetPeak } from './multipart-app.js';

const MIB = 1024 * 1024;
const AWS = '/usr/bin/aws';
const APP = fileURLToPath(new URL('./multipart-app.js', import.meta.url));
const PARALLEL_PUTS = 4;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = (since: bigint): number => Number(process.hrtime.bigint() - since) / 1e9;

/** A file of random bytes (incompressible, like a video), written 1 MiB at a time. */
async function randomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let written = 0; written < size; written += MIB) {
    if (!out.write(randomBytes(Math.min(MIB, size - written)))) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** `aws s3 cp` with its defaults (no config file: 8 MiB parts, 10 requests at a time). */
function awsEnv(server: BenchServer): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: tmpdir(),
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_DEFAULT_REGION: server.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, maxBuffer: 16 * MIB }, (error, stdout, stderr) => (error ? reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

async function awsCopy(server: BenchServer, path: string, bucket: string): Promise<number> {
  const start = process.hrtime.bigint();
  await run(AWS, ['--endpoint-url', server.endpoint, 's3', 'cp', '--only-show-errors', path, `s3://${bucket}/bench/aws.bin`], awsEnv(server));
  return seconds(start);
}

function childEnv(server: BenchServer, bucket: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    S3_TEST_ENDPOINT: server.endpoint,
    S3_TEST_ACCESS_KEY: server.accessKeyId,
    S3_TEST_SECRET_KEY: server.secretAccessKey,
    S3_TEST_REGION: server.region,
    BENCH_BUCKET: bucket,
  };
}

interface SaveRun {
  seconds: number;
  rssBeforeMiB: number;
  peakMiB: number;
}

async function saveInChild(server: BenchServer, path: string, bucket: string): Promise<SaveRun> {
  const out = await run(process.execPath, [APP, 'save', path], childEnv(server, bucket));
  return JSON.parse(out.trim().split('\n').pop()!) as SaveRun;
}

async function startSigner(server: BenchServer, bucket: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [APP, 'sign'], { env: childEnv(server, bucket), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the signing app did not start: ${output}`)), 30_000);
    const onData = (data: Buffer): void => {
      output += data.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the signing app exited with ${code}: ${output}`)));
  });
  return { child, port };
}

async function call<T>(port: number, route: string, body: unknown): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  const text = await res.text();
  if (!res.ok) throw new Error(`${route}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** PUTs bytes `start`..`end` (inclusive) of the file to a presigned URL, streamed; resolves with the ETag. */
function putPart(agent: Agent, url: string, path: string, start: number, end: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', agent, headers: { 'Content-Length': end - start + 1 } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const etag = res.headers.etag;
        if (res.statusCode === 200 && etag) resolve(etag);
        else reject(new Error(`part PUT: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 500)}`));
      });
    });
    req.on('error', reject);
    const file = createReadStream(path, { start, end });
    file.on('error', (error) => req.destroy(error));
    file.pipe(req);
  });
}

interface DirectRun {
  seconds: number;
  /** Of which completeMultipartUpload() (ListParts, the sniffing GET, publishing). */
  completeSeconds: number;
  appGrowthMiB: number;
  parts: number;
  partSize: number;
}

/** One direct upload: create, then each of 4 workers signs a part, PUTs it, next; then complete. */
async function directUpload(server: BenchServer, path: string, size: number, bucket: string): Promise<DirectRun> {
  const { child, port } = await startSigner(server, bucket);
  const agent = new Agent({ keepAlive: true, maxSockets: PARALLEL_PUTS });
  try {
    resetPeak(child.pid!);
    const before = memoryOf(child.pid!).rss;
    const start = process.hrtime.bigint();
    const handle = await call<{ uploadId: string; name: string; partSize: number }>(port, '/create', { name: 'direct.bin', maxBytes: size });
    const partSize = handle.partSize;
    const count = Math.ceil(size / partSize);
    const etags: string[] = [];
    let next = 1;
    const worker = async (): Promise<void> => {
      for (let partNumber = next++; partNumber <= count; partNumber = next++) {
        // One sign call per part, as Uppy makes them.
        const [signed] = await call<{ partNumber: number; url: string }[]>(port, '/sign', { name: handle.name, uploadId: handle.uploadId, partNumbers: [partNumber] });
        const from = (partNumber - 1) * partSize;
        etags[partNumber - 1] = await putPart(agent, signed!.url, path, from, Math.min(size, from + partSize) - 1);
      }
    };
    try {
      await Promise.all(Array.from({ length: PARALLEL_PUTS }, worker));
    } catch (error) {
      await call(port, '/abort', { name: handle.name, uploadId: handle.uploadId }).catch(() => undefined);
      throw error;
    }
    const completing = process.hrtime.bigint();
    const stored = await call<{ key: string; size: number }>(port, '/complete', {
      name: handle.name,
      uploadId: handle.uploadId,
      parts: etags.map((etag, i) => ({ partNumber: i + 1, etag })),
    });
    const completeSeconds = seconds(completing);
    const elapsed = seconds(start);
    const { hwm } = memoryOf(child.pid!);
    if (stored.size !== size) throw new Error(`direct upload stored ${stored.size} bytes, not ${size}`);
    const raw = rawS3Client(server);
    await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: stored.key })).finally(() => raw.destroy());
    return { seconds: elapsed, completeSeconds, appGrowthMiB: hwm - before, parts: count, partSize };
  } finally {
    agent.destroy();
    child.kill('SIGTERM');
  }
}

/** Aborts what a failed round left open, so the bucket can be dropped. */
async function abortOpenUploads(client: S3Client, bucket: string): Promise<void> {
  const open = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket })).catch(() => undefined);
  for (const upload of open?.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key!, UploadId: upload.UploadId! })).catch(() => undefined);
  }
}

export async function runMultipartBench(sizeMiB = 512, rounds = 3): Promise<void> {
  const server = benchServer();
  if (!server) {
    console.log('\n## Multipart: skipped (set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY)');
    return;
  }
  const aws = await run(AWS, ['--version'], awsEnv(server)).catch(() => undefined);
  if (!aws) {
    console.log(`\n## Multipart: skipped (${AWS} not found: apt-get install awscli)`);
    return;
  }
  const bucket = `nss3-bench-mpu-${Date.now().toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), 'nss3-bench-mpu-'));
  const path = join(dir, 'big.bin');
  const size = sizeMiB * MIB;
  const raw = rawS3Client(server);
  const awsRuns: number[] = [];
  const saveRuns: SaveRun[] = [];
  const directRuns: DirectRun[] = [];
  try {
    await randomFile(path, size);
    await run(AWS, ['--endpoint-url', server.endpoint, 's3', 'mb', `s3://${bucket}`], awsEnv(server));
    const startups: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // The CLI's own start-up (Python, botocore) is part of what `aws s3 cp` costs a user, but a
      // stricter figure leaves it out: `aws --version` is a lower bound of it.
      const startup = process.hrtime.bigint();
      await run(AWS, ['--version'], awsEnv(server));
      startups.push(seconds(startup));
      awsRuns.push(await awsCopy(server, path, bucket));
      await raw.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bench/aws.bin' }));
      saveRuns.push(await saveInChild(server, path, bucket));
      directRuns.push(await directUpload(server, path, size, bucket));
    }
    const awsSeconds = median(awsRuns);
    const saveSeconds = median(saveRuns.map((r) => r.seconds));
    const directSeconds = median(directRuns.map((r) => r.seconds));
    const awsStartup = median(startups);
    const directRatio = awsSeconds / directSeconds;
    const saveRatio = awsSeconds / saveSeconds;
    const directNet = (awsSeconds - awsStartup) / directSeconds;
    const saveNet = (awsSeconds - awsStartup) / saveSeconds;
    const growth = median(directRuns.map((r) => r.appGrowthMiB));
    const savePeakGrowth = median(saveRuns.map((r) => r.peakMiB - r.rssBeforeMiB));
    // The defaults as resolved by the library itself (no partSize/queueSize given).
    const { partSize, queueSize } = resolveStorageOptions({ media: { bucket } }).media;
    const bound = (partSize * (queueSize + 1)) / MIB;
    const list = (xs: number[]): string => xs.map((s) => s.toFixed(2)).join(' / ');
    console.log(`\n## Multipart: one ${sizeMiB} MiB file (random bytes), ${rounds} alternating rounds (median); ratio = throughput ours / aws s3 cp (above 1: faster)\n`);
    console.log(
      table([
        ['uploader', 'seconds per round', 'MiB/s', 'ratio vs aws', 'ratio vs aws net of start-up'],
        [`direct: signParts() URLs, ${PARALLEL_PUTS} parallel PUTs of ${directRuns[0]!.partSize / MIB} MiB, completeMultipartUpload()`, list(directRuns.map((r) => r.seconds)), sizeMiB / directSeconds, directRatio, directNet],
        [`save(name, fs.createReadStream(file)), default options`, list(saveRuns.map((r) => r.seconds)), sizeMiB / saveSeconds, saveRatio, saveNet],
        [`aws s3 cp (${aws.trim().split(' ')[0]}, defaults: 8 MiB parts, 10 at a time)`, list(awsRuns), sizeMiB / awsSeconds, 1, 1],
      ]),
    );
    console.log(`(direct: of which completeMultipartUpload() ${list(directRuns.map((r) => r.completeSeconds))} s)`);
    console.log(`(aws s3 cp times include the CLI's start-up; \`aws --version\` alone took ${list(startups)} s, median ${awsStartup.toFixed(2)} s, subtracted in the last column)\n`);
    console.log(
      table([
        ['memory', 'MiB per round', 'median MiB', 'target'],
        ['signing app: RSS growth during a direct upload (peak - before)', list(directRuns.map((r) => r.appGrowthMiB)), growth, '< 20'],
        ['save() process: peak RSS - RSS before', list(saveRuns.map((r) => r.peakMiB - r.rssBeforeMiB)), savePeakGrowth, `bound ${bound}`],
        ['save() process: peak RSS', list(saveRuns.map((r) => r.peakMiB)), median(saveRuns.map((r) => r.peakMiB)), ''],
      ]),
    );
    console.log(
      `\nsave() holds at most partSize x (queueSize + 1) = ${partSize / MIB} MiB x ${queueSize + 1} = ${bound} MiB of part buffers per upload with the defaults (queueSize ${queueSize} parts in flight, one filling), plus 1 MiB of read-ahead; the source's own chunks (1 MiB each, copied into the parts) stay in RSS until V8 collects them, which is the rest of the peak.`,
    );
    const verdict = (ratio: number, net: number, target: number): string =>
      `${ratio >= target ? 'met' : 'NOT MET'} (net of the CLI's start-up: ${net >= target ? 'met' : 'not met'})`;
    console.log(`target: direct ratio >= 0.9 -> ${verdict(directRatio, directNet, 0.9)}`);
    console.log(`target: signing app RSS growth < 20 MiB -> ${growth < 20 ? 'met' : 'NOT MET'}`);
    console.log(`target: save() ratio >= 1.0 -> ${verdict(saveRatio, saveNet, 1)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await abortOpenUploads(raw, bucket);
    raw.destroy();
    await dropBucket(server, bucket);
  }
}

/**
 * `collectstatic` against `aws s3 sync` (Debian's awscli v2, /usr/bin/aws): the same
 * generated tree of 2,000 files, the same S3 server, the same run. Both tools run as
 * processes from the command line, as a deploy script would run them, so start-up time
 * counts on both sides.
 *
 * Timed runs talk to the server directly. Request counts come from extra no-change runs
 * through a counting HTTP proxy (it forwards the Host header unchanged, so SigV4 still
 * verifies).
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { benchServer, dropBucket, rawS3Client, table } from './bench-util.js';

const FILES = 2000;
const AWS = '/usr/bin/aws';
const REPEAT_NO_CHANGE = 3;

type Server3 = NonNullable<ReturnType<typeof benchServer>>;

/** Prints first-run and no-change timings and request counts, ours next to `aws s3 sync`. */
export async function runStaticBench(): Promise<void> {
  const server = benchServer();
  if (!server) {
    console.log('\nstatic: skipped (set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY; test/s3-server/ceph.sh writes them)');
    return;
  }
  const cli = resolve(process.cwd(), 'dist/cjs/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" first`);
  const haveAws = existsSync(AWS);

  const dir = mkdtempSync(join(tmpdir(), 'nss3-static-bench-'));
  const client = rawS3Client(server);
  const tag = randomBytes(3).toString('hex');
  const ours = `nss3-bench-static-${tag}`;
  const theirs = `nss3-bench-sync-${tag}`;
  const proxy = await countingProxy(server.endpoint);
  try {
    const bytes = generateTree(dir);
    await client.send(new CreateBucketCommand({ Bucket: ours }));
    await client.send(new CreateBucketCommand({ Bucket: theirs }));

    const collect = (endpoint = server.endpoint) => run(process.execPath, [cli, 'collectstatic', dir], collectEnv(server, ours, endpoint));
    const sync = (endpoint = server.endpoint) =>
      run(AWS, ['s3', 'sync', dir, `s3://${theirs}/static/`, '--endpoint-url', endpoint, '--only-show-errors', '--no-progress'], awsEnv(server));

    console.log(`\nstatic: collectstatic vs aws s3 sync — ${FILES.toLocaleString('en-US')} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB, ${server.endpoint}`);
    const oursFirst = await collect();
    const oursFirstSummary = /uploaded \d+, unchanged \d+, deleted \d+/.exec(oursFirst.stdout)?.[0] ?? '?';
    const awsFirst = haveAws ? await sync() : undefined;

    const oursAgain: number[] = [];
    const awsAgain: number[] = [];
    let oursAgainSummary = '';
    for (let i = 0; i < REPEAT_NO_CHANGE; i++) {
      const r = await collect();
      oursAgain.push(r.seconds);
      oursAgainSummary = /uploaded \d+, unchanged \d+, deleted \d+/.exec(r.stdout)?.[0] ?? '?';
      if (haveAws) awsAgain.push((await sync()).seconds);
    }

    proxy.reset();
    await collect(proxy.url);
    const oursRequests = proxy.snapshot();
    proxy.reset();
    const awsRequests = haveAws ? (await sync(proxy.url), proxy.snapshot()) : undefined;

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratio = (a: number, b: number | undefined) => (b === undefined ? 'n/a' : `${(a / b).toFixed(2)}x`);
    const secs = (s: number | undefined) => (s === undefined ? 'n/a' : `${s.toFixed(2)} s`);
    const reqs = (c: Counts | undefined) =>
      c === undefined ? 'n/a' : `${c.total} (${c.list} list, ${c.put} put, ${c.head} head, ${c.get} get)`;
    const oursNoChange = median(oursAgain);
    const awsNoChange = haveAws ? median(awsAgain) : undefined;

    console.log(
      table([
        ['', 'nestjs-s3-storage collectstatic', 'aws s3 sync', 'ours / aws'],
        ['first run', secs(oursFirst.seconds), secs(awsFirst?.seconds), ratio(oursFirst.seconds, awsFirst?.seconds)],
        [`no-change re-run (median of ${REPEAT_NO_CHANGE})`, secs(oursNoChange), secs(awsNoChange), ratio(oursNoChange, awsNoChange)],
        ['no-change re-run requests', reqs(oursRequests), reqs(awsRequests), awsRequests ? ratio(oursRequests.total, awsRequests.total) : 'n/a'],
      ]),
    );
    const each = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(', ');
    console.log(`no-change runs (s): collectstatic ${each(oursAgain)}; aws s3 sync ${haveAws ? each(awsAgain) : 'n/a'}`);
    console.log(`collectstatic first run: ${oursFirstSummary}; re-run: ${oursAgainSummary}`);
    console.log('(collectstatic keeps file md5s in node_modules/.cache/nestjs-s3-storage, trusting size+mtime as aws s3 sync does; files written in the last second are re-read)');
    if (!haveAws) console.log(`(${AWS} not found: apt-get install -y awscli to compare)`);

    const checks: [string, boolean | undefined][] = [
      ['no-change re-run: at most 3 list requests', oursRequests.list <= 3],
      ['no-change re-run: no uploads', oursRequests.put === 0 && /^uploaded 0,/.test(oursAgainSummary)],
      ['no-change re-run faster than aws s3 sync', awsNoChange === undefined ? undefined : oursNoChange < awsNoChange],
      ['first run no slower than aws s3 sync', awsFirst === undefined ? undefined : oursFirst.seconds <= awsFirst.seconds],
    ];
    for (const [label, ok] of checks) console.log(`  ${ok === undefined ? 'n/a ' : ok ? 'PASS' : 'MISS'}  ${label}`);
  } finally {
    await proxy.close();
    for (const bucket of [ours, theirs]) await dropBucket(server, bucket).catch(() => undefined);
    client.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * 2,000 files shaped like a real static tree: images of mixed sizes, CSS that references
 * them (and imports a shared base), JS with source maps, bundler-hashed assets, fonts, and
 * a few large files. Deterministic sizes; random bytes so nothing compresses or dedupes.
 */
function generateTree(root: string): number {
  let bytes = 0;
  let count = 0;
  const write = (name: string, content: string | Buffer) => {
    const path = join(root, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    bytes += Buffer.byteLength(content);
    count++;
  };
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const sizes = (min: number, max: number) => Math.round(min * (max / min) ** rand()); // log-uniform

  const images: string[] = [];
  for (let i = 0; i < 1150; i++) {
    const name = `img/set${i % 20}/image${i}.png`;
    write(name, randomBytes(sizes(300, 80_000)));
    images.push(name);
  }
  for (let i = 0; i < 20; i++) write(`media/video${i}.bin`, randomBytes(sizes(300_000, 3_000_000)));
  for (let i = 0; i < 80; i++) write(`fonts/font${i}.woff2`, randomBytes(sizes(10_000, 60_000)));
  write('css/base.css', `body{margin:0;background:url(../${images[0]})}\n`);
  for (let i = 0; i < 99; i++) {
    const refs = Array.from({ length: 10 }, (_, j) => `.c${i}-${j}{background:url("../${images[(i * 10 + j) % images.length]}")}`);
    write(`css/page${i}.css`, `@import "base.css";\n${refs.join('\n')}\n@font-face{src:url(../fonts/font${i % 80}.woff2)}\n/*# sourceMappingURL=page${i}.css.map */\n`);
    write(`css/page${i}.css.map`, JSON.stringify({ version: 3, sources: [`page${i}.scss`], mappings: 'AAAA'.repeat(sizes(10, 2000)) }));
  }
  for (let i = 0; i < 250; i++) {
    write(`js/module${i}.js`, `export const m${i} = ${JSON.stringify(randomBytes(sizes(500, 40_000)).toString('base64'))};\n//# sourceMappingURL=module${i}.js.map\n`);
    write(`js/module${i}.js.map`, JSON.stringify({ version: 3, mappings: 'AAAA'.repeat(sizes(10, 3000)) }));
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  while (count < FILES) {
    const hash = Array.from(randomBytes(8), (b) => alphabet[b % 62]).join('');
    write(`assets/chunk${count}-${hash}.js`, randomBytes(sizes(1000, 50_000)).toString('base64'));
  }
  return bytes;
}

function collectEnv(server: Server3, bucket: string, endpoint: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_STORAGE_BUCKET_NAME: bucket,
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_S3_ENDPOINT_URL: endpoint,
    AWS_S3_REGION: server.region,
  };
}

function awsEnv(server: Server3): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: tmpdir(),
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_DEFAULT_REGION: server.region,
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  };
}

/** Runs a command to completion; throws with its stderr on a non-zero exit. */
function run(command: string, args: string[], env: Record<string, string>): Promise<{ seconds: number; stdout: string }> {
  return new Promise((done, fail) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) done({ seconds, stdout });
      else fail(new Error(`${command} ${args[0] ?? ''} ${args[1] ?? ''} exited with ${code}: ${stderr.trim().slice(0, 500)}`));
    });
  });
}

interface Counts {
  total: number;
  list: number;
  put: number;
  head: number;
  get: number;
  other: number;
}

/** An HTTP proxy in front of the S3 server that counts requests by kind. */
async function countingProxy(target: string): Promise<{ url: string; reset(): void; snapshot(): Counts; close(): Promise<void> }> {
  const upstream = new URL(target);
  let counts: Counts = { total: 0, list: 0, put: 0, head: 0, get: 0, other: 0 };
  const server: Server = createServer((req, res) => {
    counts.total++;
    const query = req.url?.split('?')[1] ?? '';
    if (req.method === 'GET' && /(^|&)(list-type=2|prefix=|delimiter=)/.test(query)) counts.list++;
    else if (req.method === 'PUT') counts.put++;
    else if (req.method === 'HEAD') counts.head++;
    else if (req.method === 'GET') counts.get++;
    else counts.other++;
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    reset: () => void (counts = { total: 0, list: 0, put: 0, head: 0, get: 0, other: 0 }),
    snapshot: () => ({ ...counts }),
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}


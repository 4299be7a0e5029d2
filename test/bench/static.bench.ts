/**
 * `collectstatic` against `aws s3 sync` (Debian's awscli v2, /usr/bin/aws): the same
 * generated tree, the same S3 server, the same run, at 2,000 and 20,000 files
 * (`STATIC_BENCH_FILES=2000` for a quick run; `STATIC_BENCH_REPEAT` sets the repetitions).
 *
 * Three tools: `collectstatic` as deployed by default (hashed copies and originals: twice the
 * objects `aws s3 sync` writes), `collectstatic --no-originals` (the same object count), and
 * `aws s3 sync`. Each runs as a process from the command line, as a deploy script would run
 * it, so start-up counts on every side. Each repetition gives each tool a fresh bucket: a
 * first run (no hash cache), then a no-change run. Every figure is the median of the
 * repetitions: time, HTTP requests (counted by a proxy in front of the server, used by all
 * three tools alike; it forwards the Host header, so SigV4 still verifies) and the child's
 * peak RSS (`/usr/bin/time`).
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { benchServer, dropBucket, rawS3Client, table } from './bench-util.js';

const AWS = '/usr/bin/aws';
const TIME = '/usr/bin/time';
const SIZES = (process.env.STATIC_BENCH_FILES ?? '2000,20000').split(',').map((n) => Number(n.trim())).filter((n) => n > 0);
const REPEAT = Math.max(1, Number(process.env.STATIC_BENCH_REPEAT ?? 3));
/** The bundler's output in the generated tree: kept under its own names, as a Vite user would. */
const KEEP = ['--keep-names', 'assets/**'];

type Server3 = NonNullable<ReturnType<typeof benchServer>>;
type Tool = 'collectstatic' | 'collectstatic --no-originals' | 'aws s3 sync';
const TOOLS: Tool[] = ['collectstatic', 'collectstatic --no-originals', 'aws s3 sync'];

interface Sample {
  seconds: number;
  requests: Counts;
  rssMiB: number;
  summary: string;
  /** collectstatic only: the hash cache as the run found it (the CLI's own, under <cwd>/node_modules/.cache). */
  cache?: string;
}

/** Prints, for each tree size, first-run and no-change figures of the three tools side by side. */
export async function runStaticBench(): Promise<void> {
  const server = benchServer();
  if (!server) {
    console.log('\nstatic: skipped (set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY, S3_TEST_SECRET_KEY; test/s3-server/ceph.sh writes them)');
    return;
  }
  const cli = resolve(process.cwd(), 'dist/cjs/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build" first`);
  if (!existsSync(AWS)) console.log(`(${AWS} not found: apt-get install -y awscli to compare)`);
  if (!existsSync(TIME)) throw new Error(`${TIME} is missing: apt-get install -y time (it measures peak RSS)`);
  const tools = TOOLS.filter((t) => t !== 'aws s3 sync' || existsSync(AWS));
  const proxy = await countingProxy(server.endpoint);
  const load = () => loadavg().map((l) => l.toFixed(2)).join(', ');
  console.log(`\nstatic: collectstatic vs aws s3 sync at ${SIZES.map((n) => n.toLocaleString('en-US')).join(' and ')} files, median of ${REPEAT}; load average ${load()}`);
  try {
    for (const files of SIZES) await benchSize(files, server, cli, proxy, tools);
  } finally {
    await proxy.close();
    console.log(`static: load average at the end ${load()}`);
  }
}

async function benchSize(files: number, server: Server3, cli: string, proxy: Proxy, tools: Tool[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'nss3-static-bench-'));
  const dir = join(work, 'tree');
  // collectstatic keeps its hash cache under <cwd>/node_modules/.cache: a cwd of our own, emptied before each first run.
  const cwd = join(work, 'app');
  mkdirSync(join(cwd, 'node_modules'), { recursive: true });
  const client = rawS3Client(server);
  const samples = new Map<string, Sample[]>();
  const add = (tool: Tool, phase: 'first' | 'again', s: Sample) => samples.set(`${tool}|${phase}`, [...(samples.get(`${tool}|${phase}`) ?? []), s]);
  try {
    const bytes = generateTree(dir, files);
    // The hash cache never trusts a file modified within a second of a run (coarse
    // file-system clocks): start as a deploy after a build does, a moment later.
    await new Promise((ok) => setTimeout(ok, 1500));
    console.log(`\n${files.toLocaleString('en-US')} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB, ${server.endpoint}`);
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const tool of tools) {
        const bucket = `nss3-bench-st-${randomBytes(4).toString('hex')}`;
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        try {
          rmSync(join(cwd, 'node_modules', '.cache'), { recursive: true, force: true });
          const once = () =>
            tool === 'aws s3 sync'
              ? measure(proxy, AWS, ['s3', 'sync', dir, `s3://${bucket}/static/`, '--endpoint-url', proxy.url, '--only-show-errors', '--no-progress'], awsEnv(server), cwd)
              : measure(proxy, process.execPath, [cli, 'collectstatic', dir, ...KEEP, ...(tool === 'collectstatic' ? [] : ['--no-originals'])], collectEnv(server, bucket, proxy.url), cwd);
          const cacheBefore = () => (tool === 'aws s3 sync' ? undefined : cacheState(cwd, files));
          const first = cacheBefore();
          add(tool, 'first', { ...(await once()), cache: first });
          const again = cacheBefore();
          add(tool, 'again', { ...(await once()), cache: again });
        } finally {
          await dropBucket(server, bucket).catch(() => undefined);
        }
      }
    }
  } finally {
    client.destroy();
    rmSync(work, { recursive: true, force: true });
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fig = (tool: Tool, phase: 'first' | 'again') => {
    const xs = samples.get(`${tool}|${phase}`);
    if (!xs) return undefined;
    return {
      seconds: median(xs.map((x) => x.seconds)),
      requests: median(xs.map((x) => x.requests.total)),
      lists: median(xs.map((x) => x.requests.list)),
      puts: median(xs.map((x) => x.requests.put)),
      rssMiB: median(xs.map((x) => x.rssMiB)),
      each: xs.map((x) => x.seconds.toFixed(2)).join(', '),
      summary: xs.at(-1)!.summary,
    };
  };
  const aws = { first: fig('aws s3 sync', 'first'), again: fig('aws s3 sync', 'again') };
  const ratio = (a: number, b: number | undefined) => (b === undefined ? 'n/a' : `${(a / b).toFixed(2)}x`);
  const rows: string[][] = [['', 'time', 'vs aws', 'requests', 'vs aws', 'peak RSS', 'vs aws', 'runs (s)']];
  for (const phase of ['first', 'again'] as const) {
    for (const tool of tools) {
      const f = fig(tool, phase)!;
      const base = aws[phase];
      rows.push([
        `${phase === 'first' ? 'first run' : 'no-change'}: ${tool}`,
        `${f.seconds.toFixed(2)} s`,
        tool === 'aws s3 sync' ? '' : ratio(f.seconds, base?.seconds),
        `${f.requests} (${f.lists} list, ${f.puts} put)`,
        tool === 'aws s3 sync' ? '' : ratio(f.requests, base?.requests),
        `${f.rssMiB.toFixed(0)} MiB`,
        tool === 'aws s3 sync' ? '' : ratio(f.rssMiB, base?.rssMiB),
        f.each,
      ]);
    }
  }
  console.log(table(rows));
  console.log(`collectstatic: first run "${fig('collectstatic', 'first')!.summary}"; no-change "${fig('collectstatic', 'again')!.summary}"`);
  console.log('(collectstatic runs as `nestjs-s3-storage collectstatic <dir> --keep-names assets/**`, default flags otherwise, keeping file md5s in node_modules/.cache/nestjs-s3-storage as the CLI does; each first run starts without it)');
  for (const tool of tools.filter((t) => t !== 'aws s3 sync')) {
    for (const phase of ['first', 'again'] as const) {
      const states = (samples.get(`${tool}|${phase}`) ?? []).map((x) => x.cache ?? '?');
      console.log(`  hash cache before ${phase === 'first' ? 'first run' : 'no-change'} (${tool}), each repetition: ${states.join('; ')}`);
    }
  }

  const ours = fig('collectstatic', 'first')!;
  const noOriginals = fig('collectstatic --no-originals', 'first')!;
  const again = fig('collectstatic', 'again')!;
  const peak = Math.max(...tools.filter((t) => t !== 'aws s3 sync').flatMap((t) => (['first', 'again'] as const).map((p) => fig(t, p)!.rssMiB)));
  const within = (value: number, base: number | undefined, limit: number) => (base === undefined ? undefined : value / base <= limit);
  const checks: [string, boolean | undefined][] = [
    [`first run (originals too) <= 1.0x aws s3 sync`, within(ours.seconds, aws.first?.seconds, 1.0)],
    [`first run --no-originals <= 0.5x aws s3 sync`, within(noOriginals.seconds, aws.first?.seconds, 0.5)],
    [`no-change run <= 0.3x aws s3 sync`, within(again.seconds, aws.again?.seconds, 0.3)],
    [`no-change run: exactly 1 request (${again.requests})`, again.requests === 1],
    [`peak RSS <= 150 MiB (${peak.toFixed(0)} MiB)`, peak <= 150],
  ];
  const target = files >= 20_000 ? 'target' : 'target at 20,000 files; here for reference';
  for (const [label, ok] of checks) console.log(`  ${ok === undefined ? 'n/a ' : ok ? 'PASS' : 'MISS'}  ${label} (${target})`);
}

/**
 * The CLI's hash cache in `cwd` as a run will find it: cold (none), or warm with how many of
 * the tree's files it holds and whether it recorded the last run (what the no-change fast
 * path needs; files written within a second of a run are never cached).
 */
function cacheState(cwd: string, files: number): string {
  const dir = join(cwd, 'node_modules', '.cache', 'nestjs-s3-storage');
  const file = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.json')) : undefined;
  if (file === undefined) return 'cold';
  try {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { files?: object; last?: object };
    return `warm (${Object.keys(data.files ?? {}).length.toLocaleString('en-US')} of ${files.toLocaleString('en-US')} files${data.last ? ', last run recorded' : ''})`;
  } catch {
    return 'unreadable';
  }
}

/** Runs one command through `/usr/bin/time`, counting its requests at the proxy. */
async function measure(proxy: Proxy, command: string, args: string[], env: Record<string, string>, cwd: string): Promise<Sample> {
  const rssFile = join(cwd, 'rss.txt');
  proxy.reset();
  const { seconds, stdout } = await run(TIME, ['-o', rssFile, '-f', '%M', command, ...args], env, cwd);
  const rssMiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1)) / 1024;
  return { seconds, requests: proxy.snapshot(), rssMiB, summary: /uploaded \d+, unchanged \d+, deleted \d+/.exec(stdout)?.[0] ?? '' };
}

/**
 * `files` files shaped like a real static tree: images of mixed sizes, CSS that references
 * them (and imports a shared base), JS with source maps, bundler-hashed assets, fonts, and
 * 20 large files (their number does not grow with the tree, so 20,000 files stay within the
 * test server's memory). Deterministic sizes; random bytes so nothing compresses or dedupes.
 */
export function generateTree(root: string, files: number): number {
  const k = files / 2000;
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
  for (let i = 0; i < 1150 * k; i++) {
    const name = `img/set${i % 20}/image${i}.png`;
    write(name, randomBytes(sizes(300, 80_000)));
    images.push(name);
  }
  for (let i = 0; i < 20; i++) write(`media/video${i}.bin`, randomBytes(sizes(300_000, 3_000_000)));
  for (let i = 0; i < 80 * k; i++) write(`fonts/font${i}.woff2`, randomBytes(sizes(10_000, 60_000)));
  write('css/base.css', `body{margin:0;background:url(../${images[0]})}\n`);
  for (let i = 0; i < 99 * k; i++) {
    const refs = Array.from({ length: 10 }, (_, j) => `.c${i}-${j}{background:url("../${images[(i * 10 + j) % images.length]}")}`);
    write(`css/page${i}.css`, `@import "base.css";\n${refs.join('\n')}\n@font-face{src:url(../fonts/font${i % Math.round(80 * k)}.woff2)}\n/*# sourceMappingURL=page${i}.css.map */\n`);
    write(`css/page${i}.css.map`, JSON.stringify({ version: 3, sources: [`page${i}.scss`], mappings: 'AAAA'.repeat(sizes(10, 2000)) }));
  }
  for (let i = 0; i < 250 * k; i++) {
    write(`js/module${i}.js`, `export const m${i} = ${JSON.stringify(randomBytes(sizes(500, 40_000)).toString('base64'))};\n//# sourceMappingURL=module${i}.js.map\n`);
    write(`js/module${i}.js.map`, JSON.stringify({ version: 3, mappings: 'AAAA'.repeat(sizes(10, 3000)) }));
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  while (count < files) {
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
function run(command: string, args: string[], env: Record<string, string>, cwd: string): Promise<{ seconds: number; stdout: string }> {
  return new Promise((done, fail) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) done({ seconds, stdout });
      else fail(new Error(`${args.slice(4, 7).join(' ')} exited with ${code}: ${stderr.trim().slice(0, 500)}`));
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

/**
 * A TCP relay in front of the S3 server that counts HTTP requests by kind. It forwards the
 * bytes as they are (one upstream connection per client connection, so keep-alive, Host and
 * SigV4 are untouched) and only frames requests as they pass: request line and headers,
 * then a Content-Length or chunked body skipped by counting. An HTTP-level proxy parsed and
 * re-sent every request in the bench's one thread, which added seconds per thousand
 * requests to every tool; this costs little more than the copy.
 */
type Proxy = Awaited<ReturnType<typeof countingProxy>>;

async function countingProxy(target: string): Promise<{ url: string; reset(): void; snapshot(): Counts; close(): Promise<void> }> {
  const upstream = new URL(target);
  let counts: Counts = { total: 0, list: 0, put: 0, head: 0, get: 0, other: 0 };
  const count = (requestLine: string) => {
    const [method = '', url = ''] = requestLine.split(' ');
    counts.total++;
    const query = url.split('?')[1] ?? '';
    if (method === 'GET' && /(^|&)(list-type=2|prefix=|delimiter=)/.test(query)) counts.list++;
    else if (method === 'PUT') counts.put++;
    else if (method === 'HEAD') counts.head++;
    else if (method === 'GET') counts.get++;
    else counts.other++;
  };
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const up = connect(Number(upstream.port || 80), upstream.hostname);
    sockets.add(client).add(up);
    const frame = framer(count);
    client.on('data', (chunk: Buffer) => {
      frame(chunk);
      if (!up.write(chunk)) client.pause();
    });
    up.on('drain', () => client.resume());
    up.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) up.pause();
    });
    client.on('drain', () => up.resume());
    const close = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on('end', () => up.end());
    up.on('end', () => client.end());
    client.on('close', close).on('error', close);
    up.on('close', close).on('error', close);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    reset: () => void (counts = { total: 0, list: 0, put: 0, head: 0, get: 0, other: 0 }),
    snapshot: () => ({ ...counts }),
    close: () =>
      new Promise((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

/**
 * Splits a client's byte stream into HTTP/1.1 requests, calling `onRequest` with each
 * request line. Bodies are skipped by their Content-Length, or chunk by chunk.
 */
function framer(onRequest: (requestLine: string) => void): (chunk: Buffer) => void {
  let head = Buffer.alloc(0); // bytes of a head (or chunk-size line) not complete yet
  let skip = 0; // body bytes still to pass
  let state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailer' = 'head';
  return (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (state === 'body' || state === 'chunk-data') {
        const n = Math.min(skip, chunk.length - at);
        at += n;
        skip -= n;
        if (skip === 0) state = state === 'body' ? 'head' : 'chunk-size';
        continue;
      }
      const joined = head.length > 0 ? Buffer.concat([head, chunk.subarray(at)]) : chunk.subarray(at);
      const noTrailers = state === 'trailer' && joined.length >= 2 && joined[0] === 13 && joined[1] === 10;
      const found = noTrailers ? 0 : joined.indexOf(state === 'chunk-size' ? '\r\n' : '\r\n\r\n');
      if (found === -1 || (state === 'trailer' && joined.length < 2)) {
        head = Buffer.from(joined);
        return;
      }
      const consumedBefore = head.length;
      let used: number;
      if (state === 'trailer') {
        used = noTrailers ? 2 : found + 4;
        state = 'head';
      } else if (state === 'chunk-size') {
        const line = joined.subarray(0, found).toString('latin1');
        used = found + 2;
        if (line === '') {
          // the CRLF after a chunk's data
        } else {
          const size = parseInt(line.split(';')[0]!, 16);
          if (size === 0) state = 'trailer';
          else {
            skip = size;
            state = 'chunk-data';
          }
        }
      } else {
        const text = joined.subarray(0, found).toString('latin1');
        used = found + 4;
        const lines = text.split('\r\n');
        onRequest(lines[0]!);
        const header = (name: string) => lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
        if (/chunked/i.test(header('transfer-encoding') ?? '')) state = 'chunk-size';
        else {
          skip = Number(header('content-length') ?? 0);
          if (skip > 0) state = 'body';
        }
      }
      at += used - consumedBefore;
      head = Buffer.alloc(0);
    }
  };
}

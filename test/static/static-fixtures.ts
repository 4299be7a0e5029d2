/**
 * Shared helpers of the static-files specs: trees on disk, resolved static options for the
 * test server, and a request counter on an S3 client.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { StaticStorageOptions } from '../../lib/storage-module-options.interface.js';
import { resolveStorageOptions, type ResolvedStaticOptions } from '../../lib/storage-options.validation.js';
import { s3 } from '../harness/s3-test-env.js';

/** Writes `tree` (name → content) under a new temp dir, or under `dir` when given. */
export function writeTree(tree: Record<string, string | Buffer>, dir = mkdtempSync(join(tmpdir(), 'nss3-static-'))): string {
  for (const [name, content] of Object.entries(tree)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
  return dir;
}

export function removeTree(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Static options (defaults applied) for the test server and `bucket`. */
export function staticOptions(bucket: string, overrides: Partial<StaticStorageOptions> = {}): ResolvedStaticOptions {
  const connection = {
    bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  };
  return resolveStorageOptions({ media: connection, static: { ...connection, ...overrides } }).static!;
}

/** Counts the commands `client` sends, by name (`ListObjectsV2Command`: 2). */
export function countRequests(client: S3Client): { counts: Record<string, number>; reset(): void } {
  const counts: Record<string, number> = {};
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      counts[name] = (counts[name] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'nss3CountRequests' },
  );
  return {
    counts,
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k];
    },
  };
}

/** Anonymous read access to `prefix/*` (servers that deny it by default need a policy). */
export function publicReadPolicy(bucket: string, prefix: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/${prefix}/*`] }],
  });
}

/** One HTTP request seen by {@link countingProxy}. */
export interface SeenRequest {
  method: string;
  /** Path and query as sent (path-style: `/<bucket>/<key>?…`). */
  url: string;
}

/**
 * An HTTP proxy in front of the test server recording every request: what the server
 * really receives (retries included), not what the SDK meant to send. It forwards the Host
 * header unchanged, so SigV4 still verifies.
 */
export async function countingProxy(target: string): Promise<{ endpoint: string; seen: SeenRequest[]; close(): Promise<void> }> {
  const { createServer, request } = await import('node:http');
  const upstream = new URL(target);
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '?', url: req.url ?? '' });
    const forward = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/**
 * Starts the sample app: `npm start` from the repository root.
 *
 * Storage comes from the seed's environment variables (`MEDIA_S3_*`, or `AWS_*` for the
 * "static on S3 too" set-up), from the environment or `.env`. With none of them set, an
 * S3-compatible server (s3rver) starts in-process on loopback with its data under
 * `./.data/`, so a newcomer sees the whole flow without Docker or configuration.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { BucketBootstrapError } from 'nestjs-s3-storage';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { AppModule } from './app.module.js';
import type { EmbeddedS3 } from './embedded-s3.js';

const DEFAULT_PORT = 3000;
/** The bucket the embedded server gets; the same name compose uses for MinIO. */
const EMBEDDED_BUCKET = 'media';

async function main(): Promise<void> {
  // Read .env here as well as in ConfigModule: whether to start the embedded server
  // depends on it. Variables already in the environment win, as with ConfigModule.
  if (existsSync('.env')) process.loadEnvFile('.env');
  const port = parsePort(process.env.PORT);

  let embedded: EmbeddedS3 | undefined;
  if (!storageConfigured(process.env)) {
    const directory = resolve('.data', 's3');
    // Loaded only when needed: s3rver and its dependencies cost memory a configured app never uses.
    const { startEmbeddedS3 } = await import('./embedded-s3.js');
    embedded = await startEmbeddedS3({ directory });
    Object.assign(process.env, {
      MEDIA_S3_ENDPOINT_URL: embedded.endpoint,
      MEDIA_S3_BUCKET_NAME: EMBEDDED_BUCKET,
      MEDIA_S3_ACCESS_KEY: embedded.accessKeyId,
      MEDIA_S3_SECRET_KEY: embedded.secretAccessKey,
      // Lets the page's "straight to the storage" upload POST to the embedded bucket.
      MEDIA_S3_CORS_ORIGINS: `http://localhost:${port},http://127.0.0.1:${port}`,
    });
    console.log(
      `No MEDIA_S3_* configuration found: started an embedded S3 server (s3rver) at ${embedded.endpoint}, ` +
        `bucket "${EMBEDDED_BUCKET}", data in ${directory}. For development only: it does not check URL signatures.`,
    );
  }

  const app = await NestFactory.create(AppModule.forRoot(), { logger: ['log', 'warn', 'error'], abortOnError: false });
  await app.listen(port);
  const { port: actual } = app.getHttpServer().address() as AddressInfo;
  console.log(`Sample app ready: http://localhost:${actual}/`);

  // Close the app (S3 clients) before the embedded server it talks to.
  let closing = false;
  const shutdown = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    await app.close();
    await embedded?.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown());
  process.once('SIGTERM', () => void shutdown());
}

/** Any storage setting means the user chose a server: never start the embedded one then. */
function storageConfigured(env: NodeJS.ProcessEnv): boolean {
  return Object.keys(env).some((name) => (name.startsWith('MEDIA_S3_') || name === 'AWS_STORAGE_BUCKET_NAME') && env[name]?.trim());
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number from 0 to 65535 (got ${JSON.stringify(raw)})`);
  }
  return port;
}

main().catch((error: unknown) => {
  // Start-up errors from the library (bad options, unreachable bucket) name what to fix.
  console.error(error instanceof Error ? error.message : error);
  if (error instanceof BucketBootstrapError && error.reason === 'unreachable' && /\/\/minio[:/]/.test(error.endpoint ?? '')) {
    // The usual slip: the .env written for docker compose, used by `npm start` on the host.
    console.error(
      'The endpoint "minio" exists only inside docker compose: run "docker compose up", or remove the MEDIA_S3_* settings ' +
        '(and .env) to let "npm start" use its embedded S3 server.',
    );
  }
  process.exit(1);
});

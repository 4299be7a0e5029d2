/**
 * Starts the sample app in-process, configured through the environment exactly as
 * `npm start` is (the seed's MEDIA_S3_* names read by `storageConfig`), against the S3
 * server the jest global setup chose.
 */
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { AppModule } from '../../sample-app/src/app.module.js';
import { s3 } from '../harness/s3-test-env.js';

export interface SampleApp {
  app: INestApplication;
  /** `http://127.0.0.1:<port>` once listening. */
  baseUrl: string;
  close(): Promise<void>;
}

/** Every variable the app reads, cleared first so the outer environment cannot leak in. */
const OWNED = /^(MEDIA_S3_|AWS_|STORAGE_ENSURE_BUCKET$|AVATAR_MAX_BYTES$)/;

/** The MEDIA_S3_* settings for the test server and `bucket`. */
export function mediaEnv(bucket: string): Record<string, string> {
  return {
    MEDIA_S3_BUCKET_NAME: bucket,
    MEDIA_S3_ENDPOINT_URL: s3.endpoint,
    MEDIA_S3_REGION: s3.region,
    MEDIA_S3_ACCESS_KEY: s3.accessKeyId,
    MEDIA_S3_SECRET_KEY: s3.secretAccessKey,
  };
}

/** `quiet` silences Nest's logger, for tests that expect start-up to fail; `port` fixes the port (e.g. for a CORS origin). */
export async function startSampleApp(env: Record<string, string>, options: { quiet?: boolean; port?: number } = {}): Promise<SampleApp> {
  for (const name of Object.keys(process.env)) if (OWNED.test(name)) delete process.env[name];
  Object.assign(process.env, env);
  const app = await NestFactory.create(AppModule.forRoot({ ignoreEnvFile: true }), {
    logger: options.quiet ? false : ['error', 'warn'],
    abortOnError: false,
  });
  await app.listen(options.port ?? 0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, baseUrl: `http://127.0.0.1:${port}`, close: () => app.close() };
}

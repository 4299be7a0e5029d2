/**
 * An S3-compatible server in-process on loopback, so `npm start` works with no Docker and
 * no configuration. The package's guarded local server (dist/…/local-s3.js): a request it
 * cannot store gets an S3 error response and the app goes on. For development only: it does
 * not check presigned-URL signatures.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface EmbeddedS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

type StartLocalS3 = (options: { directory?: string; port?: number; address?: string }) => Promise<EmbeddedS3>;

export async function startEmbeddedS3(options: { directory: string; port?: number; address?: string }): Promise<EmbeddedS3> {
  // Not a public entry point of the package (s3rver is an optional peer): found beside the
  // build the package name resolves to.
  const entry = fileURLToPath(import.meta.resolve('nestjs-s3-storage'));
  const { startLocalS3 } = (await import(pathToFileURL(join(dirname(entry), 'local-s3.js')).href)) as { startLocalS3: StartLocalS3 };
  return startLocalS3(options);
}

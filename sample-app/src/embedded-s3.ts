/**
 * An S3-compatible server in-process on loopback (s3rver, files on disk), so `npm start`
 * works with no Docker and no configuration. For development only: it does not check
 * presigned-URL signatures.
 */
import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';

export interface EmbeddedS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

/** s3rver's built-in account. */
const ACCESS_KEY = 'S3RVER';

export async function startEmbeddedS3(options: { directory: string; port?: number; address?: string }): Promise<EmbeddedS3> {
  mkdirSync(options.directory, { recursive: true });
  const address = options.address ?? '127.0.0.1';
  const server = new S3rver({ address, port: options.port ?? 0, directory: options.directory, silent: true, vhostBuckets: false });
  const info = await server.run();
  return {
    endpoint: `http://${address}:${info.port}`,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: ACCESS_KEY,
    close: () => server.close(),
  };
}

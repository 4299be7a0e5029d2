/**
 * `npm run create-env [-- --force]`: writes the seed's local-development defaults to `.env`
 * in the current directory, for `docker compose up` (MinIO + the sample app). An existing
 * `.env` may hold real credentials, so it is only replaced with `--force`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** The seed's defaults, in its words: what the app and the browser each use to reach MinIO. */
export const ENV_DEFAULTS = `# Written by \`npm run create-env\`: local development with \`docker compose up\`.
# Media storage (nestjs-s3-storage reads the MEDIA_S3_* variables).
MEDIA_S3_ACCESS_KEY=minioadmin
MEDIA_S3_SECRET_KEY=minioadmin
# What the app uses to talk to MinIO: inside the Docker network MinIO is http://minio:9000.
MEDIA_S3_ENDPOINT_URL=http://minio:9000
# What ends up in the URLs the browser fetches: the browser reaches MinIO at localhost.
# Leave it unset in production against AWS.
MEDIA_S3_URL_ENDPOINT_URL=http://localhost:9000
MEDIA_S3_BUCKET_NAME=media
`;

function main(args: string[]): number {
  const unknown = args.filter((a) => a !== '--force');
  if (unknown.length > 0) {
    console.error(`Unknown argument ${unknown.map((a) => JSON.stringify(a)).join(', ')}. Usage: npm run create-env [-- --force]`);
    return 2;
  }
  const path = resolve('.env');
  if (existsSync(path) && !args.includes('--force')) {
    console.error(`${path} already exists and was left unchanged. Run "npm run create-env -- --force" to replace it with the defaults.`);
    return 1;
  }
  writeFileSync(path, ENV_DEFAULTS, { mode: 0o600 });
  console.log(`Wrote ${path} (MinIO defaults for docker compose). Next: docker compose up, then open http://localhost:3000/`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));

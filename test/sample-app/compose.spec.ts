/**
 * compose.yml validated by `docker-compose config` (Debian's docker-compose; no container
 * engine is needed to validate), then checked for the seed's wiring. Skips with a printed
 * reason where the binary is missing, unless S3_TEST_REQUIRE_ALL=1 (CI installs it).
 * (No test bucket: nothing here talks to S3.)
 */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './spawn-app.js';

const BINARY = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => existsSync(p));

interface ComposeConfig {
  services: Record<string, {
    image?: string;
    build?: { context: string; dockerfile: string };
    environment?: Record<string, string>;
    ports?: { published: number | string; target: number }[];
    depends_on?: Record<string, { condition: string }>;
  }>;
}

/**
 * The resolved configuration. `--env-file` points at a file of our choosing so a developer's
 * own .env in the repository cannot change what is checked; the YAML is turned into JSON by
 * the Python yaml module docker-compose itself runs on.
 */
function composeConfig(envFile: string): ComposeConfig {
  const config = spawnSync(BINARY!, ['--env-file', envFile, '-f', join(REPO, 'compose.yml'), 'config'], {
    cwd: REPO,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  if (config.status !== 0) throw new Error(`docker-compose config failed (${config.status}):\n${config.stderr}`);
  const json = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: config.stdout,
    encoding: 'utf8',
  });
  if (json.status !== 0) throw new Error(`could not read the YAML docker-compose printed:\n${json.stderr}`);
  return JSON.parse(json.stdout) as ComposeConfig;
}

function withEnvFile<T>(content: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'nss3-compose-'));
  try {
    const path = join(dir, '.env');
    writeFileSync(path, content);
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const reason = 'docker-compose is not installed (apt-get install docker-compose)';
const itWithCompose = BINARY ? it : it.skip;
if (!BINARY) {
  if (process.env.S3_TEST_REQUIRE_ALL === '1') {
    it('docker-compose is available', () => {
      throw new Error(`S3_TEST_REQUIRE_ALL is set but ${reason}`);
    });
  } else {
    console.warn(`Skipping compose.yml checks: ${reason}`);
  }
}

describe('compose.yml', () => {
  itWithCompose('validates, and wires MinIO and the app as the seed describes', () => {
    const { services } = withEnvFile('', composeConfig);
    expect(Object.keys(services).sort()).toEqual(['app', 'minio']);

    const minio = services.minio!;
    expect(minio.image).toMatch(/^minio\/minio:RELEASE\./);
    expect(minio.ports).toEqual(expect.arrayContaining([
      expect.objectContaining({ published: 9000, target: 9000 }),
      expect.objectContaining({ published: 9001, target: 9001 }),
    ]));
    expect(minio.environment).toMatchObject({ MINIO_ROOT_USER: 'minioadmin', MINIO_ROOT_PASSWORD: 'minioadmin' });

    const app = services.app!;
    expect(app.build).toEqual({ context: REPO, dockerfile: 'sample-app/Dockerfile' });
    expect(existsSync(join(REPO, 'sample-app/Dockerfile'))).toBe(true);
    expect(app.environment).toMatchObject({
      MEDIA_S3_ENDPOINT_URL: 'http://minio:9000',
      MEDIA_S3_URL_ENDPOINT_URL: 'http://localhost:9000',
      MEDIA_S3_BUCKET_NAME: 'media',
      MEDIA_S3_ACCESS_KEY: 'minioadmin',
      MEDIA_S3_SECRET_KEY: 'minioadmin',
    });
    expect(app.ports).toEqual([expect.objectContaining({ published: 3000, target: 3000 })]);
    expect(app.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
  });

  itWithCompose('takes its values from .env, for the app and MinIO alike', () => {
    const { services } = withEnvFile('MEDIA_S3_ACCESS_KEY=localadmin\nMEDIA_S3_SECRET_KEY=localsecret1\nMEDIA_S3_BUCKET_NAME=avatars\n', composeConfig);
    expect(services.app!.environment).toMatchObject({
      MEDIA_S3_ACCESS_KEY: 'localadmin',
      MEDIA_S3_SECRET_KEY: 'localsecret1',
      MEDIA_S3_BUCKET_NAME: 'avatars',
    });
    expect(services.minio!.environment).toMatchObject({ MINIO_ROOT_USER: 'localadmin', MINIO_ROOT_PASSWORD: 'localsecret1' });
  });
});

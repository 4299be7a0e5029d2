/**
 * `npm run create-env`: writes the seed's MinIO defaults to ./.env, never replacing an
 * existing file unless given --force. Runs the built script in an empty directory.
 * (No test bucket: nothing here talks to S3.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cleanEnv, REPO, requireBuild } from './spawn-app.js';

const SCRIPT = resolve(REPO, 'dist/sample-app/scripts/create-env.js');
let dir: string;

beforeAll(() => {
  requireBuild(SCRIPT);
  dir = mkdtempSync(join(tmpdir(), 'nss3-create-env-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, ...args], { cwd: dir, env: cleanEnv(), encoding: 'utf8' });

/** KEY=value lines of a dotenv file, comments left out. */
function variables(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => /^[A-Z0-9_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

describe('create-env', () => {
  it('writes the seed defaults to .env, readable by its owner only', () => {
    const result = run();
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('docker compose up');
    const path = join(dir, '.env');
    // The seed's "Local Development: MinIO" settings, verbatim.
    expect(variables(readFileSync(path, 'utf8'))).toEqual({
      MEDIA_S3_ACCESS_KEY: 'minioadmin',
      MEDIA_S3_SECRET_KEY: 'minioadmin',
      MEDIA_S3_ENDPOINT_URL: 'http://minio:9000',
      MEDIA_S3_URL_ENDPOINT_URL: 'http://localhost:9000',
      MEDIA_S3_BUCKET_NAME: 'media',
    });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('leaves an existing .env alone and says how to replace it', () => {
    const path = join(dir, '.env');
    writeFileSync(path, 'MEDIA_S3_SECRET_KEY=mine\n');
    const result = run();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('already exists and was left unchanged');
    expect(result.stderr).toContain('npm run create-env -- --force');
    expect(readFileSync(path, 'utf8')).toBe('MEDIA_S3_SECRET_KEY=mine\n');
  });

  it('replaces it with --force', () => {
    const path = join(dir, '.env');
    writeFileSync(path, 'MEDIA_S3_SECRET_KEY=mine\n');
    expect(run('--force').status).toBe(0);
    expect(variables(readFileSync(path, 'utf8')).MEDIA_S3_SECRET_KEY).toBe('minioadmin');
  });

  it('rejects an unknown argument without writing', () => {
    rmSync(join(dir, '.env'), { force: true });
    const result = run('--forse');
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('Unknown argument "--forse"');
    expect(() => statSync(join(dir, '.env'))).toThrow();
  });
});

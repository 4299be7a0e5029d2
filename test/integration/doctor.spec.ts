/**
 * `nestjs-s3-storage doctor` against the real server, through the built CLI: a set-up made by
 * `ensure-bucket` alone passes; each misconfiguration fails with its fix named (a wrong
 * secret, a missing bucket, a publicEndpoint nothing answers at, the seed's Host rewrite,
 * missing CORS); usage errors exit 2; nothing but its own probe objects is written, and no
 * secret is printed.
 */
import { CreateBucketCommand, GetBucketCorsCommand, GetBucketPolicyCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutBucketCorsCommand, PutBucketPolicyCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetSessionTokenCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { PUBLIC_READ_SID } from '../../lib/bucket-settings.js';
import { runDoctor, type DoctorTarget } from '../../lib/doctor.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { storageEnvNames, storageOptionsFromEnv } from '../../lib/storage-env.js';
import { resolveStorageOptions, type ResolvedMediaOptions } from '../../lib/storage-options.validation.js';
import { CJS_CLI, ESM_CLI, runCli } from '../harness/cli.js';
import { closedPort } from '../harness/net.js';
import { deleteTestBucket, itRequires, rawClient, s3, skipWithReason, uniqueBucket } from '../harness/s3-test-env.js';

interface Check {
  name: string;
  status: 'pass' | 'fail' | 'info' | 'skip';
  detail: string;
  fix: string | null;
}

const ORIGIN = 'http://app.test';
const buckets: string[] = [];
const servers: Server[] = [];
let raw: S3Client;

beforeAll(() => {
  if (!existsSync(CJS_CLI) || !existsSync(ESM_CLI)) throw new Error('dist/ is missing: run "npm run build" first');
  raw = rawClient();
});
afterAll(async () => {
  raw?.destroy();
  for (const s of servers) s.close();
  for (const b of buckets) await deleteTestBucket(b);
});

function bucketFor(label: string): string {
  const bucket = uniqueBucket(label);
  buckets.push(bucket);
  return bucket;
}

/** The seed's layout: media and static in one bucket, under media/ and static/. */
function envFor(bucket: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MEDIA_S3_BUCKET_NAME: bucket,
    MEDIA_S3_ACCESS_KEY: s3.accessKeyId,
    MEDIA_S3_SECRET_KEY: s3.secretAccessKey,
    MEDIA_S3_ENDPOINT_URL: s3.endpoint,
    MEDIA_S3_REGION: s3.region,
    MEDIA_S3_LOCATION: 'media',
    ...extra,
  };
}

function staticEnv(bucket: string): Record<string, string> {
  return {
    AWS_STORAGE_BUCKET_NAME: bucket,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_S3_ENDPOINT_URL: s3.endpoint,
    AWS_S3_REGION: s3.region,
    ...(s3.capabilities.has('bucket-policies') ? { AWS_S3_PUBLIC_READ: 'true' } : {}),
  };
}

async function doctor(args: string[], env: Record<string, string>): Promise<{ code: number | null; checks: Check[]; text: string }> {
  const json = await runCli(['doctor', '--json', ...args], env);
  const text = await runCli(['doctor', ...args], env);
  expect(text.code).toBe(json.code);
  expect(json.stderr).toBe('');
  const parsed = JSON.parse(json.stdout) as { checks: Check[] };
  return { code: json.code, checks: parsed.checks, text: text.stdout + text.stderr };
}

function check(checks: Check[], name: string): Check {
  const found = checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check "${name}" in: ${checks.map((c) => c.name).join(', ')}`);
  return found;
}

function failures(checks: Check[]): Check[] {
  return checks.filter((c) => c.status === 'fail');
}

async function keys(bucket: string): Promise<string[]> {
  const out = await raw.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((c) => c.Key!).sort();
}

/**
 * An HTTP proxy to the S3 server. `host` set: the Host header is rewritten to it, as nginx's
 * `proxy_pass` does by default (`proxy_set_header Host $proxy_host`); unset: forwarded as it
 * came, as Docker's published port in the seed's compose file does.
 */
async function proxy(host?: string): Promise<string> {
  const target = new URL(s3.endpoint);
  const server = createServer((req, res) => {
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, ...(host ? { host } : {}) } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A media target and an S3 client for {@link runDoctor}, built as the CLI builds them, for tests that watch or bend its requests. */
function programmatic(env: Record<string, string>, extra: Partial<ResolvedMediaOptions> = {}): { target: DoctorTarget; client: S3Client } {
  const options = { ...resolveStorageOptions(storageOptionsFromEnv(env)).media, ...extra };
  return { target: { kind: 'media', label: 'media', options, names: storageEnvNames('media', env) }, client: createS3Client({ ...options, maxAttempts: 1 }) };
}

describe('nestjs-s3-storage doctor', () => {
  it('passes a set-up made by ensure-bucket alone, and writes nothing but its probe objects, all removed', async () => {
    const bucket = bucketFor('doc-ok');
    const env = {
      ...envFor(bucket, { MEDIA_S3_CORS_ORIGINS: ORIGIN, ...(s3.capabilities.has('lifecycle') ? { MEDIA_S3_LIFECYCLE: 'true' } : {}) }),
      ...staticEnv(bucket),
    };
    const ensure = await runCli(['ensure-bucket'], env);
    expect(ensure).toMatchObject({ code: 0, stderr: '' });
    // Someone's objects under both locations: doctor must leave them exactly as they are.
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'media/users/1.png', Body: 'png' }));
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: 'static/app.js', Body: 'app()' }));
    const before = await keys(bucket);

    const { code, checks, text } = await doctor(['--origin', ORIGIN], env);
    expect(failures(checks)).toEqual([]);
    expect(code).toBe(0);
    expect(text).toMatch(/the set-up is correct\n$/);
    for (const c of checks) expect(['pass', 'info', 'skip']).toContain(c.status);
    for (const name of ['endpoint', 'bucket', 'read and write', 'CORS rule', `CORS GET from ${ORIGIN}`, `CORS PUT from ${ORIGIN}`, `CORS POST from ${ORIGIN}`, 'cleanup']) {
      expect(check(checks, `media: ${name}`).status).toBe('pass');
    }
    for (const name of ['ACL headers', 'conditional PutObject', 'conditional CompleteMultipartUpload', 'flexible checksums']) {
      expect(check(checks, `media: ${name}`).status).toBe('info');
    }
    expect(check(checks, 'media: cleanup').detail).toMatch(/removed the \d+ probe object\(s\) under media\/\.nestjs-s3-storage-doctor\//);
    expect(check(checks, 'static: cleanup').status).toBe('pass');
    // Ceph ignores If-None-Match on Complete, and the set-up is still correct.
    if (!s3.capabilities.has('conditional-complete')) expect(check(checks, 'media: conditional CompleteMultipartUpload').detail).toMatch(/ignored/);
    if (s3.capabilities.has('signatures')) {
      expect(check(checks, 'media: credentials').status).toBe('pass');
      expect(check(checks, 'media: signed URL').status).toBe('pass');
      expect(check(checks, 'media: private objects').status).toBe('pass');
    } else {
      // Told honestly: this server accepts any signature, so neither can be verified here.
      expect(check(checks, 'media: credentials')).toMatchObject({ status: 'info', detail: expect.stringMatching(/checks no signatures/) });
      expect(check(checks, 'media: signed URL')).toMatchObject({ status: 'info', detail: expect.stringMatching(/Host mismatch cannot show here/) });
    }
    if (s3.capabilities.has('lifecycle')) expect(check(checks, 'media: lifecycle rules').status).toBe('pass');
    if (s3.capabilities.has('bucket-policies')) {
      expect(check(checks, 'static: public-read policy').status).toBe('pass');
      expect(check(checks, 'static: anonymous static URL').status).toBe('pass');
    }

    // Two runs (JSON and text), and the bucket holds what it held: nothing left, nothing changed.
    expect(await keys(bucket)).toEqual(before);
    expect((await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
  }, 60_000);

  it('prints { checks: [{ name, status, detail, fix }] } with --json, one line per check without it', async () => {
    const bucket = bucketFor('doc-json');
    const env = envFor(bucket);
    const { checks, text, code } = await doctor(['--media'], env);
    expect(code).toBe(1); // the bucket is missing
    expect(checks.length).toBeGreaterThan(5);
    for (const c of checks) {
      expect(Object.keys(c).sort()).toEqual(['detail', 'fix', 'name', 'status']);
      expect(['pass', 'fail', 'info', 'skip']).toContain(c.status);
      expect(c.name).toMatch(/^media: /);
      expect(typeof c.detail).toBe('string');
      expect(c.fix === null || (c.status === 'fail' && typeof c.fix === 'string')).toBe(true);
    }
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(checks.length + 1);
    checks.forEach((c, i) => expect(lines[i]).toBe(`${{ pass: '✓', fail: '✗', info: 'i', skip: '-' }[c.status]} ${c.name} — ${c.detail}${c.fix ? ` — fix: ${c.fix}` : ''}`));
    expect(lines.at(-1)).toMatch(/^doctor: \d+ passed, [1-9]\d* failed, \d+ info, \d+ skipped$/);
  }, 30_000);

  it('names ensure-bucket for a missing bucket, and skips what needs the bucket', async () => {
    const bucket = bucketFor('doc-nobucket');
    const { code, checks } = await doctor(['--media'], envFor(bucket));
    expect(code).toBe(1);
    expect(check(checks, 'media: bucket')).toMatchObject({ status: 'fail', detail: expect.stringContaining(`"${bucket}"`), fix: 'run: nestjs-s3-storage ensure-bucket --media' });
    expect(failures(checks).map((c) => c.name)).toEqual(['media: bucket']);
    for (const name of ['read and write', 'ACL headers', 'conditional PutObject', 'signed URL']) {
      expect(check(checks, `media: ${name}`)).toMatchObject({ status: 'skip', detail: expect.stringContaining('is not usable') });
    }
    // It wrote nothing, so it created no bucket either.
    const listed = await raw.send(new ListObjectsV2Command({ Bucket: bucket })).catch((e: { name?: string }) => e.name);
    expect(listed).toBe('NoSuchBucket');
  }, 30_000);

  itRequires('signatures', 'fails a wrong secret, naming the variables to fix, and never prints it', async () => {
    const bucket = bucketFor('doc-secret');
    expect((await runCli(['ensure-bucket', '--media'], envFor(bucket))).code).toBe(0);
    const wrong = `wrong-secret-${Date.now()}`;
    const { code, checks, text } = await doctor(['--media'], envFor(bucket, { MEDIA_S3_SECRET_KEY: wrong }));
    expect(code).toBe(1);
    const c = check(checks, 'media: credentials');
    expect(c.status).toBe('fail');
    expect(c.fix).toMatch(/MEDIA_S3_SECRET_KEY/);
    expect(check(checks, 'media: bucket').detail).toMatch(/^not run: the credentials were refused/);
    expect(text).not.toContain(wrong);
    expect(text).not.toContain(s3.secretAccessKey);
  }, 30_000);

  it('fails a publicEndpoint nothing answers at, and skips the checks that go through it', async () => {
    const bucket = bucketFor('doc-closed');
    const port = await closedPort();
    const env = envFor(bucket, { MEDIA_S3_URL_ENDPOINT_URL: `http://127.0.0.1:${port}`, MEDIA_S3_CORS_ORIGINS: ORIGIN });
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { code, checks } = await doctor(['--media', '--origin', ORIGIN], env);
    expect(code).toBe(1);
    expect(check(checks, 'media: public endpoint')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(new RegExp(`TCP: nothing accepts connections at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`)),
      fix: expect.stringMatching(/^set MEDIA_S3_URL_ENDPOINT_URL to the address browsers reach the S3 server at/),
    });
    expect(failures(checks).map((c) => c.name)).toEqual(['media: public endpoint']);
    expect(check(checks, 'media: signed URL')).toMatchObject({ status: 'skip', detail: expect.stringContaining('is unreachable') });
    expect(check(checks, `media: CORS PUT from ${ORIGIN}`).status).toBe('skip');
  }, 30_000);

  itRequires('signatures', "explains the seed's trap: publicEndpoint behind a proxy that rewrites Host fails as a Host mismatch", async () => {
    const bucket = bucketFor('doc-rewrite');
    // nginx `location / { proxy_pass http://minio:9000; }`: the server sees Host: minio:9000.
    const rewriting = await proxy(new URL(s3.endpoint).host);
    const env = envFor(bucket, { MEDIA_S3_URL_ENDPOINT_URL: rewriting });
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { code, checks, text } = await doctor(['--media'], env);
    expect(code).toBe(1);
    expect(check(checks, 'media: public endpoint').status).toBe('pass');
    const signed = check(checks, 'media: signed URL');
    expect(signed.status).toBe('fail');
    expect(signed.detail).toContain(`rewrites the Host header to ${new URL(s3.endpoint).host}`);
    expect(signed.detail).toContain('SignatureDoesNotMatch');
    expect(signed.fix).toContain('proxy_set_header Host $http_host');
    expect(failures(checks).map((c) => c.name)).toEqual(['media: signed URL']);
    expect(text).toContain("the seed's trap");
  }, 30_000);

  itRequires('signatures', "passes the seed's own topology (a port forward that keeps Host), and shows the seed's rewrite is refused there", async () => {
    const bucket = bucketFor('doc-forward');
    const forward = await proxy();
    const env = envFor(bucket, { MEDIA_S3_URL_ENDPOINT_URL: forward });
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { code, checks } = await doctor(['--media'], env);
    expect(failures(checks)).toEqual([]);
    expect(code).toBe(0);
    const signed = check(checks, 'media: signed URL');
    expect(signed.status).toBe('pass');
    expect(signed.detail).toContain(`a URL signed for ${new URL(forward).host} loads through publicEndpoint ${forward} (200)`);
    expect(signed.detail).toContain(`the seed's rewrite (sign for ${new URL(s3.endpoint).host}, then swap in ${new URL(forward).host}) is refused here (403`);
  }, 30_000);

  it('fails CORS for an --origin the bucket does not allow, naming MEDIA_S3_CORS_ORIGINS', async () => {
    const bucket = bucketFor('doc-cors');
    const env = envFor(bucket);
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { code, checks } = await doctor(['--media', '--origin', ORIGIN], env);
    expect(code).toBe(1);
    for (const method of ['GET', 'PUT', 'POST']) {
      expect(check(checks, `media: CORS ${method} from ${ORIGIN}`)).toMatchObject({
        status: 'fail',
        fix: `set MEDIA_S3_CORS_ORIGINS=${ORIGIN}, then run nestjs-s3-storage ensure-bucket --media`,
      });
    }
    expect(check(checks, 'media: CORS rule').status).toBe('skip');
    // Without --origin, CORS is not judged: the same bucket passes.
    const without = await doctor(['--media'], env);
    expect(check(without.checks, 'media: CORS preflight').status).toBe('skip');
    expect(without.code).toBe(0);
  }, 45_000);

  it('checks a named storage from its <NAME>_S3_* variables', async () => {
    const bucket = bucketFor('doc-named');
    const env = {
      INVOICES_S3_BUCKET_NAME: bucket,
      INVOICES_S3_ACCESS_KEY: s3.accessKeyId,
      INVOICES_S3_SECRET_KEY: s3.secretAccessKey,
      INVOICES_S3_ENDPOINT_URL: s3.endpoint,
      INVOICES_S3_REGION: s3.region,
    };
    const missing = await doctor(['--name', 'invoices'], env);
    expect(missing.code).toBe(1);
    expect(check(missing.checks, 'invoices: bucket').fix).toMatch(/INVOICES_S3_BUCKET_NAME/);
    await raw.send(new CreateBucketCommand({ Bucket: bucket }));
    const found = await doctor(['--name', 'invoices'], env);
    expect(failures(found.checks)).toEqual([]);
    expect(found.code).toBe(0);
    expect(found.checks.every((c) => c.name.startsWith('invoices: '))).toBe(true);
  }, 30_000);

  it('tells the credentials apart: static keys, and the provider chain', async () => {
    const bucket = bucketFor('doc-chain');
    expect((await runCli(['ensure-bucket', '--media'], envFor(bucket))).code).toBe(0);
    const keys = await doctor(['--media'], envFor(bucket));
    expect(check(keys.checks, 'media: credentials').detail).toMatch(/^static keys, access key …/);
    const { MEDIA_S3_ACCESS_KEY: _a, MEDIA_S3_SECRET_KEY: _s, ...noKeys } = envFor(bucket);
    // The SDK's chain finds the standard variables (AWS_STORAGE_BUCKET_NAME unset: not the static storage's).
    const chain = await doctor(['--media'], { ...noKeys, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey });
    expect(check(chain.checks, 'media: credentials').detail).toMatch(/^the AWS SDK's default provider chain \(from AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY\)/);
    expect(chain.code).toBe(0);
    expect(chain.text).not.toContain(s3.secretAccessKey);
    const none = await doctor(['--media'], noKeys);
    expect(none.code).toBe(1);
    expect(check(none.checks, 'media: credentials')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/^set MEDIA_S3_ACCESS_KEY and MEDIA_S3_SECRET_KEY/) });
  }, 45_000);

  it('fails CORS when the bucket\'s rule does not expose ETag (multipart uploads need it), naming the fix', async () => {
    const bucket = bucketFor('doc-etag');
    const env = envFor(bucket, { MEDIA_S3_CORS_ORIGINS: ORIGIN });
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    // Our rule, by its ID, with ExposeHeaders dropped: what a hand-edited rule often looks like.
    const rules = (await raw.send(new GetBucketCorsCommand({ Bucket: bucket }))).CORSRules!;
    expect(rules.length).toBe(1);
    const { ExposeHeaders: _e, ...noExpose } = rules[0]!;
    await raw.send(new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: [noExpose] } }));
    const { code, checks } = await doctor(['--media', '--origin', ORIGIN], env);
    expect(code).toBe(1);
    expect(check(checks, 'media: CORS rule')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/does not expose ETag .*multipart uploads/),
      fix: expect.stringMatching(/^run nestjs-s3-storage ensure-bucket --media to apply MEDIA_S3_CORS_ORIGINS/),
    });
    // The browser's view: the actual response carries no Access-Control-Expose-Headers: ETag.
    expect(check(checks, `media: CORS PUT from ${ORIGIN}`)).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/does not expose ETag \(Access-Control-Expose-Headers: absent\)/),
      fix: expect.stringMatching(/^run nestjs-s3-storage ensure-bucket --media to put the CORS rule \(ExposeHeaders ETag\)/),
    });
    expect(check(checks, `media: CORS GET from ${ORIGIN}`).status).toBe('pass');
    // ensure-bucket restores the rule, and doctor passes again.
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const fixed = await doctor(['--media', '--origin', ORIGIN], env);
    expect(failures(fixed.checks)).toEqual([]);
    expect(check(fixed.checks, `media: CORS PUT from ${ORIGIN}`).detail).toMatch(/responses expose ETag \(Access-Control-Expose-Headers: ETag\)/i);
  }, 60_000);

  it('removes probe writes that failed here but landed on the server (a client-side timeout), objects and multipart uploads', async () => {
    const bucket = bucketFor('doc-leftover');
    const env = envFor(bucket);
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { target, client } = programmatic(env);
    // The request reaches the server and succeeds; the answer is then lost, as on a timeout.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const key = String((args.input as { Key?: string }).Key ?? '');
        if ((context.commandName === 'PutObjectCommand' && key.endsWith('acl.txt')) || context.commandName === 'CreateMultipartUploadCommand') {
          throw Object.assign(new Error('Request timed out'), { name: 'TimeoutError' });
        }
        return out;
      },
      { step: 'initialize', name: 'loseTheAnswer' },
    );
    try {
      const { checks } = await runDoctor([target], { client: () => client });
      expect(check(checks, 'media: ACL headers').detail).toMatch(/refused \(TimeoutError|Request timed out/);
      expect(check(checks, 'media: conditional CompleteMultipartUpload').detail).toMatch(/could not tell/);
      expect(check(checks, 'media: cleanup')).toMatchObject({ status: 'pass', detail: expect.stringMatching(/and aborted 1 multipart upload\(s\)/) });
    } finally {
      client.destroy();
    }
    expect((await keys(bucket)).filter((k) => k.includes('.nestjs-s3-storage-doctor/'))).toEqual([]);
    expect((await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual([]);
  }, 45_000);

  it('sends the configured media.acl in the ACL probe, not always "private"', async () => {
    const bucket = bucketFor('doc-acl');
    const env = envFor(bucket);
    expect((await runCli(['ensure-bucket', '--media'], env)).code).toBe(0);
    const { target, client } = programmatic(env, { acl: 'public-read' });
    const sent: string[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        if (headers['x-amz-acl'] !== undefined) sent.push(headers['x-amz-acl']);
        return next(args);
      },
      { step: 'finalizeRequest', name: 'seeAcl' },
    );
    try {
      const { checks } = await runDoctor([target], { client: () => client });
      expect(sent).toEqual(['public-read']);
      expect(check(checks, 'media: ACL headers')).toMatchObject({ status: 'info', detail: 'accepted: a PutObject with x-amz-acl: public-read was stored (media.acl "public-read" works here)' });
    } finally {
      client.destroy();
    }
  }, 30_000);

  it('names the <NAME>_S3_* variable for a named storage\'s configuration problem', async () => {
    const env = { INVOICES_S3_ACCESS_KEY: s3.accessKeyId, INVOICES_S3_SECRET_KEY: s3.secretAccessKey, INVOICES_S3_ENDPOINT_URL: s3.endpoint, INVOICES_S3_REGION: s3.region };
    const { code, checks, text } = await doctor(['--name', 'invoices'], env);
    // Configuration problems are failed checks (exit 1), as for the unnamed storage; 2 is for usage errors.
    expect(code).toBe(1);
    const c = check(checks, 'invoices: configuration');
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/INVOICES_S3_BUCKET_NAME \(media\.bucket\)/);
    expect(c.detail).not.toMatch(/(^|[ ;:])media\.bucket:/);
    expect(text).not.toContain(s3.secretAccessKey);
  }, 30_000);

  itRequires('bucket-policies', 'fails the public-read policy when another statement makes the media prefix or the whole bucket public, naming its Sid', async () => {
    const bucket = bucketFor('doc-broad');
    const env = { ...envFor(bucket), ...staticEnv(bucket) };
    expect((await runCli(['ensure-bucket', '--static'], env)).code).toBe(0);
    expect(check((await doctor(['--static'], env)).checks, 'static: public-read policy').status).toBe('pass');
    const policy = JSON.parse((await raw.send(new GetBucketPolicyCommand({ Bucket: bucket }))).Policy!) as { Statement: object[] };
    const broad = { Sid: 'EverythingPublic', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*` };
    await raw.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify({ ...policy, Statement: [...policy.Statement, broad] }) }));
    const { code, checks } = await doctor(['--static'], env);
    expect(code).toBe(1);
    expect(check(checks, 'static: public-read policy')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining(`statement "EverythingPublic" (Resource arn:aws:s3:::${bucket}/*) of the bucket policy also grants anonymous s3:GetObject beyond "static/"`),
      fix: expect.stringContaining('remove that statement'),
    });
    // Our own statement widened to the whole bucket is not "ours as configured" either.
    const widened = policy.Statement.map((s) => ((s as { Sid?: string }).Sid === PUBLIC_READ_SID ? { ...s, Resource: [`arn:aws:s3:::${bucket}/static/*`, `arn:aws:s3:::${bucket}/*`] } : s));
    await raw.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify({ ...policy, Statement: widened }) }));
    const again = await doctor(['--static'], env);
    expect(check(again.checks, 'static: public-read policy')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/is not exactly anonymous s3:GetObject on arn:aws:s3:::.+\/static\/\*/) });
  }, 45_000);

  it('accepts an --origin in any case or with its default port, and uses the normalised origin', async () => {
    const bucket = bucketFor('doc-origin');
    for (const given of ['HTTP://App.test', 'http://app.test:80', 'http://app.test/']) {
      const { checks } = await doctor(['--media', '--origin', given], envFor(bucket));
      expect({ given, status: check(checks, `media: CORS GET from ${ORIGIN}`).status }).toEqual({ given, status: 'skip' });
    }
  }, 45_000);

  it('exits 2 on a usage error, with the usage', async () => {
    for (const args of [['--bogus'], ['--media', '--static'], ['--name', 'a', '--media'], ['--origin'], ['--origin', 'app.test'], ['--origin', 'http://app.test/path'], ['--origin', 'http://app.test?x=1'], ['--origin', 'ftp://app.test'], ['--name', 'no spaces'], ['extra']]) {
      const run = await runCli(['doctor', ...args], envFor('unused'));
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(run.stderr).toMatch(/^nestjs-s3-storage: .+\n\nUsage:/);
      expect(run.stderr).toContain('nestjs-s3-storage doctor [--media|--static|--name N] [--origin URL] [--json]');
    }
  }, 60_000);
});

/** Session credentials for the test user (RGW's STS, which test/s3-server/ceph.sh enables). */
async function sessionCredentials(): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string } | string> {
  const sts = new STSClient({ endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, maxAttempts: 1 });
  try {
    const { Credentials: c } = await sts.send(new GetSessionTokenCommand({ DurationSeconds: 900 }));
    return { accessKeyId: c!.AccessKeyId!, secretAccessKey: c!.SecretAccessKey!, sessionToken: c!.SessionToken! };
  } catch (error) {
    return `STS GetSessionToken failed: ${(error as { name?: string }).name ?? 'Error'}`;
  } finally {
    sts.destroy();
  }
}

const session = await sessionCredentials();
const sessionTest = "reports session credentials and never prints their secret or token, in text or JSON";
if (typeof session === 'string') {
  skipWithReason(sessionTest, `the ${s3.kind} server at ${s3.endpoint} issues no session credentials (${session}); test/s3-server/ceph.sh enables RGW's STS`, async () => undefined);
} else {
  it(sessionTest, async () => {
    const bucket = bucketFor('doc-session');
    expect((await runCli(['ensure-bucket', '--media'], envFor(bucket))).code).toBe(0);
    const env = envFor(bucket, { MEDIA_S3_ACCESS_KEY: session.accessKeyId, MEDIA_S3_SECRET_KEY: session.secretAccessKey, MEDIA_S3_SESSION_TOKEN: session.sessionToken });
    const { code, checks, text } = await doctor(['--media'], env);
    expect(failures(checks)).toEqual([]);
    expect(code).toBe(0);
    expect(check(checks, 'media: credentials').detail).toMatch(/^session credentials \(with a session token\), access key …/);
    const json = (await runCli(['doctor', '--json', '--media'], env)).stdout;
    for (const out of [text, json]) {
      expect(out).not.toContain(session.secretAccessKey);
      expect(out).not.toContain(session.sessionToken);
      expect(out).not.toContain(session.sessionToken.slice(0, 24));
    }
  }, 30_000);
}

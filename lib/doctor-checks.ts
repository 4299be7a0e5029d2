/**
 * The checks `doctor` runs, in the order they run. Each adds one result. A check that needs
 * what an earlier one found broken (no endpoint, refused credentials, no bucket, no write
 * access, an unreachable publicEndpoint) is skipped with that reason rather than failing twice.
 *
 * The connection checks are here; what the checks learn about the server's behaviour,
 * bucket settings and URLs is in `doctor-probes.ts`.
 */
import { GetBucketLocationCommand, GetObjectCommand, HeadBucketCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { reach, tlsFix } from './doctor-network.js';
import {
  aclCheck,
  browserUrl,
  checksumCheck,
  conditionalCompleteCheck,
  conditionalPutCheck,
  corsPreflightChecks,
  corsRuleCheck,
  lifecycleCheck,
  manifestCheck,
  privateObjectsCheck,
  publicPolicyCheck,
  signedUrlCheck,
  staticUrlCheck,
} from './doctor-probes.js';
import { CheckContext, describe, PROBE_BODY } from './doctor-context.js';
import type { DoctorTarget } from './doctor.types.js';
import { createS3Client, describeEndpoint } from './s3-client.factory.js';
import { codeOf, isNetworkError, isNotFound, statusOf } from './s3-errors.js';
import type { ResolvedConnectionOptions, ResolvedMediaOptions, ResolvedStaticOptions } from './storage-options.validation.js';

/** The checks of a media storage. */
export async function mediaChecks(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  await connectionChecks(ctx);
  await ctx.run('ACL headers', ['write'], () => aclCheck(ctx, media));
  await ctx.run('conditional PutObject', ['write'], () => conditionalPutCheck(ctx));
  await ctx.run('conditional CompleteMultipartUpload', ['write'], () => conditionalCompleteCheck(ctx));
  await ctx.run('flexible checksums', ['write'], () => checksumCheck(ctx, media));
  await ctx.run('private objects', ['write'], () => privateObjectsCheck(ctx, media));
  await ctx.run('CORS rule', ['bucket'], () => corsRuleCheck(ctx, media));
  await corsPreflightChecks(ctx, ['GET', 'PUT', 'POST'], media.cors, () => browserUrl(ctx, media));
  await ctx.run('lifecycle rules', ['bucket'], () => lifecycleCheck(ctx, media));
  await ctx.run('signed URL', ['write', 'public'], () => signedUrlCheck(ctx, media));
}

/** The checks of the static files storage. */
export async function staticChecks(ctx: CheckContext, st: ResolvedStaticOptions): Promise<void> {
  await connectionChecks(ctx);
  await ctx.run('public-read policy', ['bucket'], () => publicPolicyCheck(ctx, st));
  await ctx.run('anonymous static URL', ['write', 'public'], () => staticUrlCheck(ctx, st));
  await corsPreflightChecks(ctx, ['GET'], undefined);
  await ctx.run('manifest', ['bucket'], () => manifestCheck(ctx, st));
}

/** Endpoint, publicEndpoint, credentials, bucket and read/write: what every later check stands on. */
async function connectionChecks(ctx: CheckContext): Promise<void> {
  const o = ctx.target.options;
  try {
    ctx.region = o.region ?? (await ctx.client.config.region());
  } catch {
    ctx.add('region', 'fail', 'no region is configured and the AWS SDK found none', `set ${ctx.names.region}`);
    ctx.close('endpoint', 'no region');
  }
  await ctx.run('endpoint', ['endpoint'], () => endpointCheck(ctx));
  await ctx.run('public endpoint', ['endpoint'], () => publicEndpointCheck(ctx));
  await ctx.run('credentials', ['endpoint'], () => credentialsCheck(ctx));
  await ctx.run('bucket', ['endpoint', 'credentials'], () => bucketCheck(ctx));
  await ctx.run('read and write', ['endpoint', 'credentials', 'bucket'], () => readWriteCheck(ctx));
}

async function endpointCheck(ctx: CheckContext): Promise<void> {
  const base = ctx.internalBase();
  const found = await reach(base.origin, ctx.settings.timeoutMs);
  const where = describeEndpoint(ctx.target.options);
  if (found.ok) {
    ctx.add('endpoint', 'pass', `${where}: ${found.detail}`);
    return;
  }
  ctx.close('endpoint', `the endpoint ${where} is unreachable`);
  ctx.close('public', `the endpoint ${where} is unreachable`);
  const host = new URL(base.origin).host;
  const fix =
    found.stage === 'dns'
      ? `check the host name in ${ctx.names.endpoint} (from inside a container, the service name; from the host, localhost)`
      : found.stage === 'tcp'
        ? `start the S3 server, or correct the port in ${ctx.names.endpoint} (a firewall or security group may also block ${host})`
        : tlsFix(found.code, host);
  ctx.add('endpoint', 'fail', `${where}: ${found.detail}`, fix);
}

async function publicEndpointCheck(ctx: CheckContext): Promise<void> {
  const o = ctx.target.options;
  const custom = o.customDomain;
  if (o.publicEndpoint === undefined && custom === undefined) {
    ctx.add('public endpoint', 'skip', `not set (${ctx.names.publicEndpoint}): browsers get URLs on the endpoint itself`);
    return;
  }
  const origin = custom ?? ctx.publicBase().origin;
  const found = await reach(origin, ctx.settings.timeoutMs);
  const label = custom ? `custom domain ${custom}` : `publicEndpoint ${o.publicEndpoint}`;
  if (found.ok) {
    ctx.add('public endpoint', 'pass', `${label}: ${found.detail} (reached from this machine; browsers must reach it too)`);
    return;
  }
  ctx.close('public', `${label} is unreachable`);
  const host = new URL(origin).host;
  const setting = custom ? ctx.names.customDomain : ctx.names.publicEndpoint;
  const fix =
    found.stage === 'tls'
      ? tlsFix(found.code, host)
      : `set ${setting} to the address browsers reach the S3 server at (a port published to the host, or a proxy that forwards to ${describeEndpoint(o)} without changing the Host header); nothing answers at ${host}`;
  ctx.add('public endpoint', 'fail', `${label}: ${found.detail}`, fix);
}

/** Which kind of credentials, and whether the server accepts them. */
async function credentialsCheck(ctx: CheckContext): Promise<void> {
  const o = ctx.target.options;
  const n = ctx.names;
  const given = o.credentials;
  let kind = typeof given === 'function' ? 'a credential provider (options.credentials)' : given ? (given.sessionToken ? 'session credentials (with a session token)' : 'static keys') : "the AWS SDK's default provider chain";
  let resolved: { accessKeyId: string; sessionToken?: string; expiration?: Date; $source?: Record<string, unknown> };
  try {
    resolved = await ctx.client.config.credentials();
  } catch (error) {
    ctx.close('credentials', 'no credentials');
    ctx.add(
      'credentials',
      'fail',
      `${kind} found no credentials (${describe(error)})`,
      `set ${n.accessKey} and ${n.secretKey} (and ${n.sessionToken} for temporary credentials), or give the provider chain credentials: AWS_PROFILE, an IAM role, web identity`,
    );
    return;
  }
  if (given === undefined) kind += ` (${chainSource(resolved.$source)})`;
  if (given === undefined && resolved.sessionToken) kind += ', temporary';
  const key = `access key …${resolved.accessKeyId.slice(-4)}`;
  const expiry = resolved.expiration ? `, expiring ${resolved.expiration.toISOString()}` : '';
  const summary = `${kind}, ${key}${expiry}`;

  let refusal: unknown;
  try {
    await ctx.client.send(new ListBucketsCommand({ MaxBuckets: 1 }), ctx.send);
  } catch (error) {
    refusal = error;
  }
  if (refusal !== undefined) {
    const code = codeOf(refusal);
    if (isNetworkError(refusal)) {
      ctx.close('credentials', 'the endpoint did not answer');
      ctx.add('credentials', 'fail', `${summary}: the endpoint did not answer (${describe(refusal)})`, `check ${n.endpoint}`);
      return;
    }
    const named = credentialFailure(code, n);
    if (named) {
      ctx.close('credentials', 'the credentials were refused');
      ctx.add('credentials', 'fail', `${summary}: refused by the server (${code})`, named);
      return;
    }
    // AccessDenied: on AWS a key without s3:ListAllMyBuckets; on Ceph also a wrong secret. The bucket tells them apart.
    try {
      await ctx.client.send(new HeadBucketCommand({ Bucket: ctx.bucket }), ctx.send);
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 301) {
        ctx.close('credentials', 'the credentials were refused');
        ctx.add(
          'credentials',
          'fail',
          `${summary}: refused by the server (${code ?? `HTTP ${statusOf(refusal) ?? '?'}`} on ListBuckets, HTTP ${statusOf(error) ?? '?'} on the bucket)`,
          `check ${n.accessKey} and ${n.secretKey}${o.credentials && typeof o.credentials === 'object' && o.credentials.sessionToken ? ` (and that ${n.sessionToken} has not expired)` : ''}; if they are right, the key's policy must allow s3:ListBucket on bucket "${ctx.bucket}"`,
        );
        return;
      }
    }
  }
  ctx.verifiesSignatures = await refusesWrongSecret(ctx, resolved);
  if (ctx.verifiesSignatures === false) {
    ctx.add('credentials', 'info', `${summary}: accepted, but this server also accepts a wrong secret (it checks no signatures, like the embedded development server), so they are unverified`);
    return;
  }
  ctx.add('credentials', 'pass', `${summary}: accepted by the server`);
}

/** A fix for the error codes that name what is wrong with credentials; undefined for the others. */
function credentialFailure(code: string | undefined, n: DoctorTarget['names']): string | undefined {
  switch (code) {
    case 'InvalidAccessKeyId':
      return `the server knows no such access key: set ${n.accessKey} to a key of this server's account`;
    case 'SignatureDoesNotMatch':
      return `the secret key does not belong to the access key: set ${n.secretKey} to the key's secret`;
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return `the session credentials have expired: renew them (${n.accessKey}, ${n.secretKey}, ${n.sessionToken})`;
    case 'InvalidToken':
      return `the session token is not valid for these keys: set ${n.sessionToken} from the same response as the keys`;
    case 'RequestTimeTooSkewed':
      return "this machine's clock is off by more than 15 minutes: synchronise it (NTP)";
    default:
      return undefined;
  }
}

/** Where the provider chain found the credentials, from the SDK's feature ids. */
function chainSource(source: Record<string, unknown> | undefined): string {
  const ids = Object.keys(source ?? {});
  const names: Record<string, string> = {
    CREDENTIALS_ENV_VARS: 'from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY',
    CREDENTIALS_ENV_VARS_STS_WEB_ID_TOKEN: 'from a web identity token',
    CREDENTIALS_STS_ASSUME_ROLE_WEB_ID: 'from a web identity role',
    CREDENTIALS_PROFILE: 'from a profile',
    CREDENTIALS_SSO: 'from SSO',
    CREDENTIALS_PROFILE_SSO: 'from SSO',
    CREDENTIALS_PROCESS: 'from a credential process',
    CREDENTIALS_HTTP: 'from the container credentials endpoint',
    CREDENTIALS_IMDS: 'from EC2 instance metadata',
  };
  const found = ids.map((id) => names[id]).find(Boolean);
  return found ?? 'source not reported';
}

/** Whether a request signed with a made-up secret is refused. Undefined when that cannot be told. */
async function refusesWrongSecret(ctx: CheckContext, creds: { accessKeyId: string; sessionToken?: string }): Promise<boolean | undefined> {
  const wrong = createS3Client({
    ...(ctx.target.options as ResolvedConnectionOptions),
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: `doctor-${randomBytes(16).toString('hex')}`, sessionToken: creds.sessionToken },
    maxAttempts: 1,
  });
  try {
    await wrong.send(new HeadBucketCommand({ Bucket: ctx.bucket }), ctx.send);
    return false;
  } catch (error) {
    const status = statusOf(error);
    if (status === 403 || status === 400) return true;
    // A missing bucket answered 404 before any signature was looked at: nothing was checked.
    return undefined;
  } finally {
    wrong.destroy();
  }
}

const AWS_REGION = /^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$/;

async function bucketCheck(ctx: CheckContext): Promise<void> {
  const n = ctx.names;
  const where = `bucket "${ctx.bucket}" at ${describeEndpoint(ctx.target.options)}`;
  let headerRegion: string | undefined;
  try {
    headerRegion = (await ctx.client.send(new HeadBucketCommand({ Bucket: ctx.bucket }), ctx.send)).BucketRegion;
  } catch (error) {
    ctx.close('bucket', `${where} is not usable`);
    const status = statusOf(error);
    const elsewhere = regionHeader(error);
    if (isNotFound(error) || codeOf(error) === 'NoSuchBucket') {
      ctx.add('bucket', 'fail', `${where} does not exist`, ctx.target.ensureCommand ? `run: ${ctx.target.ensureCommand}` : `create it (the app's start-up check creates it when ensureBucket is "create", the default), or correct ${n.bucket}`);
    } else if (status === 301 || elsewhere) {
      ctx.add('bucket', 'fail', `${where} lives in region ${elsewhere ?? '(another region)'}, not ${ctx.region}`, `set ${n.region}=${elsewhere ?? "<the bucket's region>"}`);
    } else if (status === 403) {
      ctx.add('bucket', 'fail', `${where}: access denied`, `the bucket belongs to another account, or the key's policy lacks s3:ListBucket on arn:aws:s3:::${ctx.bucket}; correct ${n.bucket} or the policy`);
    } else {
      ctx.add('bucket', 'fail', `${where}: ${describe(error)}`, `check ${n.bucket}, ${n.region} and ${n.endpoint}`);
    }
    return;
  }
  let reported = headerRegion;
  if (reported === undefined) {
    try {
      const location = (await ctx.client.send(new GetBucketLocationCommand({ Bucket: ctx.bucket }), ctx.send)).LocationConstraint as string | undefined;
      reported = location === undefined || location === '' ? 'us-east-1' : location === 'EU' ? 'eu-west-1' : location;
    } catch {
      // s3:GetBucketLocation may be denied; the region then cannot be compared.
    }
  }
  if (reported === undefined) {
    ctx.add('bucket', 'pass', `${where} exists (its region is not reported; signing for ${ctx.region})`);
  } else if (!AWS_REGION.test(reported)) {
    ctx.add('bucket', 'pass', `${where} exists; the server names its location "${reported}", not an AWS region (S3-compatible servers name their zone group so and accept requests signed for ${ctx.region})`);
  } else if (reported !== ctx.region) {
    ctx.close('bucket', `${where} is in another region`);
    ctx.add('bucket', 'fail', `${where} is in region ${reported}, but requests are signed for ${ctx.region}`, `set ${n.region}=${reported}`);
  } else {
    ctx.add('bucket', 'pass', `${where} exists, in region ${reported} as configured`);
  }
}

function regionHeader(error: unknown): string | undefined {
  const headers = (error as { $response?: { headers?: Record<string, string> } }).$response?.headers;
  return headers?.['x-amz-bucket-region'];
}

async function readWriteCheck(ctx: CheckContext): Promise<void> {
  const key = ctx.probeKey('probe.txt');
  const policy = `arn:aws:s3:::${ctx.bucket}/${ctx.target.options.location === '' ? '' : `${ctx.target.options.location}/`}*`;
  try {
    ctx.wrote(key);
    await ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: PROBE_BODY, ContentType: 'text/plain' }), ctx.send);
  } catch (error) {
    ctx.close('write', 'the probe object could not be written');
    ctx.add('read and write', 'fail', `PutObject of ${key} failed: ${describe(error)}`, `the key's policy must allow s3:PutObject, s3:GetObject and s3:DeleteObject on ${policy}`);
    return;
  }
  try {
    const out = await ctx.client.send(new GetObjectCommand({ Bucket: ctx.bucket, Key: key }), ctx.send);
    const body = await out.Body!.transformToString();
    if (body !== PROBE_BODY) throw new Error('the object read back differs from what was written');
  } catch (error) {
    ctx.close('write', 'the probe object could not be read back');
    ctx.add('read and write', 'fail', `GetObject of ${key} failed: ${describe(error)}`, `the key's policy must allow s3:GetObject on ${policy}`);
    return;
  }
  ctx.add('read and write', 'pass', `wrote and read back the probe object ${key}`);
}


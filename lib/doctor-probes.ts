/**
 * The `doctor` checks past the connection: what the server does with ACL headers,
 * conditional writes and flexible checksums (described, never judged); whether the bucket
 * settings the storage asks for are in place; and whether the URLs browsers get work, the
 * seed's trap included: a URL signed for one host and fetched through another.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { corsRule, lifecycleRules, publicReadStatement, PUBLIC_READ_SID } from './bucket-settings.js';
import { describe, PROBE_BODY, type CheckContext } from './doctor-context.js';
import { hostSeenByServer, request, xmlErrorCode, type HttpOutcome } from './doctor-network.js';
import { codeOf, statusOf } from './s3-errors.js';
import type { StorageCorsRule } from './storage-module-options.interface.js';
import type { ResolvedMediaOptions, ResolvedStaticOptions } from './storage-options.validation.js';
import { encodeKeyPath, UrlSigner } from './url-signer.js';

const UNSUPPORTED = new Set(['NotImplemented', 'MethodNotAllowed']);
const unsupported = (error: unknown) => statusOf(error) === 501 || UNSUPPORTED.has(codeOf(error) ?? '');

/** Whether the bucket takes `x-amz-acl`: buckets with "bucket owner enforced" object ownership refuse it. */
export async function aclCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  const key = ctx.probeKey('acl.txt');
  // The configured ACL, as uploads will send it: a bucket may take "private" yet refuse "public-read".
  const acl = media.acl ?? 'private';
  try {
    ctx.wrote(key);
    await ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: 'acl probe', ACL: acl }), ctx.send);
    ctx.add('ACL headers', 'info', `accepted: a PutObject with x-amz-acl: ${acl} was stored${media.acl ? ` (media.acl "${media.acl}" works here)` : ''}`);
  } catch (error) {
    const code = codeOf(error);
    const why =
      code === 'AccessControlListNotSupported'
        ? 'refused (AccessControlListNotSupported): the bucket enforces bucket-owner object ownership, so ACLs are off'
        : statusOf(error) === 403
          ? `refused (${describe(error)}): the key's policy lacks s3:PutObjectAcl`
          : `refused (${describe(error)})`;
    if (media.acl) {
      ctx.add('ACL headers', 'fail', `x-amz-acl: ${acl} ${why}, yet media.acl is "${media.acl}": every upload will fail`, 'remove media.acl and grant access with a bucket policy (or a CDN) instead');
    } else {
      ctx.add('ACL headers', 'info', `${why}; media.acl is unset, so the library sends none`);
    }
  }
}

/** Whether `If-None-Match: *` on PutObject refuses an existing key (the library's no-overwrite claim rests on it). */
export async function conditionalPutCheck(ctx: CheckContext): Promise<void> {
  const key = ctx.probeKey('probe.txt');
  try {
    await ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: PROBE_BODY, IfNoneMatch: '*' }), ctx.send);
    ctx.add(
      'conditional PutObject',
      'info',
      'If-None-Match: * is ignored: a second PutObject replaced the object; with overwrite false the library then only looks before it writes, which a concurrent writer can beat',
    );
  } catch (error) {
    if (statusOf(error) === 412) {
      ctx.add('conditional PutObject', 'info', 'If-None-Match: * is honoured (412 over an existing object): no-overwrite writes are arbitrated by the server');
    } else {
      ctx.add('conditional PutObject', 'info', `could not tell: a conditional PutObject got ${describe(error)}`);
    }
  }
}

/** Whether `If-None-Match: *` on CompleteMultipartUpload refuses an existing key (Ceph ignores it). */
export async function conditionalCompleteCheck(ctx: CheckContext): Promise<void> {
  const key = ctx.probeKey('probe.txt');
  let uploadId: string | undefined;
  try {
    ctx.wrote(key);
    uploadId = (await ctx.client.send(new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: key }), ctx.send)).UploadId!;
    ctx.startedUpload(key, uploadId);
    const part = await ctx.client.send(new UploadPartCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId, PartNumber: 1, Body: PROBE_BODY }), ctx.send);
    await ctx.client.send(
      new CompleteMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }),
      ctx.send,
    );
    ctx.finishedUpload(uploadId);
    ctx.add(
      'conditional CompleteMultipartUpload',
      'info',
      'If-None-Match: * is ignored on CompleteMultipartUpload (the upload replaced the object), as on Ceph RGW; the library does not rely on it: large writes claim the name with a conditional PutObject first',
    );
  } catch (error) {
    if (statusOf(error) === 412) {
      ctx.add('conditional CompleteMultipartUpload', 'info', 'If-None-Match: * is honoured on CompleteMultipartUpload (412 over an existing object)');
    } else {
      ctx.add('conditional CompleteMultipartUpload', 'info', `could not tell: the multipart probe got ${describe(error)}`);
    }
  }
}

/** What the server does with a wrong `x-amz-checksum-crc32`: verify it, or store the object anyway. */
export async function checksumCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  const key = ctx.probeKey('checksum.txt');
  const mode =
    media.checksums === 'when-required'
      ? 'this storage sends checksums only where an operation requires them (checksums "when-required")'
      : 'this storage sends a CRC32 with every upload (checksums "when-supported")';
  try {
    // The CRC32 of "checksum probe" is not 0: a server that verifies must refuse this.
    ctx.wrote(key);
    await ctx.client.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: 'checksum probe', ChecksumCRC32: 'AAAAAA==' }), ctx.send);
    ctx.add('flexible checksums', 'info', `ignored: an upload with a wrong x-amz-checksum-crc32 was stored (Ceph RGW does so), so integrity rests on Content-MD5 and ETags here; ${mode}`);
  } catch (error) {
    // Only a refusal that names the checksum counts: any other 400 (a proxy, a signing problem) proves nothing.
    const code = codeOf(error);
    const message = String((error as { message?: unknown }).message ?? '');
    if (statusOf(error) === 400 && (code === 'BadDigest' || code === 'XAmzContentChecksumMismatch' || (code === 'InvalidRequest' && /checksum/i.test(message)))) {
      ctx.add('flexible checksums', 'info', `verified: a wrong x-amz-checksum-crc32 was refused (${describe(error)}); ${mode}`);
    } else {
      ctx.add('flexible checksums', 'info', `could not tell: the checksum probe got ${describe(error)}; ${mode}`);
    }
  }
}

/** An anonymous GET of a media object must be refused, unless media URLs are meant to be public. */
export async function privateObjectsCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  const url = ctx.objectUrl(ctx.probeKey('probe.txt'), ctx.internalBase());
  const got = await request(url, {}, ctx.settings.timeoutMs);
  if (!got.ok) {
    ctx.add('private objects', 'info', `could not tell: an anonymous GET failed (${got.code})`);
    return;
  }
  const { status, body } = got.answer;
  if (status === 403) {
    ctx.add('private objects', 'pass', 'an anonymous GET of a media object is refused (403): only signed URLs read it');
  } else if (status === 200 && body === PROBE_BODY) {
    if (ctx.verifiesSignatures === false) {
      ctx.add('private objects', 'info', 'an anonymous GET of a media object answers 200: this server enforces no access control (a development server)');
    } else if (!media.signedUrls) {
      ctx.add('private objects', 'info', 'media objects are public (anonymous GET answers 200); URLs are unsigned (customDomain / signedUrls false), so that is intended');
    } else {
      ctx.add(
        'private objects',
        'fail',
        `media objects are readable by anyone (anonymous GET of ${url} answers 200): signed URLs protect nothing`,
        `remove the public grant (bucket policy or ACL) covering "${media.location || 'the bucket root'}"; a public-read policy for static files must cover only their own location`,
      );
    }
  } else {
    ctx.add('private objects', 'info', `could not tell: an anonymous GET answered HTTP ${status}`);
  }
}

/** The CORS rule media.cors asks for is on the bucket, as ensure-bucket writes it. */
export async function corsRuleCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  if (!media.cors) {
    ctx.add('CORS rule', 'skip', `not configured (${ctx.names.cors ?? 'media.cors'})`);
    return;
  }
  const wanted = corsRule({ ...media.cors, location: media.location });
  const fix = ensureFix(ctx, `${ctx.names.cors ?? 'media.cors'}`);
  let rules;
  try {
    rules = (await ctx.client.send(new GetBucketCorsCommand({ Bucket: ctx.bucket }), ctx.send)).CORSRules ?? [];
  } catch (error) {
    if (codeOf(error) === 'NoSuchCORSConfiguration') {
      ctx.add('CORS rule', 'fail', 'the bucket has no CORS configuration', fix);
    } else if (unsupported(error)) {
      ctx.add('CORS rule', 'fail', `this server has no bucket CORS configuration (${describe(error)})`, `unset ${ctx.names.cors ?? 'media.cors'} and answer CORS in a proxy in front of the server`);
    } else {
      ctx.add('CORS rule', 'fail', `could not read the CORS configuration (${describe(error)})`, "the key's policy needs s3:GetBucketCORS");
    }
    return;
  }
  const ours = rules.find((r) => r.ID === wanted.ID);
  const set = (v: string[] | undefined) => [...new Set((v ?? []).map((x) => x.toUpperCase()))].sort().join(',');
  const origins = (v: string[] | undefined) => [...(v ?? [])].sort().join(',');
  if (!ours) {
    ctx.add('CORS rule', 'fail', `no rule "${wanted.ID}" among the bucket's ${rules.length} CORS rule(s)`, fix);
  } else if (origins(ours.AllowedOrigins) !== origins(wanted.AllowedOrigins) || set(ours.AllowedMethods) !== set(wanted.AllowedMethods)) {
    ctx.add('CORS rule', 'fail', `rule "${wanted.ID}" differs from the configuration (origins ${origins(ours.AllowedOrigins)}, methods ${set(ours.AllowedMethods)})`, fix);
  } else if (uncovered(ours.ExposeHeaders, wanted.ExposeHeaders).length > 0) {
    const missing = uncovered(ours.ExposeHeaders, wanted.ExposeHeaders);
    const etag = missing.some((h) => h.toLowerCase() === 'etag') ? ': browsers cannot read the ETag of each uploaded part, so multipart uploads (Uppy, the AWS SDK in a browser) cannot complete' : '';
    ctx.add('CORS rule', 'fail', `rule "${wanted.ID}" does not expose ${missing.join(', ')} (ExposeHeaders ${ours.ExposeHeaders?.join(',') || 'none'})${etag}`, fix);
  } else if (uncovered(ours.AllowedHeaders, wanted.AllowedHeaders).length > 0) {
    const missing = uncovered(ours.AllowedHeaders, wanted.AllowedHeaders);
    ctx.add('CORS rule', 'fail', `rule "${wanted.ID}" does not allow the request header(s) ${missing.join(', ')} (AllowedHeaders ${ours.AllowedHeaders?.join(',') || 'none'}): browsers' uploads sending them are refused at preflight`, fix);
  } else {
    ctx.add('CORS rule', 'pass', `rule "${wanted.ID}" allows ${set(wanted.AllowedMethods)} from ${origins(wanted.AllowedOrigins)}, exposing ${wanted.ExposeHeaders?.join(', ') || 'no headers'}`);
  }
}

/** The headers of `wanted` that `have` does not cover (case-insensitive; `*` covers every one). */
function uncovered(have: string[] | undefined, wanted: string[] | undefined): string[] {
  const got = new Set((have ?? []).map((h) => h.toLowerCase()));
  if (got.has('*')) return [];
  return (wanted ?? []).filter((h) => !got.has(h.toLowerCase()));
}

/**
 * Real preflights from `--origin`, one per method, against the URLs browsers use. With
 * `actualUrl` (media: the probe object's URL as the browser gets it), PUT also checks that an
 * actual response exposes ETag, which multipart uploads read from every part's response.
 */
export async function corsPreflightChecks(
  ctx: CheckContext,
  methods: readonly ('GET' | 'PUT' | 'POST')[],
  cors: Required<StorageCorsRule> | undefined,
  actualUrl?: () => Promise<string>,
): Promise<void> {
  const origin = ctx.settings.origin;
  if (origin === undefined) {
    ctx.add('CORS preflight', 'skip', 'no --origin given: pass the web app\'s origin (--origin https://app.example.com) to send real preflights');
    return;
  }
  for (const method of methods) {
    const name = `CORS ${method} from ${origin}`;
    await ctx.run(name, ['bucket', 'public'], async () => {
      const base = ctx.publicBase();
      // Presigned POSTs go to the bucket URL; GETs and PUTs (single, or multipart parts) to the object's.
      const url = method === 'POST' ? `${base.origin}${base.pathPrefix}` : ctx.objectUrl(ctx.probeKey('cors-probe.txt'), base);
      const headers: Record<string, string> = { Origin: origin, 'Access-Control-Request-Method': method };
      if (method !== 'GET') headers['Access-Control-Request-Headers'] = 'content-type';
      const got = await request(url, { method: 'OPTIONS', headers }, ctx.settings.timeoutMs);
      if (!got.ok) {
        ctx.add(name, 'fail', `the preflight to ${url} failed (${got.code})`, `make ${ctx.names.publicEndpoint} reachable`);
        return;
      }
      const h = got.answer.headers;
      const allowOrigin = h.get('access-control-allow-origin');
      const allowMethods = (h.get('access-control-allow-methods') ?? '').toUpperCase().split(/\s*,\s*/);
      const allowed = got.answer.status < 300 && (allowOrigin === origin || allowOrigin === '*') && (allowMethods.includes(method) || allowMethods.includes('*'));
      if (allowed && method === 'PUT' && actualUrl) {
        // Browsers read Access-Control-Expose-Headers from the actual response, not the preflight.
        const target = await actualUrl();
        const actual = await request(target, { headers: { Origin: origin } }, ctx.settings.timeoutMs);
        const expose = actual.ok ? actual.answer.headers.get('access-control-expose-headers') : null;
        const exposed = expose !== null && expose.split(/\s*,\s*/).some((x) => x === '*' || x.toLowerCase() === 'etag');
        if (!actual.ok) {
          ctx.add(name, 'fail', `the preflight passes, but a GET with Origin: ${origin} failed (${actual.code}), so whether ETag is exposed is unknown`, `make ${ctx.names.publicEndpoint} reachable`);
        } else if (!exposed) {
          ctx.add(
            name,
            'fail',
            `the preflight passes (HTTP ${got.answer.status}), but a response to Origin: ${origin} (HTTP ${actual.answer.status}) does not expose ETag (Access-Control-Expose-Headers: ${expose ?? 'absent'}): browsers cannot read the ETag of each uploaded part, so multipart uploads (Uppy, the AWS SDK in a browser) cannot complete`,
            cors && !cors.exposeHeaders.some((x) => x.toLowerCase() === 'etag')
              ? `add ETag to media.cors.exposeHeaders, then ${ensureStep(ctx)}`
              : `${ensureStep(ctx)} to put the CORS rule (ExposeHeaders ETag) on the bucket; if it is there, a proxy in front of ${ctx.names.publicEndpoint} drops Access-Control-Expose-Headers`,
          );
        } else {
          ctx.add(name, 'pass', `allowed (HTTP ${got.answer.status}, Access-Control-Allow-Origin: ${allowOrigin}); responses expose ETag (Access-Control-Expose-Headers: ${expose}), as multipart uploads need`);
        }
        return;
      }
      if (allowed) {
        ctx.add(name, 'pass', `allowed (HTTP ${got.answer.status}, Access-Control-Allow-Origin: ${allowOrigin})`);
        return;
      }
      const answer = `HTTP ${got.answer.status}${allowOrigin ? `, Access-Control-Allow-Origin: ${allowOrigin}` : ', no Access-Control-Allow-Origin'}`;
      ctx.add(name, 'fail', `refused (${answer}): browsers at ${origin} cannot ${method === 'GET' ? 'read' : 'upload to'} the bucket`, corsFix(ctx, origin, method, cors));
    });
  }
}

/**
 * The URL a browser gets for the probe object: signed for publicEndpoint when media URLs are
 * S3-signed. Without a probe object (no write access), an anonymous URL: S3 servers put the
 * CORS headers on the error answer too.
 */
export async function browserUrl(ctx: CheckContext, media: ResolvedMediaOptions): Promise<string> {
  if (!ctx.isOpen('write')) return ctx.objectUrl(ctx.probeKey('cors-probe.txt'));
  const key = ctx.probeKey('probe.txt');
  if (!media.signedUrls || media.cloudfront) return ctx.objectUrl(key);
  return signerFor(ctx, media, media.publicEndpoint ?? media.endpoint).sign(key, { expiresIn: 300 });
}

function signerFor(ctx: CheckContext, media: ResolvedMediaOptions, endpoint: string | undefined): UrlSigner {
  return new UrlSigner({ bucket: ctx.bucket, endpoint, forcePathStyle: media.forcePathStyle, region: ctx.region, credentials: () => ctx.client.config.credentials() });
}

function corsFix(ctx: CheckContext, origin: string, method: string, cors: Required<StorageCorsRule> | undefined): string {
  const variable = ctx.names.cors;
  if (variable === undefined) {
    return `static files have no CORS option: add a CORS rule allowing ${method} from ${origin} to bucket "${ctx.bucket}" (or, when static files share the media bucket, set MEDIA_S3_CORS_ORIGINS and run nestjs-s3-storage ensure-bucket --media)`;
  }
  if (!cors) return `set ${variable}=${origin}, then ${ensureStep(ctx)}`;
  if (!cors.allowedOrigins.includes(origin) && !cors.allowedOrigins.includes('*')) return `add ${origin} to ${variable}, then ${ensureStep(ctx)}`;
  if (!cors.allowedMethods.includes(method as never)) return `allow ${method} in media.cors.allowedMethods, then ${ensureStep(ctx)}`;
  return `${ensureStep(ctx)} to put the CORS rule on the bucket; if it is there, a proxy in front of ${ctx.names.publicEndpoint} answers OPTIONS itself or drops the CORS headers`;
}

function ensureStep(ctx: CheckContext): string {
  return ctx.target.ensureCommand ? `run ${ctx.target.ensureCommand}` : 'restart the app (its start-up check applies the bucket settings unless ensureBucket is "off")';
}

function ensureFix(ctx: CheckContext, setting: string): string {
  return `${ensureStep(ctx)} to apply ${setting}; bucket settings are applied unless ensureBucket is "off"`;
}

/** The two lifecycle rules media.lifecycle asks for are on the bucket. */
export async function lifecycleCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  const variable = ctx.names.lifecycle ?? 'media.lifecycle';
  if (!media.lifecycle) {
    ctx.add('lifecycle rules', 'skip', `not configured (${variable})`);
    return;
  }
  const wanted = lifecycleRules({ ...media.lifecycle, location: media.location });
  let rules: LifecycleRule[];
  try {
    rules = (await ctx.client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: ctx.bucket }), ctx.send)).Rules ?? [];
  } catch (error) {
    if (codeOf(error) === 'NoSuchLifecycleConfiguration') {
      rules = [];
    } else if (unsupported(error)) {
      ctx.add('lifecycle rules', 'fail', `this server has no lifecycle configuration (${describe(error)})`, `set ${variable}=false here, and clean up incomplete multipart uploads and .pending/ objects another way`);
      return;
    } else {
      ctx.add('lifecycle rules', 'fail', `could not read the lifecycle configuration (${describe(error)})`, "the key's policy needs s3:GetLifecycleConfiguration");
      return;
    }
  }
  const prefixOf = (r: LifecycleRule) => r.Filter?.Prefix ?? r.Filter?.And?.Prefix ?? (r as { Prefix?: string }).Prefix ?? '';
  const wrong = wanted.filter((w) => {
    const r = rules.find((x) => x.ID === w.ID);
    return (
      !r ||
      r.Status !== 'Enabled' ||
      prefixOf(r) !== prefixOf(w) ||
      r.AbortIncompleteMultipartUpload?.DaysAfterInitiation !== w.AbortIncompleteMultipartUpload?.DaysAfterInitiation ||
      r.Expiration?.Days !== w.Expiration?.Days
    );
  });
  if (wrong.length > 0) {
    ctx.add('lifecycle rules', 'fail', `missing or different: ${wrong.map((w) => w.ID).join(', ')}`, ensureFix(ctx, variable));
  } else {
    const [abort, pending] = wanted;
    ctx.add(
      'lifecycle rules',
      'pass',
      `incomplete multipart uploads under "${prefixOf(abort!)}" end after ${abort!.AbortIncompleteMultipartUpload!.DaysAfterInitiation} days; unconfirmed direct uploads expire after ${pending!.Expiration!.Days} days`,
    );
  }
}

/** The public-read statement static.publicRead asks for is in the bucket policy. */
export async function publicPolicyCheck(ctx: CheckContext, st: ResolvedStaticOptions): Promise<void> {
  const variable = ctx.names.publicRead ?? 'static.publicRead';
  if (!st.publicRead) {
    ctx.add('public-read policy', 'skip', `not configured (${variable} is not true)`);
    return;
  }
  const wanted = publicReadStatement(ctx.bucket, st.location);
  let text: string | undefined;
  try {
    text = (await ctx.client.send(new GetBucketPolicyCommand({ Bucket: ctx.bucket }), ctx.send)).Policy;
  } catch (error) {
    if (codeOf(error) === 'NoSuchBucketPolicy') {
      ctx.add('public-read policy', 'fail', 'the bucket has no policy', `${ensureStep(ctx)}; on AWS, first lift Block Public Access for the bucket (BlockPublicPolicy and RestrictPublicBuckets false)`);
    } else if (unsupported(error)) {
      ctx.add(
        'public-read policy',
        'fail',
        `this server has no bucket policies (${describe(error)})`,
        `set ${variable}=false and use the provider's public-bucket setting (Cloudflare R2: a public bucket or custom domain; Backblaze B2: a public bucket), or a CDN`,
      );
    } else {
      ctx.add('public-read policy', 'fail', `could not read the bucket policy (${describe(error)})`, "the key's policy needs s3:GetBucketPolicy");
    }
    return;
  }
  let statements: { Sid?: string; Effect?: string; Principal?: unknown; Action?: unknown; Resource?: unknown }[] = [];
  try {
    const parsed = JSON.parse(text ?? '{}') as { Statement?: unknown };
    statements = (Array.isArray(parsed.Statement) ? parsed.Statement : parsed.Statement ? [parsed.Statement] : []) as typeof statements;
  } catch {
    ctx.add('public-read policy', 'fail', 'the bucket policy is not valid JSON', 'fix or delete the bucket policy, then run ensure-bucket --static');
    return;
  }
  const ours = statements.find((s) => s.Sid === PUBLIC_READ_SID);
  const list = (v: unknown) => (Array.isArray(v) ? v : [v]).map(String);
  const anyone = (p: unknown) => p === '*' || (typeof p === 'object' && p !== null && list((p as { AWS?: unknown }).AWS).includes('*'));
  const resource = String(wanted.Resource);
  const resources = ours ? list(ours.Resource) : [];
  const right = ours && ours.Effect === 'Allow' && anyone(ours.Principal) && list(ours.Action).includes('s3:GetObject') && resources.length === 1 && resources[0] === resource;
  if (!right) {
    const detail = !ours
      ? `no statement "${PUBLIC_READ_SID}" in the bucket policy`
      : `statement "${PUBLIC_READ_SID}" is not exactly anonymous s3:GetObject on ${resource} (Resource ${resources.join(', ') || 'none'})`;
    ctx.add('public-read policy', 'fail', detail, `${ensureStep(ctx)} (it rewrites the statement by its Sid)`);
    return;
  }
  // Another statement granting anonymous reads past the static location makes media public too.
  const inside = `arn:aws:s3:::${ctx.bucket}/${st.location}/`;
  const outside = (r: string) => (r.startsWith(`arn:aws:s3:::${ctx.bucket}/`) ? !r.startsWith(inside) : glob(r, `arn:aws:s3:::${ctx.bucket}/x`));
  const readsAny = (a: unknown) => list(a).some((x) => glob(x.toLowerCase(), 's3:getobject'));
  const broad = statements.filter((x) => x !== ours && x.Effect === 'Allow' && anyone(x.Principal) && readsAny(x.Action) && list(x.Resource).some(outside));
  if (broad.length > 0) {
    const names = broad.map((x, i) => `"${x.Sid ?? `(statement ${statements.indexOf(x) + 1}, no Sid)`}"${i === 0 ? ` (Resource ${list(x.Resource).join(', ')})` : ''}`);
    ctx.add(
      'public-read policy',
      'fail',
      `statement ${names.join(', ')} of the bucket policy also grants anonymous s3:GetObject beyond "${st.location}/": media objects (or the whole bucket) are public, and signed URLs protect nothing`,
      `remove ${names.length === 1 ? 'that statement' : 'those statements'} from the bucket policy (or narrow its Resource to ${resource}); "${PUBLIC_READ_SID}" is all static files need`,
    );
    return;
  }
  ctx.add('public-read policy', 'pass', `statement "${PUBLIC_READ_SID}" grants anonymous s3:GetObject on ${String(wanted.Resource)} only`);
}

/** A static file's URL, as StaticManifestStorage builds it, loads with no credentials. */
export async function staticUrlCheck(ctx: CheckContext, st: ResolvedStaticOptions): Promise<void> {
  const key = ctx.probeKey('probe.txt');
  const url = st.customDomain !== undefined ? `${st.customDomain}/${encodeKeyPath(key)}` : ctx.objectUrl(key);
  const got = await request(url, {}, ctx.settings.timeoutMs);
  if (!got.ok) {
    ctx.add('anonymous static URL', 'fail', `GET ${url} failed (${got.code})`, `make ${st.customDomain !== undefined ? ctx.names.customDomain : ctx.names.publicEndpoint} reachable`);
    return;
  }
  const { status, body } = got.answer;
  if (status === 200 && body === PROBE_BODY) {
    ctx.add('anonymous static URL', 'pass', `${url} loads with no credentials (200)`);
    return;
  }
  const variable = ctx.names.publicRead ?? 'static.publicRead';
  const fix = st.publicRead
    ? `the public-read policy is not in effect: ${ensureStep(ctx)}; on AWS, lift Block Public Access for the bucket (BlockPublicPolicy and RestrictPublicBuckets false)`
    : `set ${variable}=true and ${ensureStep(ctx)} (it grants anonymous reads of "${st.location}/*" only), or serve static files through a CDN that can read the bucket (${ctx.names.customDomain})`;
  ctx.add('anonymous static URL', 'fail', `${url} answers HTTP ${status}${xmlErrorCode(body) ? ` ${xmlErrorCode(body)}` : ''}: browsers cannot load static files`, status === 403 ? fix : `check ${ctx.names.publicEndpoint}: it does not lead to bucket "${ctx.bucket}"`);
}

/** Whether collectstatic has written the manifest (information: a fresh deploy has none yet). */
export async function manifestCheck(ctx: CheckContext, st: ResolvedStaticOptions): Promise<void> {
  const key = st.location === '' ? st.manifestName : `${st.location}/${st.manifestName}`;
  try {
    const head = await ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key }), ctx.send);
    ctx.add('manifest', 'info', `${key} is there (${head.ContentLength ?? '?'} bytes, written ${head.LastModified?.toISOString() ?? 'at an unknown time'})`);
  } catch (error) {
    ctx.add('manifest', 'info', statusOf(error) === 404 ? `${key} is not there yet: run nestjs-s3-storage collectstatic <dir>` : `could not read ${key} (${describe(error)})`);
  }
}

/**
 * The seed's trap. A freshly signed URL for the probe is fetched through publicEndpoint, as a
 * browser would. When the server refuses it, two more fetches tell why: the same signing on
 * the endpoint itself (so the keys and clock are fine), and a URL signed for the endpoint with
 * its host swapped for publicEndpoint's (what the seed's URL rewrite did). If that one loads,
 * whatever forwards publicEndpoint to the server rewrites the Host header.
 */
export async function signedUrlCheck(ctx: CheckContext, media: ResolvedMediaOptions): Promise<void> {
  const name = 'signed URL';
  if (media.cloudfront) {
    ctx.add(name, 'skip', 'URLs are CloudFront-signed; doctor checks S3-signed URLs only');
    return;
  }
  if (!media.signedUrls) {
    ctx.add(name, 'skip', 'URLs are unsigned (customDomain or signedUrls false): nothing to sign');
    return;
  }
  const key = ctx.probeKey('probe.txt');
  const signer = (endpoint: string | undefined) => signerFor(ctx, media, endpoint);
  const pub = ctx.publicBase();
  const internal = ctx.internalBase();
  const url = await signer(media.publicEndpoint ?? media.endpoint).sign(key, { expiresIn: 300 });
  const through = media.publicEndpoint !== undefined ? `publicEndpoint ${media.publicEndpoint}` : 'the endpoint';
  const swapped = pub.host !== internal.host;
  const seedUrl = async () => pub.origin + (await signer(media.endpoint).sign(key, { expiresIn: 300 })).slice(internal.origin.length);
  const t = ctx.settings.timeoutMs;

  const got = await request(url, {}, t);
  if (!got.ok) {
    ctx.add(name, 'fail', `GET of a signed URL through ${through} failed (${got.code})`, `set ${ctx.names.publicEndpoint} to an address that forwards to the S3 server`);
    return;
  }
  if (loaded(got)) {
    if (ctx.verifiesSignatures === false) {
      ctx.add(name, 'info', `a URL signed for ${pub.host} loads through ${through} (200), but this server checks no signatures, so a Host mismatch cannot show here`);
      return;
    }
    let detail = `a URL signed for ${pub.host} loads through ${through} (200)`;
    if (swapped) {
      const seed = await request(await seedUrl(), {}, t);
      if (seed.ok && seed.answer.status === 403) {
        detail += `; the seed's rewrite (sign for ${internal.host}, then swap in ${pub.host}) is refused here (403 ${xmlErrorCode(seed.answer.body) ?? ''}), as SigV4 demands: keep signing for publicEndpoint, never rewrite a signed URL`.replace(' )', ')');
      }
    }
    ctx.add(name, 'pass', detail);
    return;
  }
  const { status, body } = got.answer;
  const code = xmlErrorCode(body);
  if (status === 403 && (code === 'SignatureDoesNotMatch' || code === 'AccessDenied')) {
    const control = await request(await signer(media.endpoint).sign(key, { expiresIn: 300 }), {}, t);
    if (!loaded(control)) {
      ctx.add(
        name,
        'fail',
        `signed URLs are refused even on the endpoint itself (${describeOutcome(control)})`,
        `check the keys (${ctx.names.accessKey}, ${ctx.names.secretKey}) and this machine's clock; the key's policy must allow s3:GetObject`,
      );
      return;
    }
    const answered = `403 ${code}${code === 'AccessDenied' ? ', which is how Ceph RGW reports a signature mismatch' : ''}`;
    const seen = hostSeenByServer(body);
    const seed = swapped ? await request(await seedUrl(), {}, t) : undefined;
    if (seed && loaded(seed)) {
      ctx.add(
        name,
        'fail',
        `a URL signed for ${pub.host} is refused through ${through} (${answered}), while the same URL signed for ${internal.host} loads there: whatever forwards ${pub.host} to the server rewrites the Host header to ${internal.host}. The host is part of a SigV4 signature, so a URL signed for one host and fetched through another fails with SignatureDoesNotMatch: the seed's trap`,
        `make the proxy pass the browser's Host header on unchanged (nginx: proxy_set_header Host $http_host; Apache: ProxyPreserveHost On; Traefik: passHostHeader true), or point ${ctx.names.publicEndpoint} at an address that forwards without rewriting it; never rewrite a signed URL's host after signing`,
      );
      return;
    }
    ctx.add(
      name,
      'fail',
      `a URL signed for ${pub.host} is refused through ${through} (${answered}), though signing works on the endpoint itself: a Host mismatch. Something between the browser and the server changes the Host header${seen ? ` (the server signed over "${seen}")` : ''} or the path, and the host and path are part of a SigV4 signature`,
      `make the proxy or CDN in front of ${ctx.names.publicEndpoint} forward the Host header and the path unchanged (nginx: proxy_set_header Host $http_host;), or set ${ctx.names.publicEndpoint} to the host the server sees`,
    );
    return;
  }
  if (status === 404 || status === 403) {
    ctx.add(name, 'fail', `a signed URL through ${through} answers ${status} ${code ?? ''}: that address leads to another S3 server or account, not bucket "${ctx.bucket}"`.replace(' :', ':'), `set ${ctx.names.publicEndpoint} to an address of the same S3 server`);
    return;
  }
  const type = got.answer.headers.get('content-type') ?? 'no content type';
  ctx.add(name, 'fail', `a signed URL through ${through} answers HTTP ${status} (${type}): that is not the S3 server`, `set ${ctx.names.publicEndpoint} to an address that forwards to the S3 server`);
}

/** IAM-style wildcard match: `*` any run of characters, `?` one. */
function glob(pattern: string, value: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(value);
}

function loaded(outcome: HttpOutcome): boolean {
  return outcome.ok && outcome.answer.status === 200 && outcome.answer.body === PROBE_BODY;
}

function describeOutcome(outcome: HttpOutcome): string {
  if (!outcome.ok) return outcome.code;
  return `HTTP ${outcome.answer.status}${xmlErrorCode(outcome.answer.body) ? ` ${xmlErrorCode(outcome.answer.body)}` : ''}`;
}

/**
 * The state one target's `doctor` checks share: their results, the gates that skip later
 * checks when an earlier one failed, the probe objects to remove, and URL bases.
 */
import { AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import type { DoctorCheck, DoctorStatus, DoctorTarget } from './doctor.types.js';
import { codeOf, statusOf } from './s3-errors.js';
import { computeBase, encodeKeyPath } from './url-signer.js';

/** What later checks need from earlier ones; a failed gate skips them with its reason. */
export type Gate = 'endpoint' | 'credentials' | 'bucket' | 'write' | 'public';

/** The body of the main probe object, so a GET can tell it from anything else. */
export const PROBE_BODY = `nestjs-s3-storage doctor probe ${randomBytes(6).toString('hex')}\n`;

/** Shared state of one target's checks: results, gates, and the probe objects to remove. */
export class CheckContext {
  private readonly closed = new Map<Gate, string>();
  private readonly written = new Set<string>();
  private readonly uploads = new Map<string, string>();
  /** Whether the server checks signatures at all: false on servers that accept any secret. */
  verifiesSignatures: boolean | undefined;
  /** The region the client signs for. */
  region = 'us-east-1';

  constructor(
    readonly target: DoctorTarget,
    readonly client: S3Client,
    readonly settings: { origin?: string; timeoutMs: number; probePrefix: string },
    private readonly emit: (check: DoctorCheck) => void,
  ) {}

  get bucket(): string {
    return this.target.options.bucket;
  }

  get names(): DoctorTarget['names'] {
    return this.target.names;
  }

  /** Per-request options: each request bounded by the check timeout. */
  get send(): { abortSignal: AbortSignal } {
    return { abortSignal: AbortSignal.timeout(this.settings.timeoutMs) };
  }

  /** The key of a probe object (`name` under the probe prefix). */
  probeKey(name: string): string {
    return `${this.settings.probePrefix}${name}`;
  }

  add(check: string, status: DoctorStatus, detail: string, fix: string | null = null): void {
    this.emit({ name: `${this.target.label}: ${check}`, status, detail, fix: status === 'fail' ? fix : null });
  }

  /** Closes `gate` and every gate after it (no endpoint: no credentials, no bucket, no writes). */
  close(gate: Gate, reason: string): void {
    const chain: Gate[] = ['endpoint', 'credentials', 'bucket', 'write'];
    const from = chain.indexOf(gate);
    for (const g of from === -1 ? [gate] : chain.slice(from)) if (!this.closed.has(g)) this.closed.set(g, reason);
  }

  isOpen(gate: Gate): boolean {
    return !this.closed.has(gate);
  }

  /** Runs `fn` unless a gate it needs is closed (then a skip with the reason). A throw is a failed check. */
  async run(check: string, needs: readonly Gate[], fn: () => Promise<void>): Promise<void> {
    const blocked = needs.find((g) => this.closed.has(g));
    if (blocked) {
      this.add(check, 'skip', `not run: ${this.closed.get(blocked)}`);
      return;
    }
    try {
      await fn();
    } catch (error) {
      this.add(check, 'fail', `the check itself failed: ${describe(error)}`, 'run doctor again; if it keeps failing, report it with this line');
    }
  }

  /** Records a probe object this run writes, before the write: a write that times out here may still land. */
  wrote(key: string): void {
    this.written.add(key);
  }

  startedUpload(key: string, uploadId: string): void {
    this.uploads.set(uploadId, key);
  }

  finishedUpload(uploadId: string): void {
    this.uploads.delete(uploadId);
  }

  /** The base of browser URLs: `publicEndpoint` when set, else `endpoint` (or AWS). */
  publicBase(): { origin: string; pathPrefix: string; host: string } {
    const o = this.target.options;
    return computeBase(o.bucket, o.publicEndpoint ?? o.endpoint, o.forcePathStyle, this.region);
  }

  /** The base of URLs on the endpoint the client talks to. */
  internalBase(): { origin: string; pathPrefix: string; host: string } {
    const o = this.target.options;
    return computeBase(o.bucket, o.endpoint, o.forcePathStyle, this.region);
  }

  objectUrl(key: string, base = this.publicBase()): string {
    return `${base.origin}${base.pathPrefix}${encodeKeyPath(key)}`;
  }

  /**
   * Removes whatever this run left under its probe prefix. The prefix is unique per run, so
   * everything listed there is ours: a PUT or CreateMultipartUpload that timed out here but
   * succeeded on the server is found and removed too, not only what was recorded.
   */
  async cleanup(): Promise<void> {
    // Nothing was attempted (no bucket, no credentials): there is nothing to look for.
    if (this.written.size === 0 && this.uploads.size === 0) return;
    const prefix = this.settings.probePrefix;
    const failures: string[] = [];
    let removed = 0;
    let aborted = 0;
    const uploads = new Map(this.uploads);
    try {
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        const out = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker, UploadIdMarker }), this.send);
        for (const u of out.Uploads ?? []) if (u.Key !== undefined && u.UploadId !== undefined) uploads.set(u.UploadId, u.Key);
        [KeyMarker, UploadIdMarker] = out.IsTruncated ? [out.NextKeyMarker, out.NextUploadIdMarker] : [undefined, undefined];
      } while (KeyMarker !== undefined);
    } catch (error) {
      // Servers without the listing still get the recorded uploads aborted.
      if (!isUnsupported(error)) failures.push(`listing multipart uploads under ${prefix} (${describe(error)})`);
    }
    for (const [uploadId, key] of uploads) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), this.send).then(
        () => aborted++,
        (e: unknown) => {
          if (statusOf(e) !== 404) failures.push(`${key} (multipart upload: ${describe(e)})`);
        },
      );
    }
    const keys = new Set(this.written);
    const list = async () => {
      const found: string[] = [];
      let ContinuationToken: string | undefined;
      do {
        const out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken }), this.send);
        for (const c of out.Contents ?? []) if (c.Key !== undefined) found.push(c.Key);
        ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (ContinuationToken !== undefined);
      return found;
    };
    try {
      for (const key of await list()) keys.add(key);
    } catch (error) {
      failures.push(`listing ${prefix} (${describe(error)})`);
    }
    for (const key of keys) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), this.send).then(
        () => removed++,
        (e: unknown) => failures.push(`${key} (${describe(e)})`),
      );
    }
    let left: string[] = [];
    if (failures.length === 0 && keys.size > 0) {
      try {
        left = await list();
      } catch (error) {
        failures.push(`listing ${prefix} (${describe(error)})`);
      }
    }
    if (keys.size === 0 && uploads.size === 0 && failures.length === 0) return;
    const where = `s3://${this.bucket}/${prefix}`;
    if (failures.length === 0 && left.length === 0) {
      const extra = aborted > 0 ? ` and aborted ${aborted} multipart upload(s)` : '';
      this.add('cleanup', 'pass', `removed the ${removed} probe object(s) under ${prefix}${extra}; nothing else was written`);
    } else {
      const what = [...failures, ...left.map((k) => `${k} (still listed after its delete)`)];
      this.add('cleanup', 'fail', `could not remove every probe object: ${what.join('; ')}`, `delete them by hand (aws s3 rm --recursive ${where}); the policy needs s3:ListBucket, s3:ListBucketMultipartUploads, s3:DeleteObject and s3:AbortMultipartUpload`);
    }
  }
}

const isUnsupported = (error: unknown) => statusOf(error) === 501 || codeOf(error) === 'NotImplemented';

/** An error in a few words: S3 code and status, or the network's code; never request details. */
export function describe(error: unknown): string {
  const status = statusOf(error);
  const code = codeOf(error);
  const parts = [code, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean);
  if (parts.length > 0) return parts.join(', ');
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' && message !== '' ? message.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1***@').slice(0, 200) : 'unknown error';
}

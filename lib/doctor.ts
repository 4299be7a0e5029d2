/**
 * `nestjs-s3-storage doctor`: checks a storage's set-up against the real server before users
 * find the problem, and says how to fix each one. The checks live in `doctor-checks.ts`;
 * this file holds the result types, the order they run in, and how results are printed.
 *
 * What it touches: a unique probe prefix under the storage's location, where it writes a few
 * small objects (and one multipart upload) and removes them all before it ends. Nothing
 * else in the bucket is written, and no bucket setting is changed.
 */
import { randomBytes } from 'node:crypto';
import { mediaChecks, staticChecks } from './doctor-checks.js';
import { CheckContext } from './doctor-context.js';
import { createS3Client } from './s3-client.factory.js';
import type { DoctorCheck, DoctorOptions, DoctorReport, DoctorStatus, DoctorTarget } from './doctor.types.js';

export type { DoctorCheck, DoctorOptions, DoctorReport, DoctorSettingNames, DoctorStatus, DoctorTarget } from './doctor.types.js';

/** Runs every check on every target, in order. Never throws: a broken check is reported as failed. */
export async function runDoctor(targets: readonly DoctorTarget[], options: DoctorOptions = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const timeoutMs = options.timeoutMs ?? 10_000;
  for (const target of targets) {
    // One attempt per request: a retry would only hide what doctor is looking for, and slow it down.
    const client = (options.client ?? ((o) => createS3Client({ ...o, maxAttempts: 1 })))(target.options);
    const probePrefix = `${target.options.location === '' ? '' : `${target.options.location}/`}.nestjs-s3-storage-doctor/${Date.now().toString(36)}-${randomBytes(4).toString('hex')}/`;
    const ctx = new CheckContext(target, client, { origin: options.origin, timeoutMs, probePrefix }, (check) => checks.push(check));
    try {
      await (target.kind === 'media' ? mediaChecks(ctx, target.options) : staticChecks(ctx, target.options));
    } finally {
      await ctx.cleanup();
      if (!options.client) client.destroy();
    }
  }
  return { checks };
}

/** 0 when nothing failed (info and skip never fail), 1 otherwise. */
export function doctorExitCode(report: DoctorReport): 0 | 1 {
  return report.checks.some((c) => c.status === 'fail') ? 1 : 0;
}

const SYMBOL: Record<DoctorStatus, string> = { pass: '✓', fail: '✗', info: 'i', skip: '-' };

/** One line: `✓ media: credentials — static keys (…WXYZ), accepted by the server`, the fix appended to a failure. */
export function formatCheck(check: DoctorCheck): string {
  const line = `${SYMBOL[check.status]} ${check.name} — ${check.detail}`;
  return check.fix ? `${line} — fix: ${check.fix}` : line;
}

/** The closing line: counts per status. */
export function formatSummary(report: DoctorReport): string {
  const count = (s: DoctorStatus) => report.checks.filter((c) => c.status === s).length;
  const failed = count('fail');
  return `doctor: ${count('pass')} passed, ${failed} failed, ${count('info')} info, ${count('skip')} skipped${failed ? '' : ' — the set-up is correct'}`;
}

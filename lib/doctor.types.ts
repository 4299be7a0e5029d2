/**
 * The result and input types of `doctor` (see doctor.ts), apart so that the checks and the
 * runner can both use them without importing each other.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { StorageEnvNames } from './storage-env.js';
import type { ResolvedMediaOptions, ResolvedStaticOptions } from './storage-options.validation.js';

/** `pass` and `fail` judge the set-up; `info` describes the server; `skip` did not apply or could not run. */
export type DoctorStatus = 'pass' | 'fail' | 'info' | 'skip';

/** One check's outcome, as `--json` prints it. */
export interface DoctorCheck {
  /** `<storage>: <check>`, e.g. `media: credentials`. */
  name: string;
  status: DoctorStatus;
  /** What was found. Never a secret. */
  detail: string;
  /** What to do about a failure; null when there is nothing to do. */
  fix: string | null;
}

/** Everything `doctor` found. */
export interface DoctorReport {
  checks: DoctorCheck[];
}

/**
 * The configuration names a fix should tell the user to change: environment variables
 * from the CLI, or option paths for a caller that passes options itself.
 */
export type DoctorSettingNames = StorageEnvNames;

interface TargetBase {
  /** Shown before each check's name: `media`, `static`, or a named storage's name. */
  label: string;
  names: DoctorSettingNames;
  /** The command that creates the bucket and applies its settings, if there is one. */
  ensureCommand?: string;
}

/** A storage to check. */
export type DoctorTarget = (TargetBase & { kind: 'media'; options: ResolvedMediaOptions }) | (TargetBase & { kind: 'static'; options: ResolvedStaticOptions });

/** How `doctor` runs. */
export interface DoctorOptions {
  /** The web app's origin (`https://app.example.com`): CORS preflights are sent from it. @default undefined (CORS preflights skipped) */
  origin?: string;
  /** Limit for each network step, in ms. @default 10000 */
  timeoutMs?: number;
  /** Builds the S3 client for a target. @default createS3Client */
  client?: (options: ResolvedMediaOptions | ResolvedStaticOptions) => S3Client;
}

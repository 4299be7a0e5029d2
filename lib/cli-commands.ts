/**
 * The package's command line (the `bin` is cli.ts), configured from the same environment variables as
 * `storageConfig` (the seed's `AWS_*` / `MEDIA_S3_*`):
 *
 *   nestjs-s3-storage collectstatic <dir> [--dry-run] [--prune] [--verify] [--no-originals] [--allow-missing]
 *       [--static-url URL] [--keep-names GLOB]... [--bundler-manifest FILE] [--no-cache] [--js-modules]
 *   nestjs-s3-storage ensure-bucket [--media|--static]   (then merges in the bucket settings, see bucket-settings.ts)
 *   nestjs-s3-storage doctor [--media|--static|--name N] [--origin URL] [--json]   (see doctor.ts)
 *
 * It uses `StaticManifestStorage` and `ensureBucket` exactly as an app does: there is no
 * second upload or hashing path. Failures end with exit code 1 and one clear line (no stack
 * trace, never a secret); usage errors with exit code 2.
 *
 * Compiled to both CommonJS (the `bin`) and ESM, so: no top-level await, no `import.meta`.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createS3Client, describeEndpoint } from './s3-client.factory.js';
import { StaticManifestStorage, type CollectProgress, type CollectResult } from './static-manifest.storage.js';
import { namedStorageOptionsFromEnv, STORAGE_ENV, storageEnvNames, storageEnvPrefix, storageOptionsFromEnv } from './storage-env.js';
import { checkStorageName } from './storage-name.js';
import { StorageConfigurationError, StorageError, StorageOperationError } from './storage.errors.js';
import { resolveStorageOptions, type ResolvedConnectionOptions, type ResolvedStorageOptions } from './storage-options.validation.js';

const USAGE = `Usage:
  nestjs-s3-storage collectstatic <dir> [--dry-run] [--prune] [--verify] [--no-originals]
      [--allow-missing] [--static-url URL] [--keep-names GLOB]... [--bundler-manifest FILE] [--no-cache]
      [--js-modules]
      Upload the files under <dir> as Django's collectstatic does: hashed copies (cached for a
      year), the originals beside them (cached 60 s), and the staticfiles.json manifest last.
      A run with nothing changed sends one request (it reads the previous manifest).
      --dry-run          show what would be uploaded and deleted; write nothing
      --prune            delete files that neither the new nor the previous manifest references
      --verify           list the bucket instead of trusting the previous manifest, and upload
                         whatever is missing or different (repairs objects deleted by hand)
      --no-originals     upload only the hashed copies
      --allow-missing    warn about CSS/JS references to missing files instead of failing
      --static-url URL   the URL the files are served under, as Django's STATIC_URL
                         (default STATIC_URL, else /<AWS_LOCATION>/): url(/static/a.png) is rewritten
      --keep-names GLOB  names a bundler already hashed (e.g. 'assets/**'): stored as they are,
                         never overwritten with other bytes; repeatable
      --bundler-manifest FILE  keep the files a Vite manifest lists (dist/.vite/manifest.json)
      --no-cache         read and hash every file (by default md5s of unchanged files are
                         remembered in node_modules/.cache/nestjs-s3-storage/)
      --js-modules       also rewrite relative JS imports (import './b.js') to hashed names
  nestjs-s3-storage ensure-bucket [--media|--static]
      Create the bucket(s) when missing (both configured buckets by default), then merge in
      the bucket settings: MEDIA_S3_CORS_ORIGINS and MEDIA_S3_LIFECYCLE (media), AWS_S3_PUBLIC_READ
      (static: anonymous reads of AWS_LOCATION/* only). Rules others put on the bucket are kept.
  nestjs-s3-storage doctor [--media|--static|--name N] [--origin URL] [--json]
      Check the set-up against the server, one line per check with the fix when it fails:
      endpoint and publicEndpoint reachable, credentials, bucket and region, ACL headers,
      conditional writes, checksums, CORS, lifecycle rules, public-read policy, signed URLs.
      Writes only probe objects under <location>/.nestjs-s3-storage-doctor/, removed at the end.
      Exit code 0 when no check fails, 1 when one does.
      --media|--static  check one storage (default: media, and static when configured)
      --name N          check the named storage N, configured by N_S3_* (N upper-cased, - as _)
      --origin URL      the web app's origin: send real CORS preflights (GET, PUT, POST) from it
      --json            print { "checks": [{ "name", "status", "detail", "fix" }] }

Configured from the environment: AWS_STORAGE_BUCKET_NAME, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN (temporary credentials), AWS_S3_REGION, AWS_S3_ENDPOINT_URL, AWS_LOCATION, STATIC_URL
(static files); MEDIA_S3_* (media). Without keys, the AWS SDK's provider chain (profile, IAM role) is used.`;

/** Where the CLI writes; tests and embedders may pass their own. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

class UsageError extends Error {}

/**
 * Runs one command. Resolves to the process exit code: 0 on success, 1 on failure,
 * 2 on a usage error. Never rejects.
 */
export async function main(argv: readonly string[], io: CliIo = { env: process.env, stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const clients: S3Client[] = [];
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      (command === undefined ? io.stderr : io.stdout).write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    const client = (connection: ResolvedConnectionOptions) => {
      const c = createS3Client(connection);
      clients.push(c);
      return c;
    };
    if (command === 'collectstatic') {
      const { positional, flags, values } = parseArgs(
        rest,
        ['--dry-run', '--prune', '--no-cache', '--verify', '--no-originals', '--allow-missing', '--js-modules'],
        ['--static-url', '--keep-names', '--bundler-manifest'],
      );
      if (positional.length !== 1) throw new UsageError('collectstatic takes exactly one directory: collectstatic <dir>');
      for (const single of ['--static-url', '--bundler-manifest']) {
        if ((values.get(single)?.length ?? 0) > 1) throw new UsageError(`${single} may be given only once`);
      }
      const staticUrl = values.get('--static-url')?.[0];
      const options = loadOptions(staticUrl === undefined ? io.env : { ...io.env, STATIC_URL: staticUrl }, 'static', staticUrl === undefined ? undefined : '--static-url');
      const st = options.static!;
      if (flags.has('--prune')) assertPruneIsSafe(options);
      const storage = new StaticManifestStorage(client(st), st);
      const progress = io.stderr.isTTY ? new ProgressBar(io.stderr) : undefined;
      let result: CollectResult;
      try {
        result = await storage.collect(positional[0]!, {
          dryRun: flags.has('--dry-run'),
          prune: flags.has('--prune'),
          hashCache: flags.has('--no-cache') ? undefined : hashCachePath(positional[0]!),
          verify: flags.has('--verify'),
          originals: !flags.has('--no-originals'),
          allowMissing: flags.has('--allow-missing'),
          keepNames: values.get('--keep-names') ?? [],
          bundlerManifest: values.get('--bundler-manifest')?.[0],
          jsModules: flags.has('--js-modules'),
          onProgress: progress && ((p) => progress.update(p)),
        });
      } finally {
        progress?.clear();
      }
      report(result, io, st.bucket, storage.manifestObjectKey);
      return 0;
    }
    if (command === 'ensure-bucket') {
      const { positional, flags } = parseArgs(rest, ['--media', '--static']);
      if (positional.length > 0) throw new UsageError(`ensure-bucket takes no arguments (got "${positional[0]}")`);
      if (flags.size > 1) throw new UsageError('pass at most one of --media and --static');
      const which = flags.has('--media') ? 'media' : flags.has('--static') ? 'static' : 'both';
      const options = loadOptions(io.env, which === 'static' ? 'static' : 'media');
      // "check" in the environment means: never create; the command then only verifies.
      const mode = options.ensureBucket === 'check' ? 'check' : 'create';
      // Loaded on demand: it brings in @nestjs/common, which collectstatic does not need.
      const { ensureTarget, bootstrapTargets } = await import('./bucket-bootstrap.js');
      const targets = bootstrapTargets<ResolvedConnectionOptions>(options, options.media, options.static ?? null, which);
      for (const { connection: target, settings } of targets) {
        // The same check and settings, merged the same way, as the bootstrap hook applies.
        const done = await ensureTarget(client(target), target, settings, mode, options.bootstrapTimeout);
        io.stdout.write(`bucket "${target.bucket}" at ${describeEndpoint(target)}: ${done.result === 'created' ? 'created' : 'exists'}\n`);
        if (done.settings) io.stdout.write(`bucket "${target.bucket}": ${done.updated ? `updated ${done.updated}` : 'settings unchanged'}\n`);
      }
      return 0;
    }
    if (command === 'doctor') return await doctor(rest, io);
    throw new UsageError(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`nestjs-s3-storage: ${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    io.stderr.write(`nestjs-s3-storage: ${redact(describeError(error), io.env)}\n`);
    return 1;
  } finally {
    for (const c of clients) c.destroy();
  }
}

/** `doctor`: parses its flags (usage errors exit 2), then reports every check; exit 1 when one fails. */
async function doctor(args: readonly string[], io: CliIo): Promise<number> {
  const flags = new Set<string>();
  const values: { name?: string; origin?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (flag === '--name' || flag === '--origin') {
      const value = inline ?? args[++i];
      if (value === undefined || value === '' || value.startsWith('--')) throw new UsageError(`${flag} needs a value`);
      values[flag === '--name' ? 'name' : 'origin'] = value;
    } else if (flag === '--media' || flag === '--static' || flag === '--json') {
      flags.add(flag);
    } else {
      throw new UsageError(flag.startsWith('--') ? `unknown option "${flag}"` : `doctor takes no arguments (got "${arg}")`);
    }
  }
  if ([flags.has('--media'), flags.has('--static'), values.name !== undefined].filter(Boolean).length > 1) {
    throw new UsageError('pass at most one of --media, --static and --name');
  }
  if (values.origin !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(values.origin);
    } catch {
      url = undefined;
    }
    // Scheme and host in any case, a default port written out: the browser's Origin is the normalised form.
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '' || /[?#]/.test(values.origin)) {
      throw new UsageError(`--origin must be a web origin, scheme://host[:port] with no path (got "${values.origin}")`);
    }
    values.origin = url.origin;
  }
  if (values.name !== undefined) {
    try {
      checkStorageName(values.name);
    } catch (error) {
      throw new UsageError(`--name: ${(error as StorageConfigurationError).problems[0]?.replace(/^name: /, '') ?? 'invalid name'}`);
    }
  }
  const { runDoctor, doctorExitCode, formatCheck, formatSummary } = await import('./doctor.js');
  type Target = import('./doctor.js').DoctorTarget;
  const targets: Target[] = [];
  const configFailures: import('./doctor.js').DoctorCheck[] = [];
  const configFailure = (label: string, error: unknown) => {
    if (!(error instanceof StorageConfigurationError)) throw error;
    const detail = `${error.message.split('\n')[0]!.replace(/:$/, '')}: ${error.problems.join('; ')}`;
    // One problem shared by both storages is reported once.
    if (!configFailures.some((c) => c.detail === detail)) configFailures.push({ name: `${label}: configuration`, status: 'fail', detail, fix: 'correct the variables this names' });
  };
  if (values.name !== undefined) {
    const name = values.name;
    try {
      const media = resolveStorageOptions(namedStorageOptionsFromEnv(name, io.env)).media;
      targets.push({ kind: 'media', label: name, options: media, names: storageEnvNames({ name }, io.env) });
    } catch (error) {
      configFailure(name, error instanceof StorageConfigurationError ? namedEnvError(error, name) : error);
    }
  } else {
    const which = flags.has('--media') ? 'media' : flags.has('--static') ? 'static' : 'both';
    if (which !== 'static') {
      try {
        targets.push({ kind: 'media', label: 'media', options: loadOptions(io.env, 'media').media, names: storageEnvNames('media', io.env), ensureCommand: 'nestjs-s3-storage ensure-bucket --media' });
      } catch (error) {
        configFailure('media', error);
      }
    }
    const staticConfigured = storageOptionsFromEnv(io.env).static !== undefined;
    if (which === 'static' || (which === 'both' && staticConfigured)) {
      try {
        const st = loadOptions(io.env, 'static').static!;
        targets.push({ kind: 'static', label: 'static', options: st, names: storageEnvNames('static', io.env), ensureCommand: 'nestjs-s3-storage ensure-bucket --static' });
      } catch (error) {
        configFailure('static', error);
      }
    }
  }
  const report = await runDoctor(targets, { origin: values.origin });
  report.checks.unshift(...configFailures);
  if (flags.has('--json')) {
    io.stdout.write(`${redact(JSON.stringify(report, null, 2), io.env)}\n`);
  } else {
    for (const check of report.checks) io.stdout.write(`${redact(formatCheck(check), io.env)}\n`);
    io.stdout.write(`${formatSummary(report)}\n`);
  }
  return doctorExitCode(report);
}

/**
 * Where collectstatic remembers file hashes: `node_modules/.cache/` of the working
 * directory (the convention of babel, eslint and friends), one file per collected
 * directory. No `node_modules` here: no cache.
 */
function hashCachePath(dir: string): string | undefined {
  const modules = resolve('node_modules');
  if (!existsSync(modules)) return undefined;
  const id = createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 16);
  return join(modules, '.cache', 'nestjs-s3-storage', `collectstatic-${id}.json`);
}

/** `known` are flags; `valued` take a value (`--opt value` or `--opt=value`) and may repeat. */
function parseArgs(
  args: readonly string[],
  known: readonly string[],
  valued: readonly string[] = [],
): { positional: string[]; flags: Set<string>; values: Map<string, string[]> } {
  const positional: string[] = [];
  const flags = new Set<string>();
  const values = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg : arg.slice(0, eq);
      if (valued.includes(name)) {
        const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
        if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
        values.set(name, [...(values.get(name) ?? []), value]);
        continue;
      }
      if (!known.includes(arg)) throw new UsageError(`unknown option "${arg}"`);
      flags.add(arg);
    } else {
      positional.push(arg);
    }
  }
  return { positional, flags, values };
}

/** Options from the environment, validated; errors name the environment variable to fix. */
function loadOptions(env: Record<string, string | undefined>, need: 'static' | 'media', staticUrlFlag?: string): ResolvedStorageOptions {
  const raw = storageOptionsFromEnv(env);
  if (need === 'static' && !raw.static) {
    throw new StorageConfigurationError(
      ['AWS_STORAGE_BUCKET_NAME is not set: set it (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_S3_REGION or AWS_S3_ENDPOINT_URL) to configure static files'],
      'Static file storage is not configured',
    );
  }
  if (need === 'static' && !raw.media?.bucket) {
    // collectstatic needs only the static connection: do not fail on an unset media bucket.
    raw.media = { ...raw.static!, location: 'media' };
  }
  try {
    return resolveStorageOptions(raw);
  } catch (error) {
    if (!(error instanceof StorageConfigurationError)) throw error;
    const byOption = new Map(Object.entries(STORAGE_ENV).map(([name, option]) => [option.split(' ')[0]!, name]));
    const problems = error.problems.map((p) => {
      const option = p.slice(0, p.indexOf(':'));
      const variable = staticUrlFlag !== undefined && option === 'static.url' ? staticUrlFlag : byOption.get(option);
      return variable ? `${variable} (${option})${p.slice(option.length)}` : p;
    });
    throw new StorageConfigurationError(problems, 'Invalid storage configuration in the environment');
  }
}

/** A named storage's problems with the `<NAME>_S3_*` variable each option comes from, as {@link loadOptions} names `MEDIA_S3_*`. */
function namedEnvError(error: StorageConfigurationError, name: string): StorageConfigurationError {
  const prefix = `${storageEnvPrefix(name)}_S3_`;
  const byOption = new Map(
    Object.entries(STORAGE_ENV)
      .filter(([variable]) => variable.startsWith('MEDIA_S3_') || variable === 'STORAGE_ENSURE_BUCKET')
      .map(([variable, option]) => [option.split(' ')[0]!, variable.replace(/^MEDIA_S3_/, prefix)]),
  );
  const problems = error.problems.map((p) => {
    const option = p.slice(0, p.indexOf(':'));
    const variable = byOption.get(option);
    return variable ? `${variable} (${option})${p.slice(option.length)}` : p;
  });
  return new StorageConfigurationError(problems, `Invalid configuration of storage "${name}" in the environment`);
}

/** `--prune` deletes everything under the static prefix: refuse when media lives there too. */
function assertPruneIsSafe(options: ResolvedStorageOptions): void {
  const st = options.static!;
  const media = options.media;
  if (media.bucket !== st.bucket || media.endpoint !== st.endpoint) return;
  // Either inside the other, or media at the bucket root, where a user key may start with the static prefix.
  const inside = st.location === '' || media.location === '' || media.location === st.location || media.location.startsWith(`${st.location}/`);
  if (inside) {
    throw new StorageConfigurationError(
      [`media files (location "${media.location}") are stored under the static location "${st.location}" of bucket "${st.bucket}": --prune would delete them; give static files their own AWS_LOCATION`],
      'Refusing to prune',
    );
  }
}

function report(result: CollectResult, io: CliIo, bucket: string, manifestKey: string): void {
  for (const m of result.missingReferences) {
    io.stderr.write(`warning: ${m.file}:${m.line} references "${m.reference}" (${m.target}), which is not in the directory; left unchanged (--allow-missing)\n`);
  }
  for (const c of result.cycles) io.stderr.write(`warning: reference cycle ${c.join(' -> ')}; named anyway (Django's collectstatic fails on it)\n`);
  for (const w of result.warnings) io.stderr.write(`warning: ${w}\n`);
  if (result.dryRun) {
    for (const key of result.uploaded) io.stdout.write(`would upload ${key}\n`);
    for (const key of result.deleted) io.stdout.write(`would delete ${key}\n`);
    if (result.manifestWritten) io.stdout.write(`would write ${manifestKey}\n`);
  }
  const seconds = (result.durationMs / 1000).toFixed(1);
  const summary = `uploaded ${result.uploaded.length}, unchanged ${result.unchanged}, deleted ${result.deleted.length} in ${seconds} s`;
  io.stdout.write(
    result.dryRun
      ? `${summary} (dry run: nothing was written to bucket "${bucket}")\n`
      : `${summary} (${formatBytes(result.bytesUploaded)} to bucket "${bucket}", manifest ${result.manifestWritten ? 'written' : 'unchanged'}, hash ${result.manifestHash})\n`,
  );
}

function describeError(error: unknown): string {
  if (error instanceof StorageOperationError && error.s3Code === 'NoSuchBucket') {
    return `${error.message}. Create it with: nestjs-s3-storage ensure-bucket --static`;
  }
  if (error instanceof StorageError) return error.message;
  // Not ours: the message only, never the stack or the request it came from.
  const e = error as { name?: string; message?: string } | undefined;
  return `unexpected error: ${e?.name ?? 'Error'}${e?.message ? `: ${e.message}` : ''}`;
}

/** Belt and braces: no message ever shows a secret from the environment. */
function redact(message: string, env: Record<string, string | undefined>): string {
  let out = message;
  // Named storages' secrets too (`<NAME>_S3_SECRET_KEY`, `<NAME>_S3_SESSION_TOKEN`), which doctor --name reads.
  const named = Object.keys(env).filter((k) => /_S3_(SECRET_KEY|SESSION_TOKEN)$/.test(k));
  for (const name of ['AWS_SECRET_ACCESS_KEY', 'MEDIA_S3_SECRET_KEY', 'AWS_SESSION_TOKEN', 'MEDIA_S3_SESSION_TOKEN', ...named]) {
    const secret = env[name];
    if (secret && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A one-line progress bar on a terminal, redrawn at most every 50 ms. */
class ProgressBar {
  private last = 0;
  private drawn = false;

  constructor(private readonly out: NodeJS.WritableStream & { columns?: number }) {}

  update(p: CollectProgress): void {
    const now = Date.now();
    if (p.done < p.total && now - this.last < 50) return;
    this.last = now;
    const label = { hash: 'hashing  ', upload: 'uploading', delete: 'pruning  ' }[p.phase];
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 40));
    const filled = p.total === 0 ? width : Math.round((p.done / p.total) * width);
    this.out.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${p.done}/${p.total}\x1b[K`);
    this.drawn = true;
  }

  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
  }
}

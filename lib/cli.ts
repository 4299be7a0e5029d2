#!/usr/bin/env node
/**
 * The package's `bin`; the commands are cli-commands.ts, loaded only once the heap is set up.
 *
 * `collectstatic` is batch work: tens of thousands of short requests over a few tens of MiB of
 * file records. V8's defaults suit a long-running server: a young generation grown to 32 MiB,
 * and an old generation allowed to grow to several times its live size before a full
 * collection. They made a 20,000-file run peak at about 235 MiB of RSS. For this command
 * only, and before any module is loaded (the young generation grows while modules load),
 * the young generation is kept at its initial size and a full collection runs once the old
 * generation has grown by 20%: the same run peaks under 150 MiB, for about a tenth more
 * CPU time. A flag the user gives `node` wins (and a young-generation size, which `NODE_OPTIONS`
 * allows, over the growth factor).
 *
 * Compiled to both CommonJS (the `bin`) and ESM, so: no top-level await, no `import.meta`.
 */
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { setFlagsFromString } from 'node:v8';

/** The V8 flags `collectstatic` runs with (each read by V8 at every collection, so they can be set at start-up). */
export const BATCH_HEAP_FLAGS: readonly string[] = ['--semi-space-growth-factor=1', '--heap-growing-percent=20'];

/**
 * A user's flag that decides what one of {@link BATCH_HEAP_FLAGS} would: a young-generation
 * size (`--max-semi-space-size`, allowed in `NODE_OPTIONS`) is a choice about its growth too.
 */
const DECIDED_BY: Readonly<Record<string, readonly string[]>> = {
  '--semi-space-growth-factor': ['--semi-space-growth-factor', '--max-semi-space-size', '--min-semi-space-size'],
  '--heap-growing-percent': ['--heap-growing-percent'],
};

/** The flags of {@link BATCH_HEAP_FLAGS} for `command` that the user's `execArgv` and `NODE_OPTIONS` leave open. */
export function batchHeapFlags(command: string | undefined, execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  if (command !== 'collectstatic') return [];
  const given = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].map((arg) => arg.split('=')[0]!.replace(/_/g, '-')));
  return BATCH_HEAP_FLAGS.filter((flag) => !DECIDED_BY[flag.split('=')[0]!]!.some((name) => given.has(name)));
}

/**
 * True when this file is the program being run (not imported by a test or a script).
 * CommonJS (the `bin`): `require.main === module`. ESM has neither, and `import.meta`
 * cannot appear in the CommonJS build, so compare the entry script's real path instead.
 */
function isEntryPoint(): boolean {
  if (typeof require !== 'undefined' && typeof module !== 'undefined') return require.main === module;
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    const real = realpathSync(entry);
    return basename(real) === 'cli.js' && /[\\/]dist[\\/]esm[\\/]cli\.js$/.test(real);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const argv = process.argv.slice(2);
  for (const flag of batchHeapFlags(argv[0], process.execArgv, process.env.NODE_OPTIONS)) setFlagsFromString(flag);
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  void import('./cli-commands.js')
    .then(({ main }) => main(argv))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (error: unknown) => {
        // main() answers every failure itself; this is a broken install (a module that cannot load).
        process.stderr.write(`nestjs-s3-storage: cannot start: ${error instanceof Error ? error.message : String(error)}; reinstall the package\n`);
        process.exitCode = 1;
      },
    );
}

/**
 * The `bin`'s V8 settings for collectstatic (lib/cli.ts): which flags it sets, and that a
 * user's own wins. What they do to memory is measured by `npm run bench static` (peak RSS).
 */
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { batchHeapFlags, BATCH_HEAP_FLAGS } from '../../lib/cli.js';

describe('batchHeapFlags', () => {
  it('tunes collectstatic only', () => {
    expect(batchHeapFlags('collectstatic', [], undefined)).toEqual(['--semi-space-growth-factor=1', '--heap-growing-percent=20']);
    for (const command of ['doctor', 'ensure-bucket', '--help', undefined]) expect(batchHeapFlags(command, [], undefined)).toEqual([]);
  });

  it('leaves a flag the user set on the command line or in NODE_OPTIONS (either spelling)', () => {
    expect(batchHeapFlags('collectstatic', ['--heap-growing-percent=50'], undefined)).toEqual(['--semi-space-growth-factor=1']);
    expect(batchHeapFlags('collectstatic', [], '--max-old-space-size=512 --semi_space_growth_factor=2')).toEqual(['--heap-growing-percent=20']);
    expect(batchHeapFlags('collectstatic', ['--semi-space-growth-factor=2'], '--heap_growing_percent=30')).toEqual([]);
    // A young-generation size is the user's choice about its growth too (NODE_OPTIONS allows it).
    expect(batchHeapFlags('collectstatic', [], '--max-semi-space-size=64')).toEqual(['--heap-growing-percent=20']);
    expect(batchHeapFlags('collectstatic', ['--min-semi-space-size=16'], undefined)).toEqual(['--heap-growing-percent=20']);
  });

  it('names flags this Node accepts (an unknown one would make V8 print an error on every run)', () => {
    const out = spawnSync(process.execPath, [...BATCH_HEAP_FLAGS, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('ok');
  });
});

import { afterAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufferPool, md5File } from '../../lib/static-local-files.js';

const dir = mkdtempSync(join(tmpdir(), 'nss3-md5file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('md5File', () => {
  const pool = new BufferPool(4096);
  // Around the pooled buffer's size: the one-shot path below it, the streamed one from it up.
  it.each([0, 1, 4095, 4096, 4097, 3 * 4096 + 5])('hashes a %p-byte file as createHash does', async (size) => {
    const bytes = randomBytes(size);
    const path = join(dir, `f${size}`);
    writeFileSync(path, bytes);
    const want = createHash('md5').update(bytes).digest('hex');
    expect(await md5File(path, pool, size)).toBe(want);
    expect(await md5File(path, pool)).toBe(want);
  });

  it('hashes every byte of a file that grew past the buffer since it was walked', async () => {
    const bytes = randomBytes(3 * 4096 + 17);
    const path = join(dir, 'grew');
    writeFileSync(path, bytes);
    expect(await md5File(path, pool, 100)).toBe(createHash('md5').update(bytes).digest('hex'));
  });

  it('gives its buffer back on every path', async () => {
    const own = new BufferPool(4096);
    const path = join(dir, 'pooled');
    writeFileSync(path, randomBytes(10));
    const first = own.take();
    own.give(first);
    await md5File(path, own, 10);
    await md5File(path, own);
    await expect(md5File(join(dir, 'missing'), own, 10)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(own.take()).toBe(first);
  });
});

/**
 * `save()` of a `Readable` whatever its chunks are: Buffers, plain Uint8Arrays (web streams,
 * async generators) and strings (multi-byte UTF-8 split between chunks), below, at and above
 * one part and over several parts; object-mode junk is refused and nothing is stored.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ReadableStream } from 'node:stream/web';
import { InvalidBodyError, StorageError } from '../../lib/storage.errors.js';
import { storageFixture, type StorageFixture } from '../harness/nest-storage.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const PART = 5 * MIB;
const bucket = uniqueBucket('chunks');
let fx: StorageFixture;

beforeAll(async () => {
  fx = await storageFixture({ media: mediaOptions(bucket, { partSize: PART, queueSize: 2 }) });
});
afterAll(async () => {
  await fx?.moduleRef.close();
  await deleteTestBucket(bucket);
});

/** Odd chunk lengths, so boundaries fall everywhere (inside characters too). */
const CHUNK = 65_539;

function* slices<T extends string | Buffer>(whole: T, size = CHUNK): Generator<T> {
  for (let i = 0; i < whole.length; i += size) yield whole.slice(i, i + size) as T;
}

/** A string whose UTF-8 is exactly `bytes` long, full of 2-, 3- and 4-byte characters. */
function utf8Text(bytes: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 bytes, 5 UTF-16 code units (the emoji is a surrogate pair)
  return unit.repeat(Math.floor(bytes / 10)) + 'x'.repeat(bytes % 10);
}

type Kind = { label: string; make: (bytes: number) => { stream: Readable; expected: Buffer } };

const kinds: Kind[] = [
  {
    label: 'Buffer chunks',
    make: (n) => {
      const data = randomBytes(n);
      return { stream: Readable.from(slices(data)), expected: data };
    },
  },
  {
    label: 'Uint8Array chunks from an async generator',
    make: (n) => {
      const data = randomBytes(n);
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < n; i += CHUNK) yield new Uint8Array(data.subarray(i, i + CHUNK)); // a copy: not a Buffer
      }
      return { stream: Readable.from(chunks()), expected: data };
    },
  },
  {
    label: 'Readable.fromWeb(response.body)',
    make: (n) => {
      const data = randomBytes(n);
      return { stream: Readable.fromWeb(new Response(data).body as ReadableStream<Uint8Array>), expected: data };
    },
  },
  {
    label: 'Readable.fromWeb of a web stream in object mode (Uint8Array chunks as they are)',
    make: (n) => {
      const data = randomBytes(n);
      let offset = 0;
      const web = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (offset >= n) return controller.close();
          controller.enqueue(new Uint8Array(data.subarray(offset, offset + CHUNK)));
          offset += CHUNK;
        },
      });
      return { stream: Readable.fromWeb(web, { objectMode: true }), expected: data };
    },
  },
  {
    label: 'string chunks that split surrogate pairs',
    make: (n) => {
      const text = utf8Text(n);
      return { stream: Readable.from(slices(text)), expected: Buffer.from(text, 'utf8') };
    },
  },
  {
    label: 'a setEncoding("utf8") stream whose bytes split multi-byte characters',
    make: (n) => {
      const bytes = Buffer.from(utf8Text(n), 'utf8');
      const stream = Readable.from(slices(bytes), { objectMode: false });
      stream.setEncoding('utf8');
      return { stream, expected: bytes };
    },
  },
];

const sizes: [string, number][] = [
  ['below partSize (1 MiB)', MIB],
  ['exactly partSize', PART],
  ['one byte over partSize', PART + 1],
  ['over several parts (11 MiB + 3)', 11 * MIB + 3],
];

async function leftovers(prefix: string): Promise<{ objects: number; uploads: number }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: objects.KeyCount ?? 0, uploads: (uploads.Uploads ?? []).length };
  } finally {
    client.destroy();
  }
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('save() of Readable streams of any chunk type', () => {
  const cases = kinds.flatMap((kind, k) => sizes.map(([sizeLabel, bytes], s) => [kind.label, sizeLabel, bytes, kind, `k${k}/s${s}.bin`] as const));

  it.each(cases)('%s, %s: stored byte for byte', async (_kind, _size, bytes, kind, name) => {
    const { stream, expected } = kind.make(bytes);
    expect(expected.length).toBe(bytes);
    fx.requests.length = 0;
    const stored = await fx.storage.upload(name, stream);
    expect(stored).toMatchObject({ name, size: bytes });
    expect(fx.requests.includes('CreateMultipartUploadCommand')).toBe(bytes > PART);
    const hash = createHash('sha256');
    for await (const chunk of await fx.storage.open(name)) hash.update(chunk as Buffer);
    expect(hash.digest('hex')).toBe(sha256(expected));
    await fx.storage.delete(name);
  }, 60_000);

  it.each([
    ['numbers', () => Readable.from([1, 2, 3]), /the stream yielded a number/],
    ['plain objects', () => Readable.from([{ id: 1 }]), /the stream yielded an object;/],
    ['a Buffer then a Date', () => Readable.from([Buffer.from('ok'), new Date(0)]), /the stream yielded an object \(Date\)/],
    [
      'a number after more than one part (in the multipart phase)',
      () => Readable.from((function* () {
        for (let i = 0; i < 7; i++) yield randomBytes(MIB);
        yield 42;
      })()),
      /the stream yielded a number/,
    ],
  ])('an object-mode stream of %s is refused with InvalidBodyError, the stream is destroyed and nothing is stored', async (label, make, message) => {
    const stream = make();
    const prefix = `junk/${label.replace(/\W+/g, '-')}/`;
    const error = await fx.storage.save(`${prefix}x.bin`, stream).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidBodyError);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ code: 'STORAGE_INVALID_BODY' });
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toMatch(/Buffer, Uint8Array or string chunks .*Nothing was stored$/);
    expect(stream.destroyed).toBe(true);
    expect(await leftovers(prefix)).toEqual({ objects: 0, uploads: 0 });
  }, 60_000);
});

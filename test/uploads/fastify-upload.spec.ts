/**
 * MediaUploadInterceptor on Fastify beyond the shared e2e suite (streaming-upload.spec.ts):
 * next to an app's own @fastify/multipart, next to Nest's Fastify FileInterceptor, a body read
 * before the interceptor, an instance that started without a parser; and memory while a
 * 64 MiB file streams through, on Fastify and on Express.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import fastifyMultipart from '@fastify/multipart';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Module, Post, Req, UploadedFile, UseInterceptors, type DynamicModule, type INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { FileInterceptor } from '@nestjs/platform-fastify/multipart';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import request from 'supertest';
import { allowMultipartBodies } from '../../lib/fastify-multipart.js';
import { MediaUploadInterceptor, UploadedMedia, type UploadedMediaFile } from '../../lib/media-upload.interceptor.js';
import { MediaStorage } from '../../lib/media.storage.js';
import { StorageConfigurationError } from '../../lib/storage.errors.js';
import { StorageModule } from '../../lib/storage.module.js';
import { HTTP_PLATFORMS, createHttpApp } from '../harness/http-platforms.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(200)]);
const bucket = uniqueBucket('fastify');
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface FastifyFileRequest {
  file(): Promise<{ filename: string; toBuffer(): Promise<Buffer> } | undefined>;
}

@Controller()
class UploadController {
  @Post('media')
  @UseInterceptors(MediaUploadInterceptor({ maxBytes: MIB, allowedTypes: ['image/png'], name: (c) => `media/${c.originalName}` }))
  media(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }

  @Post('big')
  @UseInterceptors(MediaUploadInterceptor({ maxBytes: 128 * MIB, name: (c) => `big/${c.originalName}` }))
  big(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }
}

/** A route that reads its body through @fastify/multipart's own API. */
@Controller()
class PluginController {
  @Post('plugin')
  async plugin(@Req() req: FastifyFileRequest): Promise<{ filename: string; size: number }> {
    const part = await req.file();
    return { filename: part?.filename ?? '', size: (await part?.toBuffer())?.length ?? -1 };
  }
}

/** A route behind Nest's own Fastify upload interceptor, which queues @fastify/multipart itself. */
@Controller()
class NestFileController {
  @Post('nest')
  @UseInterceptors(FileInterceptor('file'))
  nest(@UploadedFile() file: { originalname: string; size: number }): { filename: string; size: number } {
    return { filename: file.originalname, size: file.size };
  }
}

@Module({})
class AppModule {
  static with(...controllers: (new () => object)[]): DynamicModule {
    return { module: AppModule, imports: [StorageModule.forRoot({ media: mediaOptions(bucket, { partSize: 5 * MIB, queueSize: 1 }) })], controllers: [UploadController, ...controllers] };
  }
}

async function stored(prefix: string): Promise<{ objects: string[]; uploads: number }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).length };
  } finally {
    client.destroy();
  }
}

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
}, 180_000);
afterAll(() => deleteTestBucket(bucket));

async function fastifyApp(controllers: (new () => object)[], beforeInit?: (app: NestFastifyApplication) => Promise<unknown>): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.with(...controllers)] }).compile();
  return createHttpApp(moduleRef, 'fastify', beforeInit);
}

describe('MediaUploadInterceptor on Fastify, next to other multipart handling', () => {
  it('works alongside @fastify/multipart registered by the app, whose routes keep working', async () => {
    app = await fastifyApp([PluginController], (a) => a.register(fastifyMultipart));
    const ours = await request(app.getHttpServer()).post('/media').field('caption', 'hi').attach('file', PNG, 'with-plugin.png');
    expect(ours.status).toBe(201);
    expect(ours.body).toMatchObject({ name: 'media/with-plugin.png', size: PNG.length, contentType: 'image/png', fields: { caption: 'hi' } });
    expect(await app.get(MediaStorage).read('media/with-plugin.png')).toEqual(PNG);

    const tooLarge = await request(app.getHttpServer()).post('/media').attach('file', Buffer.concat([PNG, Buffer.alloc(MIB)]), 'plugin-large.png');
    expect({ status: tooLarge.status, message: tooLarge.body.message }).toEqual({ status: 413, message: 'the file is larger than the 1,048,576-byte limit; nothing was stored' });
    const wrongType = await request(app.getHttpServer()).post('/media').attach('file', Buffer.from('GIF89a.........'), 'plugin-type.png');
    expect(wrongType.status).toBe(415);
    expect(await stored('media/plugin-')).toEqual({ objects: [], uploads: 0 });

    // The plugin's parser is the one in place: its request API still works.
    const theirs = await request(app.getHttpServer()).post('/plugin').attach('file', PNG, 'theirs.png');
    expect(theirs.status).toBe(201);
    expect(theirs.body).toEqual({ filename: 'theirs.png', size: PNG.length });
  });

  it("starts and serves both next to Nest's own Fastify FileInterceptor", async () => {
    app = await fastifyApp([NestFileController]);
    const ours = await request(app.getHttpServer()).post('/media').attach('file', PNG, 'next-to-nest.png');
    expect(ours.status).toBe(201);
    expect(ours.body.name).toBe('media/next-to-nest.png');
    const theirs = await request(app.getHttpServer()).post('/nest').attach('file', PNG, 'nest.png');
    expect(theirs.status).toBe(201);
    expect(theirs.body).toEqual({ filename: 'nest.png', size: PNG.length });
  });

  it('answers 500 with the reason logged, not a 400 blaming the client, when a plugin read the body first (attachFieldsToBody)', async () => {
    app = await fastifyApp([], (a) => a.register(fastifyMultipart, { attachFieldsToBody: true }));
    const response = await request(app.getHttpServer()).post('/media').attach('file', PNG, 'read-first.png');
    expect({ status: response.status, message: response.body.message }).toEqual({ status: 500, message: 'the upload is misconfigured on the server' });
    expect(await stored('media/read-first')).toEqual({ objects: [], uploads: 0 });
  });

  it('refuses, with what to do, an instance that started without a multipart parser', async () => {
    const adapter = new FastifyAdapter();
    try {
      await adapter.getInstance().ready();
      let thrown: unknown;
      try {
        allowMultipartBodies(adapter);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(StorageConfigurationError);
      expect((thrown as Error).message).toBe(
        'MediaUploadInterceptor cannot accept uploads on Fastify:\n  - the Fastify instance has started without a multipart/form-data parser, so it answers 415 to uploads: use the interceptor in a module loaded at start-up, or register @fastify/multipart before the app starts',
      );
    } finally {
      await adapter.close();
    }
  });
});

/** POSTs one `file` field of `size` bytes, generated as it is sent (the client holds 1 MiB). */
function streamUpload(port: number, path: string, size: number, filename: string): Promise<{ status: number; body: string }> {
  const boundary = `----nss3fastify${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const block = randomBytes(MIB);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': head.length + size + tail.length } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.write(head);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const chunk = block.subarray(0, Math.min(MIB, size - sent));
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end(tail);
    };
    pump();
  });
}

describe.each(HTTP_PLATFORMS)('MediaUploadInterceptor on %s, memory', (platform) => {
  it('streams a 64 MiB file without holding it: RSS, heap and buffers grow by far less than its size', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.with()] }).compile();
    app = platform === 'fastify' ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter()) : moduleRef.createNestApplication();
    await app.listen(0, '127.0.0.1');
    const port = (app.getHttpServer().address() as AddressInfo).port;

    // Warm up (module loading, the SDK's first multipart upload), then measure from there.
    expect((await streamUpload(port, '/big', 12 * MIB, `warm-up-${platform}.bin`)).status).toBe(201);
    // Collected before each sample, so the figures are what is live, not garbage the next GC
    // would free (V8 lets tens of MiB of dead buffers pile up first).
    gc();
    const before = process.memoryUsage();
    const peak = { rss: before.rss, heapUsed: before.heapUsed, arrayBuffers: before.arrayBuffers };
    // A sample every 250 ms, or four times as long as the last full GC took: in a jest worker
    // whose heap holds every suite it ran, a full GC can take a few hundred ms on a loaded
    // machine, and one every 250 ms then left the upload almost no CPU (510 s in one CI run).
    let sampler: NodeJS.Timeout | undefined;
    let sampling = true;
    const sample = (): void => {
      const started = performance.now();
      gc();
      const took = performance.now() - started;
      const now = process.memoryUsage();
      peak.rss = Math.max(peak.rss, now.rss);
      peak.heapUsed = Math.max(peak.heapUsed, now.heapUsed);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, now.arrayBuffers);
      if (sampling) sampler = setTimeout(sample, Math.max(250, 4 * took));
    };
    sampler = setTimeout(sample, 250);
    let result: { status: number; body: string };
    try {
      result = await streamUpload(port, '/big', 64 * MIB, `large-${platform}.bin`);
    } finally {
      sampling = false;
      clearTimeout(sampler);
    }
    sample(); // and once when it is done
    expect(result.status).toBe(201);
    expect(JSON.parse(result.body)).toMatchObject({ name: `big/large-${platform}.bin`, size: 64 * MIB });
    const grown = (key: keyof typeof peak): number => Math.round(((peak[key] - before[key]) / MIB) * 10) / 10;
    console.log(`64 MiB through ${platform}: peak growth (MiB) rss ${grown('rss')}, live heap ${grown('heapUsed')}, live buffers ${grown('arrayBuffers')}`);
    // Parts of 5 MiB, one in flight and one filling: about 10 MiB of buffers. Holding the file
    // would keep 64 MiB live in heap or buffers, and add as much to RSS.
    expect(grown('heapUsed') + grown('arrayBuffers')).toBeLessThan(32);
    expect(grown('rss')).toBeLessThan(48);
    // A bound on memory, not time: with forced GCs and the other jest worker loading the same 2
    // cores and server (CI once took over 120 s here where 1.2 s is usual), time is generous.
  }, 600_000);
});

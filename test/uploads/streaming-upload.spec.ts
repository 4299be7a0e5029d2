/**
 * MediaUploadInterceptor in a real Nest HTTP app, on Express and on Fastify alike: files stream
 * to S3, limits are enforced while streaming, bad requests get a 4xx with a message, and nothing
 * is stored for them.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, Param, Post, UseGuards, UseInterceptors, type CanActivate, type DynamicModule, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { MediaUploadInterceptor, UploadedMedia, type UploadedMediaFile } from '../../lib/media-upload.interceptor.js';
import { MediaStorage } from '../../lib/media.storage.js';
import { StorageModule } from '../../lib/storage.module.js';
import { HTTP_PLATFORMS, createHttpApp } from '../harness/http-platforms.js';
import { deleteTestBucket, mediaOptions, rawClient, uniqueBucket } from '../harness/s3-test-env.js';

const MIB = 1024 * 1024;
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(200)]);

/** Puts `user` on the platform's request, as an auth guard does. */
class FakeAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    context.switchToHttp().getRequest<{ user?: { id: string } }>().user = { id: 'u-42' };
    return true;
  }
}

@Controller()
class UploadController {
  @Post('mine')
  @UseGuards(FakeAuthGuard)
  @UseInterceptors(MediaUploadInterceptor({ maxBytes: MIB, name: (c) => `mine/${(c.httpRequest as { user: { id: string } }).user.id}/${c.originalName}` }))
  mine(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }

  @Post('small/:id')
  @UseInterceptors(MediaUploadInterceptor({ field: 'file', maxBytes: MIB, allowedTypes: ['image/png', 'image/jpeg'], name: (c) => `small/${c.request.params?.id}/${c.originalName.length}.${c.extension}` }))
  small(@Param('id') _id: string, @UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }

  @Post('named')
  @UseInterceptors(MediaUploadInterceptor({ maxBytes: MIB, name: (c) => `../${c.originalName}` }))
  named(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }

  @Post('big')
  @UseInterceptors(MediaUploadInterceptor({ maxBytes: 20 * MIB, name: (c) => `big/${c.originalName}` }))
  big(@UploadedMedia() file: UploadedMediaFile): UploadedMediaFile {
    return file;
  }
}

@Module({})
class AppModule {
  static on(bucket: string): DynamicModule {
    return { module: AppModule, imports: [StorageModule.forRoot({ media: mediaOptions(bucket, { partSize: 5 * MIB }) })], controllers: [UploadController] };
  }
}

async function stored(bucket: string, prefix: string): Promise<{ objects: string[]; uploads: number }> {
  const client = rawClient();
  try {
    const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return { objects: (objects.Contents ?? []).map((o) => o.Key!), uploads: (uploads.Uploads ?? []).length };
  } finally {
    client.destroy();
  }
}

describe.each(HTTP_PLATFORMS)('MediaUploadInterceptor on %s', (platform) => {
  const bucket = uniqueBucket(`stream-${platform}`);
  let app: INestApplication;
  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.on(bucket)] }).compile();
    app = await createHttpApp(moduleRef, platform);
  });
  afterAll(async () => {
    await app?.close();
    await deleteTestBucket(bucket);
  });

  it('streams the file to S3 and hands the handler name, key, size, sniffed type and ETag', async () => {
    const response = await request(app.getHttpServer()).post('/small/7').field('caption', 'hi').attach('file', PNG, { filename: 'photo.jpg', contentType: 'text/plain' });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ name: 'small/7/9.png', key: 'small/7/9.png', size: PNG.length, contentType: 'image/png', originalName: 'photo.jpg', fields: { caption: 'hi' } });
    expect(response.body.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(await app.get(MediaStorage).read('small/7/9.png')).toEqual(PNG);
  });

  it('answers 413 one byte over the limit, and stores nothing', async () => {
    const body = Buffer.concat([PNG, Buffer.alloc(MIB + 1 - PNG.length)]);
    const response = await request(app.getHttpServer()).post('/small/8').attach('file', body, 'a.png');
    expect(response.status).toBe(413);
    expect(response.body.message).toBe('the file is larger than the 1,048,576-byte limit; nothing was stored');
    expect(response.headers.connection).toBe('close');
    expect(await stored(bucket, 'small/8/')).toEqual({ objects: [], uploads: 0 });
    const exact = await request(app.getHttpServer()).post('/small/8').attach('file', body.subarray(0, MIB), 'a.png');
    expect(exact.status).toBe(201);
    expect(exact.body.size).toBe(MIB);
  });

  it('answers 413 for a multipart-sized body over the limit, aborting the multipart upload', async () => {
    const response = await request(app.getHttpServer()).post('/big').attach('file', randomBytes(30 * MIB), 'large.bin');
    expect(response.status).toBe(413);
    expect(await stored(bucket, 'big/')).toEqual({ objects: [], uploads: 0 });
    const ok = await request(app.getHttpServer()).post('/big').attach('file', randomBytes(12 * MIB), 'ok.bin');
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ name: 'big/ok.bin', size: 12 * MIB, contentType: 'application/octet-stream' });
    expect(ok.body.etag).toMatch(/-3$/);
  }, 60_000);

  it.each([
    ['text named .png', (r: request.Test) => r.attach('file', Buffer.from('just some text, honest'), 'evil.png'), 415, "the file's content is not a recognised type; allowed: image/png, image/jpeg (decided by its bytes, not its name)"],
    ['a GIF where only PNG/JPEG are allowed', (r: request.Test) => r.attach('file', Buffer.from('GIF89a.........'), 'a.gif'), 415, "the file's content is image/gif; allowed: image/png, image/jpeg (decided by its bytes, not its name)"],
    ['an empty file', (r: request.Test) => r.attach('file', Buffer.alloc(0), 'empty.png'), 400, 'the file "empty.png" is empty'],
    ['no file field', (r: request.Test) => r.field('name', 'x'), 400, 'no file in the "file" field'],
    ['the file in another field', (r: request.Test) => r.attach('avatar', PNG, 'a.png'), 400, 'unexpected file field "avatar": send the file in the "file" field'],
    ['two files in the field', (r: request.Test) => r.attach('file', PNG, 'a.png').attach('file', PNG, 'b.png'), 400, 'send one file in the "file" field'],
    ['JSON instead of a form', (r: request.Test) => r.send({ file: 'x' }), 400, 'send multipart/form-data with the file in the "file" field'],
    ['a truncated multipart body', (r: request.Test) => r.set('Content-Type', 'multipart/form-data; boundary=XyZ').send(Buffer.concat([Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'), PNG])), 400, 'the multipart body is malformed or was cut off; send it again'],
    ['a form field over 64 KiB', (r: request.Test) => r.field('note', 'x'.repeat(70_000)).attach('file', PNG, 'a.png'), 400, 'the field "note" is longer than 65536 bytes'],
  ])('%s → %p with a message, nothing stored', async (label, build, status, message) => {
    const id = `bad-${label.replace(/\W+/g, '-')}`;
    const response = await build(request(app.getHttpServer()).post(`/small/${id}`));
    expect({ status: response.status, message: response.body.message }).toEqual({ status, message });
    expect(await stored(bucket, `small/${id}/`)).toEqual({ objects: [], uploads: 0 });
  });

  it("gives name() the platform's request, where guards put the user", async () => {
    const response = await request(app.getHttpServer()).post('/mine').attach('file', PNG, 'a.png');
    expect(response.status).toBe(201);
    expect(response.body.name).toBe('mine/u-42/a.png');
  });

  it('answers 400 when the chosen name is not a valid key, and stores nothing', async () => {
    const response = await request(app.getHttpServer()).post('/named').attach('file', PNG, 'a.png');
    expect(response.status).toBe(400);
    expect(response.body.message).toBe(`Invalid object name "../a.png": it escapes the storage location with '..'`);
  });

  it('keeps serving after all of that', async () => {
    const response = await request(app.getHttpServer()).post('/small/after').attach('file', PNG, 'a.png');
    expect(response.status).toBe(201);
  });
});

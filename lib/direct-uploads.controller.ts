/**
 * The routes of `DirectUploadsModule` under `<path>/s3`: Companion's S3 protocol as
 * `@uppy/aws-s3` 6.3.1 calls it with `companionEndpoint: <path>` (its
 * `lib/s3-client/CompanionS3.js`), plus `confirm` for single-request uploads, which have no
 * complete call of their own:
 *
 * | Method | Route                                   | Uppy calls it for                      |
 * |--------|-----------------------------------------|----------------------------------------|
 * | GET    | `s3/params?filename&type`               | files ≤ 100 MiB: one presigned POST    |
 * | POST   | `s3/confirm` `{ key }`                  | (the page, on `upload-success`)        |
 * | POST   | `s3/multipart` `{ filename, type }`     | create                                 |
 * | GET    | `s3/multipart`                          | (the page) the caller's open uploads   |
 * | GET    | `s3/multipart/:uploadId/:partNumber?key`| sign one part (`batch?partNumbers=`)   |
 * | GET    | `s3/multipart/:uploadId?key`            | list parts (resume)                    |
 * | POST   | `s3/multipart/:uploadId/complete?key`   | complete                               |
 * | DELETE | `s3/multipart/:uploadId?key`            | abort                                  |
 *
 * One class per registered path (Nest reads a controller's path from its class), so the
 * class is made here; Express and Fastify both serve it (only `@Req()`/`@Body()`/`@Param()`).
 */
import { Body, Controller, Delete, Get, Header, HttpCode, Param, Post, Req, Res, type Type } from '@nestjs/common';
import { withRetryAfter } from './direct-uploads.http-errors.js';
import type { DirectUploadRequest } from './direct-uploads-module-options.interface.js';
import { type CreateMultipartBody, DirectUploadsService } from './direct-uploads.service.js';

/** Express's and Fastify's responses both set a header with `header(name, value)`. */
interface HeaderSetter {
  header?: (name: string, value: string) => unknown;
}

/** A controller class serving the direct-upload routes under `<path>/s3`. */
export function createDirectUploadsController(path: string): Type<unknown> {
  @Controller(`${path}/s3`)
  class DirectUploadsController {
    constructor(readonly uploads: DirectUploadsService) {}

    @Get('params')
    @Header('Cache-Control', 'no-store')
    params(@Req() request: DirectUploadRequest) {
      return this.uploads.params(request);
    }

    @Post('confirm')
    @HttpCode(200)
    confirm(@Req() request: DirectUploadRequest, @Body() body: { key?: unknown; type?: unknown } | undefined, @Res({ passthrough: true }) response: HeaderSetter) {
      return withRetryAfter(response, this.uploads.confirm(request, body));
    }

    @Post('multipart')
    @HttpCode(200)
    create(@Req() request: DirectUploadRequest, @Body() body: CreateMultipartBody | undefined) {
      return this.uploads.createMultipart(request, body);
    }

    @Get('multipart')
    @Header('Cache-Control', 'no-store')
    listOpen(@Req() request: DirectUploadRequest) {
      return this.uploads.listOpen(request);
    }

    @Get('multipart/:uploadId/:partNumber')
    @Header('Cache-Control', 'no-store')
    signPart(@Req() request: DirectUploadRequest, @Param('uploadId') uploadId: string, @Param('partNumber') partNumber: string) {
      return this.uploads.signPart(request, uploadId, partNumber);
    }

    @Get('multipart/:uploadId')
    @Header('Cache-Control', 'no-store')
    listParts(@Req() request: DirectUploadRequest, @Param('uploadId') uploadId: string) {
      return this.uploads.listParts(request, uploadId);
    }

    @Post('multipart/:uploadId/complete')
    @HttpCode(200)
    complete(@Req() request: DirectUploadRequest, @Param('uploadId') uploadId: string, @Body() body: { parts?: unknown } | undefined, @Res({ passthrough: true }) response: HeaderSetter) {
      return withRetryAfter(response, this.uploads.complete(request, uploadId, body));
    }

    @Delete('multipart/:uploadId')
    abort(@Req() request: DirectUploadRequest, @Param('uploadId') uploadId: string) {
      return this.uploads.abort(request, uploadId);
    }
  }
  // Distinct names in Nest's logs and errors when several paths are registered.
  Object.defineProperty(DirectUploadsController, 'name', { value: `DirectUploadsController(${path})` });
  return DirectUploadsController;
}

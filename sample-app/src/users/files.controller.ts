/**
 * `POST /users/:id/files`: any file up to `FILE_MAX_BYTES` (5 GiB by default), streamed from
 * the request straight to S3 by the library's `MediaUploadInterceptor`: the app holds at
 * most a few parts in memory, whatever the file's size. Over the limit: 413, the multipart
 * upload aborted, nothing stored.
 *
 * `GET /users/:id/files/:file` (and HEAD) streams one back through the app with HTTP Range
 * support (the library's `sendMedia()`), so a `<video>` pointed at it can seek; `?download`
 * makes the browser save it instead of showing it.
 */
import { BadRequestException, Controller, Get, HttpCode, Param, Post, Query, Req, Res, UseInterceptors } from '@nestjs/common';
import { MediaStorage, MediaUploadInterceptor, sendMedia, UploadedMedia, type UploadedMediaFile } from 'nestjs-s3-storage';
import { randomUUID } from 'node:crypto';
import { avatarsConfig, type AvatarsConfig } from '../app.config.js';
import { UserIdPipe } from './user-id.pipe.js';

const userIdPipe = new UserIdPipe();

/** The multipart field the file is sent in. */
export const FILE_FIELD = 'file';

/** A stored file's name under `files/<id>/`: the upload route's `<uuid>.<extension>`. */
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(\.[A-Za-z0-9]{1,16})?$/;

@Controller('users/:id/files')
export class FilesController {
  constructor(private readonly storage: MediaStorage) {}
  @Post()
  @HttpCode(201)
  @UseInterceptors(
    MediaUploadInterceptor({
      inject: [avatarsConfig.KEY],
      useFactory: (config: AvatarsConfig) => ({
        field: FILE_FIELD,
        maxBytes: config.fileMaxBytes,
        // Pipes run after interceptors: check the id here, before anything is stored (a
        // throw from name() answers 400 and the upload never starts).
        name: ({ request, extension }) => `files/${userIdPipe.transform(request.params?.id)}/${randomUUID()}.${extension}`,
      }),
    }),
  )
  upload(@Param('id', UserIdPipe) _id: string, @UploadedMedia() file: UploadedMediaFile): Omit<UploadedMediaFile, 'fields'> {
    const { fields: _fields, ...stored } = file;
    return stored;
  }

  @Get(':file')
  async download(
    @Param('id', UserIdPipe) id: string,
    @Param('file') file: string,
    @Query('download') download: string | undefined,
    @Req() request: object,
    @Res() response: object,
  ): Promise<void> {
    if (!FILE_NAME_PATTERN.test(file)) {
      throw new BadRequestException('Invalid file name: use the "name" the upload answered with, without its "files/<id>/" folder (for example "3f2b….mp4").');
    }
    // A missing file throws ObjectNotFoundError before anything is written: the filter answers 404.
    await sendMedia(this.storage, `files/${id}/${file}`, request, response, {
      downloadAs: file,
      disposition: download === undefined ? 'inline' : 'attachment',
    });
  }
}

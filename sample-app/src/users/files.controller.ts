/**
 * `POST /users/:id/files`: any file up to `FILE_MAX_BYTES` (1 GiB by default), streamed from
 * the request straight to S3 by the library's `MediaUploadInterceptor`: the app holds at
 * most a few parts in memory, whatever the file's size. Over the limit: 413, the multipart
 * upload aborted, nothing stored.
 */
import { Controller, HttpCode, Param, Post, UseInterceptors } from '@nestjs/common';
import { MediaUploadInterceptor, UploadedMedia, type UploadedMediaFile } from 'nestjs-s3-storage';
import { randomUUID } from 'node:crypto';
import { avatarsConfig, type AvatarsConfig } from '../app.config.js';
import { UserIdPipe } from './user-id.pipe.js';

const userIdPipe = new UserIdPipe();

/** The multipart field the file is sent in. */
export const FILE_FIELD = 'file';

@Controller('users/:id/files')
export class FilesController {
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
}

/**
 * `POST /users/:id/files`: any file up to `FILE_MAX_BYTES` (5 GiB by default), streamed from
 * the request straight to S3 by the library's `MediaUploadInterceptor`: the app holds at
 * most a few parts in memory, whatever the file's size. Over the limit: 413, the multipart
 * upload aborted, nothing stored.
 *
 * The page's Uppy Dashboard uploads straight to the bucket instead, through the library's
 * `DirectUploadsModule` at `/users/:id/uploads/s3/…` (options below: `filesUploads`), into
 * the same folder: `files/<id>/<uuid>.<ext>` (one presigned POST, ≤ 100 MiB) or
 * `files/<id>/<random>/<file name>` (multipart, resumable).
 *
 * `GET /users/:id/files` lists them. `GET /users/:id/files/:file` (and
 * `/users/:id/files/:folder/:file` for multipart uploads, and HEAD) streams one back through the
 * app with HTTP Range support (the library's `sendMedia()`), so a `<video>` pointed at it can
 * seek; `?download` makes the browser save it instead of showing it.
 */
import { BadRequestException, Controller, Get, HttpCode, Param, Post, Query, Req, Res, UseInterceptors } from '@nestjs/common';
import {
  type DirectUploadRequest,
  type DirectUploadsModuleOptions,
  MediaStorage,
  MediaUploadInterceptor,
  sendMedia,
  UploadedMedia,
  type UploadedMediaFile,
} from 'nestjs-s3-storage';
import { randomUUID } from 'node:crypto';
import { avatarsConfig, type AvatarsConfig } from '../app.config.js';
import { UserIdPipe } from './user-id.pipe.js';

const userIdPipe = new UserIdPipe();

/** The multipart field the file is sent in. */
export const FILE_FIELD = 'file';

/** A stored file's name under `files/<id>/`: the upload route's `<uuid>.<extension>`. */
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(\.[A-Za-z0-9]{1,16})?$/;
/** A multipart upload's generated folder. */
/** 16 random bytes in base64url: any of its 64 characters may come first. */
const FOLDER_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** One of the user's files, as `GET /users/:id/files` lists it. */
export interface ListedFile {
  name: string;
  /** The path under `/users/:id/files/` to download it from. */
  file: string;
  size: number;
  lastModified: string;
}

/**
 * The page's direct uploads: everyone may upload (a real app checks its session in
 * `authorize`), each user into `files/<id>/`, up to `FILE_MAX_BYTES`, at most 10 at once.
 */
export function filesUploads(config: AvatarsConfig): DirectUploadsModuleOptions {
  return {
    authorize: () => true,
    // A bad id answers 400 before anything is signed.
    prefix: (request: DirectUploadRequest) => `files/${userIdPipe.transform(request.params.id)}`,
    maxBytes: config.fileMaxBytes,
    maxOpenUploads: 10,
  };
}

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

  @Get()
  async list(@Param('id', UserIdPipe) id: string): Promise<ListedFile[]> {
    const folder = `files/${id}/`;
    const files: ListedFile[] = [];
    for await (const entry of this.storage.list(folder)) {
      files.push({ name: entry.name, file: entry.name.slice(folder.length), size: entry.size, lastModified: entry.lastModified.toISOString() });
    }
    return files.sort((a, b) => b.lastModified.localeCompare(a.lastModified));
  }

  @Get(':folder/:file')
  async downloadUploaded(
    @Param('id', UserIdPipe) id: string,
    @Param('folder') folder: string,
    @Param('file') file: string,
    @Query('download') download: string | undefined,
    @Req() request: object,
    @Res() response: object,
  ): Promise<void> {
    // The file name is the client's (sanitised by the library); only the folder has a fixed shape.
    if (!FOLDER_PATTERN.test(folder) || /[/\\]/.test(file) || file === '.' || file === '..') {
      throw new BadRequestException('Invalid file path: use the "file" that GET /users/:id/files lists.');
    }
    await sendMedia(this.storage, `files/${id}/${folder}/${file}`, request, response, {
      downloadAs: file,
      disposition: download === undefined ? 'inline' : 'attachment',
    });
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

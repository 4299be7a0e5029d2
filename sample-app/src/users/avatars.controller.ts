/**
 * `/users/:id/avatar`: upload (201 `{ key, url }`), show (302 to a fresh signed URL, or
 * `?format=json`), delete (204). Upload limits and their error messages are set up in
 * `app.module.ts` (multer) and `http-errors.filter.ts`.
 *
 * Avatars are small enough to buffer in memory, which makes checking their bytes before
 * storing them simple; large files stream instead (`files.controller.ts`). The page can also
 * send an avatar straight to the bucket with a presigned POST (`direct`, `direct/confirm`).
 */
import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Post,
  Query,
  Res,
  UploadedFile,
  UseInterceptors,
} from '@nestjs/common';
import { FileInterceptor } from '@nestjs/platform-express';
import type { DirectUpload } from 'nestjs-s3-storage';
import type { HttpResponse, UploadedBytes } from '../http.types.js';
import { AvatarsService, type AvatarRef } from './avatars.service.js';
import { ACCEPTED_IMAGE_TYPES } from './image-type.js';
import { UserIdPipe } from './user-id.pipe.js';

/** The multipart field the image is sent in. */
export const AVATAR_FIELD = 'avatar';

@Controller('users/:id/avatar')
export class AvatarsController {
  constructor(private readonly avatars: AvatarsService) {}

  @Post()
  @HttpCode(201)
  @UseInterceptors(FileInterceptor(AVATAR_FIELD))
  async upload(@Param('id', UserIdPipe) id: string, @UploadedFile() file: UploadedBytes | undefined): Promise<AvatarRef> {
    if (!file) {
      throw new BadRequestException(
        `No image received: send it as multipart/form-data in the field "${AVATAR_FIELD}" (a ${ACCEPTED_IMAGE_TYPES} file).`,
      );
    }
    if (file.size === 0) throw new BadRequestException('The file is empty: choose an image file.');
    return this.avatars.replace(id, file.buffer);
  }

  /** Starts a direct upload: `{ url, fields, name, … }` for a form POST to the bucket. */
  @Post('direct')
  @HttpCode(201)
  startDirect(@Param('id', UserIdPipe) id: string, @Body() body: { contentType?: unknown } | undefined): Promise<DirectUpload> {
    return this.avatars.startDirect(id, body?.contentType);
  }

  /** Finishes a direct upload: checks the object and makes it the avatar. */
  @Post('direct/confirm')
  @HttpCode(201)
  confirmDirect(@Param('id', UserIdPipe) id: string, @Body() body: { name?: unknown } | undefined): Promise<AvatarRef> {
    return this.avatars.confirmDirect(id, body?.name);
  }

  @Get()
  async show(@Param('id', UserIdPipe) id: string, @Query('format') format: string | undefined, @Res() res: HttpResponse): Promise<void> {
    if (format !== undefined && format !== 'json') {
      throw new BadRequestException('Unknown format: use "?format=json", or no format for a redirect to the image.');
    }
    const avatar = await this.avatars.find(id);
    if (!avatar) throw new NotFoundException(`User "${id}" has no avatar yet: upload one first.`);
    // Each answer carries a freshly signed, expiring URL: caches must not keep it.
    res.setHeader('Cache-Control', 'no-store');
    if (format === 'json') {
      res.status(200).json(avatar);
    } else {
      res.redirect(302, avatar.url);
    }
  }

  @Delete()
  @HttpCode(204)
  async remove(@Param('id', UserIdPipe) id: string): Promise<void> {
    await this.avatars.remove(id);
  }
}

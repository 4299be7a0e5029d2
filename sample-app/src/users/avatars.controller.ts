/**
 * `/users/:id/avatar`: upload (201 `{ key, url }`), show (302 to the avatar's signed URL, or
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
    const found = await this.avatars.findCacheable(id);
    if (!found) throw new NotFoundException(`User "${id}" has no avatar yet: upload one first.`);
    if (format === 'json') {
      // The page asks for this to learn about a new avatar: always fresh.
      res.setHeader('Cache-Control', 'no-store');
      res.status(200).json(found.ref);
    } else {
      // A cached redirect must never lead to a URL that has stopped working.
      res.setHeader('Cache-Control', found.cacheSeconds > 0 ? `private, max-age=${found.cacheSeconds}` : 'no-store');
      res.redirect(302, found.ref.url);
    }
  }

  @Delete()
  @HttpCode(204)
  async remove(@Param('id', UserIdPipe) id: string): Promise<void> {
    await this.avatars.remove(id);
  }
}

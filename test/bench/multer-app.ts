/**
 * The baseline of the memory benchmark: how Nest apps upload today, `FileInterceptor` with
 * multer's default memory storage, then a save of the buffer. Started as its own process by
 * memory.bench.ts; prints `listening <port>`.
 */
import 'reflect-metadata';
import { Controller, Module, Param, Post, UploadedFile, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FileInterceptor } from '@nestjs/platform-express';
import { MediaStorage, StorageModule, storageConfig } from 'nestjs-s3-storage';
import type { AddressInfo } from 'node:net';

interface MulterFile {
  buffer: Buffer;
  size: number;
}

@Controller('users/:id/files')
class FilesController {
  constructor(private readonly media: MediaStorage) {}

  @Post()
  @UseInterceptors(FileInterceptor('file'))
  async upload(@Param('id') id: string, @UploadedFile() file: MulterFile): Promise<{ name: string; size: number }> {
    const name = await this.media.save(`files/${id}/multer.bin`, file.buffer, { overwrite: true });
    return { name, size: file.size };
  }
}

@Module({ imports: [StorageModule.forRootAsync(storageConfig.asProvider())], controllers: [FilesController] })
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  console.log(`listening ${(app.getHttpServer().address() as AddressInfo).port}`);
}

void main();

/**
 * The sample app's root module, wired the way an application uses the library: the seed's
 * environment variables through `@nestjs/config` and `storageConfig`, then
 * `StorageModule.forRootAsync`. The start-up hook creates the bucket when it is missing.
 */
import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ConfigModule } from '@nestjs/config';
import { MulterModule } from '@nestjs/platform-express';
import { TerminusModule } from '@nestjs/terminus';
import { DirectUploadsModule, storageConfig, StorageModule, type StorageModuleOptions } from 'nestjs-s3-storage';
import { StorageHealthIndicator } from 'nestjs-s3-storage/terminus';
import { avatarsConfig, type AvatarsConfig } from './app.config.js';
import { HealthController } from './health/health.controller.js';
import { HttpErrorsFilter } from './http-errors.filter.js';
import { AvatarsController } from './users/avatars.controller.js';
import { AvatarsService } from './users/avatars.service.js';
import { FilesController, filesUploads } from './users/files.controller.js';
import { PageController } from './web/page.controller.js';
import { StaticAssets, StaticAssetsController } from './web/static-assets.js';

export interface AppModuleOptions {
  /** Skip reading `.env` (tests set the environment themselves). @default false */
  ignoreEnvFile?: boolean;
}

@Module({})
export class AppModule {
  static forRoot(options: AppModuleOptions = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({ isGlobal: true, load: [storageConfig, avatarsConfig], ignoreEnvFile: options.ignoreEnvFile ?? false }),
        StorageModule.forRootAsync({
          inject: [storageConfig.KEY],
          useFactory: (config: StorageModuleOptions) => config,
        }),
        MulterModule.registerAsync({
          inject: [avatarsConfig.KEY],
          useFactory: (avatars: AvatarsConfig) => ({
            // No `storage`/`dest`: multer keeps the file in memory, which is what lets the
            // bytes be checked before anything is stored. Avatars are small enough for that.
            limits: { fileSize: avatars.maxBytes, files: 1, fields: 10, fieldSize: 64 * 1024, parts: 12 },
          }),
        }),
        // The page's Uppy Dashboard: `companionEndpoint: /users/<id>/uploads`.
        DirectUploadsModule.registerAsync({ path: 'users/:id/uploads', inject: [avatarsConfig.KEY], useFactory: filesUploads }),
        TerminusModule,
      ],
      controllers: [PageController, StaticAssetsController, AvatarsController, FilesController, HealthController],
      providers: [AvatarsService, StaticAssets, StorageHealthIndicator, { provide: APP_FILTER, useClass: HttpErrorsFilter }],
    };
  }
}

/**
 * `DirectUploadsModule.register({ path, authorize, prefix, maxBytes, … })`: the routes
 * `@uppy/aws-s3` calls when its `companionEndpoint` is `path` (Companion's S3 protocol), so a
 * page gets resumable multi-gigabyte uploads straight to the bucket by mounting one module.
 * The app only signs; the bytes never pass through it. Plain `fetch` clients use the same
 * routes (see the README's "Direct uploads with Uppy").
 *
 * Register it once per path; it uses the storage of a `StorageModule` imported anywhere in
 * the app (the unnamed one, or `storage: 'name'`).
 */
import { type DynamicModule, Module } from '@nestjs/common';
import { createDirectUploadsController } from './direct-uploads.controller.js';
import {
  ConfigurableDirectUploadsModule,
  DIRECT_UPLOADS_ASYNC_OPTIONS_TYPE,
  DIRECT_UPLOADS_MODULE_OPTIONS,
  DIRECT_UPLOADS_OPTIONS_TYPE,
} from './direct-uploads.module-definition.js';
import type { DirectUploadsModuleExtras } from './direct-uploads-module-options.interface.js';
import { DIRECT_UPLOADS_PATH, DIRECT_UPLOADS_STORAGE_NAME, DirectUploadsService } from './direct-uploads.service.js';
import { StorageConfigurationError } from './storage.errors.js';
import { checkStorageName } from './storage-name.js';

@Module({})
export class DirectUploadsModule extends ConfigurableDirectUploadsModule {
  static override register(options: typeof DIRECT_UPLOADS_OPTIONS_TYPE): DynamicModule {
    return withRoutes(super.register(options), options);
  }

  static override registerAsync(options: typeof DIRECT_UPLOADS_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withRoutes(super.registerAsync(options), options);
  }
}

function withRoutes(definition: DynamicModule, extras: Partial<DirectUploadsModuleExtras>): DynamicModule {
  const path = checkPath(extras.path);
  if (extras.storage !== undefined) checkStorageName(extras.storage);
  return {
    ...definition,
    controllers: [...(definition.controllers ?? []), createDirectUploadsController(path)],
    providers: [
      ...(definition.providers ?? []),
      { provide: DIRECT_UPLOADS_STORAGE_NAME, useValue: extras.storage ?? null },
      { provide: DIRECT_UPLOADS_PATH, useValue: path },
      DirectUploadsService,
    ],
  };
}

/** `path` without its outer slashes; one problem, said with its fix. */
function checkPath(path: unknown): string {
  const trimmed = typeof path === 'string' ? path.replace(/^\/+|\/+$/g, '') : '';
  if (!trimmed) {
    throw new StorageConfigurationError(
      [`path: must be the route prefix Uppy's companionEndpoint points at, e.g. "uploads" or "users/:id/uploads" (got ${JSON.stringify(path)})`],
      'DirectUploadsModule.register() options are invalid',
    );
  }
  return trimmed;
}

export { DIRECT_UPLOADS_MODULE_OPTIONS };

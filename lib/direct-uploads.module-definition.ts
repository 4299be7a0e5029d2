/**
 * `register()` / `registerAsync()` (useFactory, useClass, useExisting) from Nest's
 * ConfigurableModuleBuilder. `path` and `storage` are extras: Nest fixes a controller's routes
 * and a module's tokens when the module is defined, so they cannot come from an async factory.
 */
import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DirectUploadsModuleExtras, DirectUploadsModuleOptions } from './direct-uploads-module-options.interface.js';

export const {
  ConfigurableModuleClass: ConfigurableDirectUploadsModule,
  MODULE_OPTIONS_TOKEN: DIRECT_UPLOADS_MODULE_OPTIONS,
  OPTIONS_TYPE: DIRECT_UPLOADS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: DIRECT_UPLOADS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DirectUploadsModuleOptions>({ moduleName: 'DirectUploads' })
  .setClassMethodName('register')
  .setFactoryMethodName('createDirectUploadsOptions')
  .setExtras<DirectUploadsModuleExtras>({ path: '', storage: undefined }, (definition) => definition)
  .build();

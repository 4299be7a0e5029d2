/**
 * `forRoot()` / `forRootAsync()` (useFactory, useClass, useExisting) come from Nest's
 * ConfigurableModuleBuilder: one options token, no hand-written async plumbing.
 */
import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { StorageModuleOptions } from './storage-module-options.interface.js';

export const {
  ConfigurableModuleClass: ConfigurableStorageModule,
  MODULE_OPTIONS_TOKEN: STORAGE_MODULE_OPTIONS,
  OPTIONS_TYPE: STORAGE_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: STORAGE_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<StorageModuleOptions>({ moduleName: 'Storage' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createStorageOptions')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/**
 * `forRoot()` / `forRootAsync()` (useFactory, useClass, useExisting) come from Nest's
 * ConfigurableModuleBuilder: one options token, no hand-written async plumbing.
 *
 * `isGlobal` and `name` are extras, not options: Nest fixes a module's tokens when it is
 * defined, so a storage's name cannot come from an async factory. `StorageModule` reads
 * `name` to give the storage its tokens (`storage-tokens.ts`).
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
  .setExtras<StorageModuleExtras>({ isGlobal: false, name: undefined }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();

/** What `forRoot()` / `forRootAsync()` take besides the options. */
export interface StorageModuleExtras {
  /**
   * Make the storage's providers injectable everywhere without importing the module again.
   * @default false
   */
  isGlobal?: boolean;
  /**
   * The storage's name, for an app with several storages (`@InjectStorage('invoices')`,
   * `getStorageToken('invoices')`, env `INVOICES_S3_*`). Letters, digits, `-` and `_`.
   * Static: it cannot come from an async factory. A named storage has no static files.
   * @default undefined (the unnamed storage: `MediaStorage`, env `MEDIA_S3_*`)
   */
  name?: string;
}

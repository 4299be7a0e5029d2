/**
 * `storageConfig` for `@nestjs/config`: the environment mapping of `storage-env.ts` as a
 * `registerAs('storage', …)` factory.
 *
 * ```ts
 * StorageModule.forRootAsync(storageConfig.asProvider()),
 * StorageModule.forRootAsync({ name: 'invoices', ...storageConfigFor('invoices').asProvider() }),
 * ```
 */
import { registerAs } from '@nestjs/config';
import { namedStorageOptionsFromEnv, storageOptionsFromEnv } from './storage-env.js';
import type { StorageModuleOptions } from './storage-module-options.interface.js';
import { checkStorageName } from './storage-name.js';

/**
 * `registerAs('storage', …)` for `@nestjs/config`: `StorageModule.forRootAsync(storageConfig.asProvider())`,
 * or inject `storageConfig.KEY` (with `ConfigModule.forFeature(storageConfig)` imported).
 */
export const storageConfig = registerAs('storage', (): StorageModuleOptions => storageOptionsFromEnv());

type StorageConfigFactory = typeof storageConfig;
const named = new Map<string, StorageConfigFactory>();

/**
 * `registerAs('storage:<name>', …)`: the named storage's options from `<NAME>_S3_*`
 * ({@link namedStorageOptionsFromEnv}). The same factory (and `KEY`) for the same name.
 *
 * ```ts
 * StorageModule.forRootAsync({ name: 'invoices', ...storageConfigFor('invoices').asProvider() })
 * ```
 */
export function storageConfigFor(name: string): StorageConfigFactory {
  checkStorageName(name);
  let factory = named.get(name);
  if (!factory) {
    factory = registerAs(`storage:${name}`, (): StorageModuleOptions => namedStorageOptionsFromEnv(name));
    named.set(name, factory);
  }
  return factory;
}

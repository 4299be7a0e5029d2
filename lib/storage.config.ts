/**
 * `storageConfig` for `@nestjs/config`: the environment mapping of `storage-env.ts` as a
 * `registerAs('storage', …)` factory.
 *
 * ```ts
 * StorageModule.forRootAsync(storageConfig.asProvider()),
 * ```
 */
import { registerAs } from '@nestjs/config';
import { storageOptionsFromEnv } from './storage-env.js';
import type { StorageModuleOptions } from './storage-module-options.interface.js';

/**
 * `registerAs('storage', …)` for `@nestjs/config`: `StorageModule.forRootAsync(storageConfig.asProvider())`,
 * or inject `storageConfig.KEY` (with `ConfigModule.forFeature(storageConfig)` imported).
 */
export const storageConfig = registerAs('storage', (): StorageModuleOptions => storageOptionsFromEnv());

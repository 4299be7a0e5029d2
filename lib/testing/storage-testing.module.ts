/**
 * `StorageTestingModule.forRoot()`: an `InMemoryStorage` under the token the real storage
 * has, so the services of an app under test get it where they inject `MediaStorage` (or
 * `@InjectStorage('invoices')` for a named one) without any other change.
 */
import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { InMemoryStorage, type InMemoryMediaOptions, type InMemoryStorageOptions } from './in-memory.storage.js';
import { getStorageToken } from '../storage-tokens.js';

/** Options of {@link StorageTestingModule.forRoot}. */
export interface StorageTestingModuleOptions extends InMemoryStorageOptions {
  /**
   * The name of the storage it stands in for (`StorageModule.forRoot({ name })`).
   * @default undefined (the unnamed storage, token `MediaStorage`)
   */
  name?: string;
  /**
   * Media options of the in-memory storage (`location`, `overwrite`, `urlExpiresIn`, …).
   * @default {} (bucket `in-memory`, the module's defaults)
   */
  media?: InMemoryMediaOptions;
  /**
   * Registers the module globally, like `StorageModule.forRoot({ isGlobal: true })`.
   * @default false
   */
  isGlobal?: boolean;
}

/** Provides an {@link InMemoryStorage} in place of a real storage. */
@Module({})
export class StorageTestingModule {
  /**
   * The unnamed storage is provided under `MediaStorage` and `InMemoryStorage` (one
   * instance); a named one under its storage token only (several may be imported at once).
   */
  static forRoot(options: StorageTestingModuleOptions = {}): DynamicModule {
    const token = getStorageToken(options.name);
    const storage: Provider = { provide: token, useFactory: () => new InMemoryStorage(options.media, { clock: options.clock }) };
    const providers: Provider[] = [storage];
    if (options.name === undefined) providers.push({ provide: InMemoryStorage, useExisting: token });
    return {
      module: StorageTestingModule,
      global: options.isGlobal ?? false,
      providers,
      exports: providers.map((p) => (p as { provide: typeof token }).provide),
    };
  }
}

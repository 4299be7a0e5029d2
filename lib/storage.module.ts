/**
 * `StorageModule.forRoot(options)` / `StorageModule.forRootAsync({ useFactory, inject, … })`,
 * with an optional `name` (`forRoot({ name: 'invoices', media })`), importable once per name.
 *
 * The unnamed storage provides `MediaStorage`, `StaticManifestStorage` (`isConfigured` false
 * without `static`), the S3 clients and the resolved options under their historical tokens; a
 * named one provides its storage, client and options under the tokens of `storage-tokens.ts`.
 * Each runs its own start-up bucket check. Options are validated once, here; clients are
 * shared within an application where their settings are equal, and destroyed on shutdown.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Logger, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { StorageBootstrap } from './bucket-bootstrap.js';
import { MediaStorage } from './media.storage.js';
import { S3ClientRegistry, StorageClientsModule } from './s3-client-registry.js';
import { StaticManifestStorage, unconfiguredStaticManifestStorage } from './static-manifest.storage.js';
import { STATIC_S3_CLIENT } from './storage.constants.js';
import { StorageConfigurationError } from './storage.errors.js';
import { storageEnvPrefix } from './storage-env.js';
import { ConfigurableStorageModule, STORAGE_ASYNC_OPTIONS_TYPE, STORAGE_MODULE_OPTIONS, STORAGE_OPTIONS_TYPE } from './storage.module-definition.js';
import type { StorageModuleOptions } from './storage-module-options.interface.js';
import { resolveStorageOptions, type ResolvedMediaOptions, type ResolvedStorageOptions } from './storage-options.validation.js';
import { getMediaS3ClientToken, getStorageOptionsToken, getStorageToken } from './storage-tokens.js';
import { UrlSigner } from './url-signer.js';

/** The storage module. Import it once per storage, in the root module (or set `isGlobal: true`). */
@Module({ imports: [StorageClientsModule] })
export class StorageModule extends ConfigurableStorageModule {
  static override forRoot(options: typeof STORAGE_OPTIONS_TYPE): DynamicModule {
    return withStorageProviders(super.forRoot(options), options.name);
  }

  static override forRootAsync(options: typeof STORAGE_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withStorageProviders(super.forRootAsync(options), options.name);
  }
}

/** What one storage adds to its module: providers, and the tokens it exports. */
interface StorageDefinition {
  providers: Provider[];
  exports: NonNullable<DynamicModule['exports']>;
}

function withStorageProviders(definition: DynamicModule, name: string | undefined): DynamicModule {
  const { providers, exports } = name === undefined ? unnamedStorage() : namedStorage(name);
  return { ...definition, providers: [...(definition.providers ?? []), ...providers], exports: [...(definition.exports ?? []), ...exports] };
}

/** What every storage provides: its options, its media client, its `MediaStorage`. */
function mediaProviders(name: string | undefined, resolve: (options: StorageModuleOptions) => ResolvedStorageOptions): Provider[] {
  const optionsToken = getStorageOptionsToken(name);
  const clientToken = getMediaS3ClientToken(name);
  return [
    { provide: optionsToken, useFactory: (options: StorageModuleOptions) => resolve(refuseNameInOptions(options)), inject: [STORAGE_MODULE_OPTIONS] },
    {
      provide: clientToken,
      useFactory: (options: ResolvedStorageOptions, clients: S3ClientRegistry) => clients.clientFor(options.media),
      inject: [optionsToken, S3ClientRegistry],
    },
    {
      provide: getStorageToken(name),
      useFactory: (options: ResolvedStorageOptions, client: S3Client) => new MediaStorage(client, options.media, createMediaSigner(options.media, client)),
      inject: [optionsToken, clientToken],
    },
  ];
}

/** `name` returned by an async factory is too late to name tokens: say where it goes. */
function refuseNameInOptions(options: StorageModuleOptions): StorageModuleOptions {
  if (options !== null && typeof options === 'object' && 'name' in options) {
    throw new StorageConfigurationError([
      'name: is not an option a factory can return: Nest fixes tokens when the module is defined; pass it next to useFactory, as forRootAsync({ name: "…", useFactory })',
    ]);
  }
  return options;
}

function unnamedStorage(): StorageDefinition {
  const optionsToken = getStorageOptionsToken();
  const clientToken = getMediaS3ClientToken();
  const providers: Provider[] = [
    ...mediaProviders(undefined, resolveStorageOptions),
    {
      provide: STATIC_S3_CLIENT,
      useFactory: (options: ResolvedStorageOptions, clients: S3ClientRegistry) => (options.static ? clients.clientFor(options.static) : null),
      inject: [optionsToken, S3ClientRegistry],
    },
    {
      provide: StaticManifestStorage,
      // The manifest is read once, here, so url() is a synchronous lookup afterwards. A missing
      // manifest (a deploy before the first collectstatic) only warns.
      useFactory: async (options: ResolvedStorageOptions, client: S3Client | null) => {
        if (!options.static || !client) return unconfiguredStaticManifestStorage();
        const storage = new StaticManifestStorage(client, options.static);
        // Part of start-up, so bounded like the bucket check.
        await storage.load({ timeoutMs: options.bootstrapTimeout });
        return storage;
      },
      inject: [optionsToken, STATIC_S3_CLIENT],
    },
    {
      provide: StorageBootstrap,
      useFactory: (options: ResolvedStorageOptions, media: S3Client, st: S3Client | null) => new StorageBootstrap(options, media, st),
      inject: [optionsToken, clientToken, STATIC_S3_CLIENT],
    },
  ];
  return { providers, exports: [getStorageToken(), StaticManifestStorage, clientToken, STATIC_S3_CLIENT, optionsToken] };
}

function namedStorage(name: string): StorageDefinition {
  const optionsToken = getStorageOptionsToken(name);
  const clientToken = getMediaS3ClientToken(name);
  const heading = `Invalid nestjs-s3-storage configuration of the storage "${name}"`;
  const resolve = (options: StorageModuleOptions): ResolvedStorageOptions => {
    // Static files are app-wide: one manifest, one StaticManifestStorage.
    if (options.static !== undefined) {
      throw new StorageConfigurationError(
        ['static: a named storage cannot have static options: StaticManifestStorage is app-wide; configure static on the unnamed StorageModule.forRoot() (without name)'],
        heading,
      );
    }
    try {
      return resolveStorageOptions(options);
    } catch (error) {
      // The problems name the unnamed storage's variables; this storage reads <NAME>_S3_*.
      if (!(error instanceof StorageConfigurationError)) throw error;
      const prefix = `${storageEnvPrefix(name)}_S3_`;
      throw new StorageConfigurationError(
        error.problems.map((problem) => problem.replace(/\bMEDIA_S3_/g, prefix)),
        heading,
      );
    }
  };
  const providers: Provider[] = [
    ...mediaProviders(name, resolve),
    // A private provider of this module instance: every storage runs its own bucket check.
    {
      provide: StorageBootstrap,
      useFactory: (options: ResolvedStorageOptions, media: S3Client) => new StorageBootstrap(options, media, null),
      inject: [optionsToken, clientToken],
    },
  ];
  return { providers, exports: [getStorageToken(name), clientToken, optionsToken] };
}

/**
 * The signer for media URLs: signs for `publicEndpoint` when set, with the same
 * credentials and region the client resolves. Static keys are read as they are; a
 * provider (given, or the default chain) goes through the client's memoized one, so it is
 * called once per credential lifetime, not per URL, and its expiry clamps URL lifetimes.
 */
export function createMediaSigner(options: ResolvedMediaOptions, client: S3Client): UrlSigner {
  return new UrlSigner({
    bucket: options.bucket,
    endpoint: options.publicEndpoint ?? options.endpoint,
    forcePathStyle: options.forcePathStyle,
    region: options.region ?? (() => client.config.region()),
    credentials: typeof options.credentials === 'object' ? options.credentials : () => client.config.credentials(),
    warn: (message) => new Logger('nestjs-s3-storage').warn(message),
  });
}

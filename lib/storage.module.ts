/**
 * `StorageModule.forRoot(options)` / `StorageModule.forRootAsync({ useFactory, inject, … })`.
 *
 * Provides `MediaStorage`, `StaticManifestStorage` (`isConfigured` false without `static`), the
 * S3 clients under their tokens, and the start-up bucket check. Options are validated once, here; clients are destroyed on shutdown.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Inject, Module, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { StorageBootstrap } from './bucket-bootstrap.js';
import { MediaStorage } from './media.storage.js';
import { createS3Client } from './s3-client.factory.js';
import { StaticManifestStorage, unconfiguredStaticManifestStorage } from './static-manifest.storage.js';
import { MEDIA_S3_CLIENT, STATIC_S3_CLIENT, STORAGE_OPTIONS } from './storage.constants.js';
import { ConfigurableStorageModule, STORAGE_MODULE_OPTIONS } from './storage.module-definition.js';
import type { StorageModuleOptions } from './storage-module-options.interface.js';
import { resolveStorageOptions, type ResolvedMediaOptions, type ResolvedStorageOptions } from './storage-options.validation.js';
import { UrlSigner } from './url-signer.js';

const providers: Provider[] = [
  {
    provide: STORAGE_OPTIONS,
    useFactory: (options: StorageModuleOptions) => resolveStorageOptions(options),
    inject: [STORAGE_MODULE_OPTIONS],
  },
  {
    provide: MEDIA_S3_CLIENT,
    useFactory: (options: ResolvedStorageOptions) => createS3Client(options.media),
    inject: [STORAGE_OPTIONS],
  },
  {
    provide: STATIC_S3_CLIENT,
    useFactory: (options: ResolvedStorageOptions) => (options.static ? createS3Client(options.static) : null),
    inject: [STORAGE_OPTIONS],
  },
  {
    provide: MediaStorage,
    useFactory: (options: ResolvedStorageOptions, client: S3Client) =>
      new MediaStorage(client, options.media, createMediaSigner(options.media, client)),
    inject: [STORAGE_OPTIONS, MEDIA_S3_CLIENT],
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
    inject: [STORAGE_OPTIONS, STATIC_S3_CLIENT],
  },
  StorageBootstrap,
];

/** The storage module. Import it once, in the root module (or set `isGlobal: true`). */
@Module({
  providers,
  exports: [MediaStorage, StaticManifestStorage, MEDIA_S3_CLIENT, STATIC_S3_CLIENT, STORAGE_OPTIONS],
})
export class StorageModule extends ConfigurableStorageModule implements OnApplicationShutdown {
  constructor(
    @Inject(MEDIA_S3_CLIENT) private readonly mediaClient: S3Client,
    @Inject(STATIC_S3_CLIENT) private readonly staticClient: S3Client | null,
  ) {
    super();
  }

  /** Closes the clients' keep-alive sockets. */
  onApplicationShutdown(): void {
    this.mediaClient.destroy();
    this.staticClient?.destroy();
  }
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
  });
}

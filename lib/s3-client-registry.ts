/**
 * The S3 clients of one application. Storages (and the static storage) whose connection
 * settings are deep-equal share one client, and so one keep-alive socket pool. The registry
 * is a provider of a plain (non-dynamic) module that every `StorageModule` import imports, so
 * Nest makes one per application: closing an application destroys its own clients only,
 * never those of another application in the same process.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Injectable, Module, type OnApplicationShutdown } from '@nestjs/common';
import { createS3Client, sameClientSettings } from './s3-client.factory.js';
import type { ResolvedConnectionOptions } from './storage-options.validation.js';

/** One application's S3 clients, built on first use and destroyed when the application shuts down. */
@Injectable()
export class S3ClientRegistry implements OnApplicationShutdown {
  private readonly clients: { settings: ResolvedConnectionOptions; client: S3Client }[] = [];

  /** The client for `settings`: the one already built for deep-equal settings, or a new one. */
  clientFor(settings: ResolvedConnectionOptions): S3Client {
    const existing = this.clients.find((entry) => sameClientSettings(entry.settings, settings));
    if (existing) return existing.client;
    const client = createS3Client(settings);
    this.clients.push({ settings, client });
    return client;
  }

  /** How many distinct clients this application holds. */
  get size(): number {
    return this.clients.length;
  }

  /** Closes the clients' keep-alive sockets. */
  onApplicationShutdown(): void {
    for (const { client } of this.clients.splice(0)) client.destroy();
  }
}

/** Holds the {@link S3ClientRegistry}; imported by every `StorageModule` import, instantiated once per application. */
@Module({ providers: [S3ClientRegistry], exports: [S3ClientRegistry] })
export class StorageClientsModule {}

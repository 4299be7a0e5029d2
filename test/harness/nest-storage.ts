/** Builds a Nest testing module around StorageModule, the way an app would import it. */
import type { S3Client } from '@aws-sdk/client-s3';
import { Test, type TestingModule } from '@nestjs/testing';
import { MediaStorage } from '../../lib/media.storage.js';
import { MEDIA_S3_CLIENT } from '../../lib/storage.constants.js';
import { StorageModule } from '../../lib/storage.module.js';
import type { StorageModuleOptions } from '../../lib/storage-module-options.interface.js';

export interface StorageFixture {
  moduleRef: TestingModule;
  storage: MediaStorage;
  client: S3Client;
  /** Requests sent by the media client, by command name (reset with `requests.length = 0`). */
  requests: string[];
  /** The same requests' inputs, in the same order (reset with `inputs.length = 0`). */
  inputs: { command: string; input: Record<string, unknown> }[];
}

/** Compiles the module; `init` runs the bootstrap hook (pass false to add counters first). */
export async function storageFixture(options: StorageModuleOptions, init = true): Promise<StorageFixture> {
  const moduleRef = await Test.createTestingModule({ imports: [StorageModule.forRoot(options)] }).compile();
  const client = moduleRef.get<S3Client>(MEDIA_S3_CLIENT);
  const requests: string[] = [];
  const inputs: StorageFixture['inputs'] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      requests.push(String(context.commandName));
      inputs.push({ command: String(context.commandName), input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'nss3TestCounter' },
  );
  if (init) await moduleRef.init();
  return { moduleRef, storage: moduleRef.get(MediaStorage), client, requests, inputs };
}

import { Inject } from '@nestjs/common';
import { STATIC_S3_CLIENT } from './storage.constants.js';
import { getMediaS3ClientToken, getStorageToken } from './storage-tokens.js';

/**
 * Injects a storage: `@InjectStorage()` is `@Inject(MediaStorage)`, `@InjectStorage('invoices')`
 * the storage of `StorageModule.forRoot({ name: 'invoices', … })`.
 */
export const InjectStorage = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getStorageToken(name));

/** Injects the `S3Client` a storage uses (the unnamed one's, or `name`'s), for operations the storage does not wrap. */
export const InjectMediaS3Client = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getMediaS3ClientToken(name));

/** Injects the static-files `S3Client` (`null` when `static` is not configured). */
export const InjectStaticS3Client = (): PropertyDecorator & ParameterDecorator => Inject(STATIC_S3_CLIENT);

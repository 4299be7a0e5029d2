import { Inject } from '@nestjs/common';
import { MEDIA_S3_CLIENT, STATIC_S3_CLIENT } from './storage.constants.js';

/** Injects the `S3Client` that `MediaStorage` uses, for operations the storage does not wrap. */
export const InjectMediaS3Client = (): PropertyDecorator & ParameterDecorator => Inject(MEDIA_S3_CLIENT);

/** Injects the static-files `S3Client` (`null` when `static` is not configured). */
export const InjectStaticS3Client = (): PropertyDecorator & ParameterDecorator => Inject(STATIC_S3_CLIENT);

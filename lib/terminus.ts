/**
 * The `nestjs-s3-storage/terminus` entry: health checks for `@nestjs/terminus` 11 and 12.
 * Only this entry imports `@nestjs/terminus`, so apps without it never load it.
 */
export {
  StorageHealthIndicator,
  STORAGE_HEALTH_TIMEOUT_MS,
  type StorageHealthCheckOptions,
  type StorageHealthDetails,
  type StorageHealthReason,
} from './storage-health.indicator.js';
export { StorageHealthModule } from './storage-health.module.js';

/**
 * `imports: [StorageHealthModule]` gives a module `StorageHealthIndicator` and terminus's
 * `HealthCheckService` in one line. Listing the indicator in `providers` next to your own
 * `TerminusModule` import works the same.
 */
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { StorageHealthIndicator } from './storage-health.indicator.js';

@Module({
  imports: [TerminusModule],
  providers: [StorageHealthIndicator],
  exports: [StorageHealthIndicator, TerminusModule],
})
export class StorageHealthModule {}

/**
 * `GET /health`: 200 when the media bucket answers a (tiny) list request in time, 503
 * otherwise. Listing an empty prefix exercises the endpoint, the credentials and the
 * bucket in one cheap request, without touching any user's data.
 */
import { Controller, Get, Logger, Res } from '@nestjs/common';
import { MediaStorage, StorageError, StorageOperationError } from 'nestjs-s3-storage';
import type { HttpResponse } from '../http.types.js';

/** A load balancer's probe gives up after a few seconds; answer before it does. */
export const HEALTH_TIMEOUT_MS = 3000;
const PROBE_PREFIX = '.health/';

@Controller('health')
export class HealthController {
  private readonly logger = new Logger('Health');

  constructor(private readonly storage: MediaStorage) {}

  @Get()
  async check(@Res() res: HttpResponse): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    const started = Date.now();
    try {
      for await (const entry of this.storage.list(PROBE_PREFIX, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) })) {
        void entry;
        break; // one page answered is enough
      }
      res.status(200).json({ status: 'ok', storage: { bucket: this.storage.bucket, latencyMs: Date.now() - started } });
    } catch (error) {
      // The full message (endpoint, bucket) goes to the operator's log; anonymous callers get
      // a short reason, not the internal address of the storage.
      this.logger.warn(`Health check failed: ${error instanceof Error ? error.message : String(error)}`);
      const reason =
        error instanceof StorageOperationError ? (error.s3Code ?? error.code) : error instanceof StorageError ? error.code : 'unexpected';
      res.status(503).json({
        status: 'error',
        storage: { bucket: this.storage.bucket },
        reason,
        message: `Storage unavailable (${reason}); the server log has the details.`,
      });
    }
  }
}

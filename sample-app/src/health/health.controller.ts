/**
 * `GET /health` through `@nestjs/terminus`: 200 when the media bucket answers one HeadBucket
 * in time, 503 otherwise, in terminus's result shape (`status`, `info`, `error`, `details`).
 * The result names the bucket and a short reason; the endpoint goes to the server log only.
 */
import { Controller, Get, ServiceUnavailableException, Res } from '@nestjs/common';
import { HealthCheckService } from '@nestjs/terminus';
import { StorageHealthIndicator } from 'nestjs-s3-storage/terminus';
import type { HttpResponse } from '../http.types.js';

/** A load balancer's probe gives up after a few seconds; answer before it does. */
export const HEALTH_TIMEOUT_MS = 3000;

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly storageHealth: StorageHealthIndicator,
  ) {}

  @Get()
  async check(@Res() res: HttpResponse): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    try {
      res.status(200).json(await this.health.check([() => this.storageHealth.isHealthy('storage', { timeout: HEALTH_TIMEOUT_MS })]));
    } catch (error) {
      // terminus reports "down" by throwing a 503 carrying the same result shape; answer it
      // here rather than through the app's error filter, which would replace the body.
      if (!(error instanceof ServiceUnavailableException)) throw error;
      res.status(503).json(error.getResponse());
    }
  }
}

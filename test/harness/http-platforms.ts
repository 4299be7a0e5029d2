/** Nest HTTP apps on each platform the interceptor supports, for suites run on all of them. */
import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { TestingModule } from '@nestjs/testing';

export type HttpPlatform = 'express' | 'fastify';
export const HTTP_PLATFORMS: readonly HttpPlatform[] = ['express', 'fastify'];

/**
 * An initialised app on `platform`, ready for supertest. `beforeInit` runs on the app before
 * `init()` (e.g. to register a Fastify plugin), as an app's main.ts would.
 */
export async function createHttpApp(
  moduleRef: TestingModule,
  platform: HttpPlatform,
  beforeInit?: (app: NestFastifyApplication) => Promise<unknown>,
): Promise<INestApplication> {
  if (platform === 'express') {
    const app = moduleRef.createNestApplication();
    await app.init();
    return app;
  }
  const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter());
  await beforeInit?.(app);
  await app.init();
  // Fastify loads its plugins (and routes) on ready(); listen() would call it.
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

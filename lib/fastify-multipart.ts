/**
 * What `MediaUploadInterceptor` needs to run on `@nestjs/platform-fastify` as it does on Express:
 * the Node request and response under Fastify's wrappers, and a multipart/form-data content-type
 * parser that leaves the body unread for the interceptor to stream.
 *
 * Fastify is not a dependency of this package, so nothing here imports it: the adapter, the
 * instance, the request and the reply are recognised by their shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StorageConfigurationError } from './storage.errors.js';

const MULTIPART = 'multipart/form-data';

type Done = (error: Error | null, body?: unknown) => void;

/** The part of a Fastify instance used here. */
interface FastifyInstanceLike {
  hasContentTypeParser(contentType: string): boolean;
  addContentTypeParser(contentType: string, parser: (request: unknown, payload: unknown, done: Done) => void): unknown;
  register(plugin: FastifyPlugin): unknown;
}

type FastifyPlugin = ((instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void) => void) & Record<symbol, unknown>;

/** The part of Nest's `AbstractHttpAdapter` used here. */
export interface HttpAdapterLike {
  getType?(): string;
  getInstance?(): unknown;
}

// One plugin per Fastify instance, however many interceptors (and copies of this package) there are.
const PREPARED = Symbol.for('nestjs-s3-storage:multipart-parser');

// The body stays unread: the interceptor streams it from the Node request.
function leaveBodyUnread(_request: unknown, _payload: unknown, done: Done): void {
  done(null);
}

// Registered as a plugin rather than added at once, so that it loads after the plugins
// registered before it (the app's `@fastify/multipart`, or the one Nest's own upload
// interceptors queue): theirs then stays, and ours is only added when there is none.
const multipartParserPlugin: FastifyPlugin = Object.assign(
  (instance: FastifyInstanceLike, _options: unknown, done: (error?: Error) => void): void => {
    if (!instance.hasContentTypeParser(MULTIPART)) instance.addContentTypeParser(MULTIPART, leaveBodyUnread);
    done();
  },
  // fastify-plugin's markers: register on the root context, under a name that shows in errors.
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'nestjs-s3-storage-multipart' },
);

function isFastifyInstance(value: unknown): value is FastifyInstanceLike & Record<symbol, unknown> {
  const candidate = value as Partial<FastifyInstanceLike> | null;
  return typeof candidate?.hasContentTypeParser === 'function' && typeof candidate.addContentTypeParser === 'function' && typeof candidate.register === 'function';
}

/**
 * On a Fastify app, makes sure multipart/form-data bodies reach the handler unread (Fastify
 * answers 415 for a content type it has no parser for). Nothing happens on Express, or without
 * an HTTP adapter (a standalone application context).
 */
export function allowMultipartBodies(adapter: HttpAdapterLike | undefined): void {
  if (adapter?.getType?.() !== 'fastify') return;
  const instance = adapter.getInstance?.();
  if (!isFastifyInstance(instance) || instance[PREPARED]) return;
  try {
    instance.register(multipartParserPlugin);
    instance[PREPARED] = true;
  } catch {
    // Started already (a lazily loaded module): no parser can be added any more.
    if (instance.hasContentTypeParser(MULTIPART)) return;
    throw new StorageConfigurationError(
      ['the Fastify instance has started without a multipart/form-data parser, so it answers 415 to uploads: use the interceptor in a module loaded at start-up, or register @fastify/multipart before the app starts'],
      'MediaUploadInterceptor cannot accept uploads on Fastify',
    );
  }
}

/** The Node request: Express's request is one; Fastify's wraps it as `raw`. */
export function nodeRequest(request: object): IncomingMessage {
  const raw = (request as { raw?: unknown }).raw;
  if (typeof (request as { pipe?: unknown }).pipe !== 'function' && typeof (raw as { pipe?: unknown } | undefined)?.pipe === 'function') {
    return raw as IncomingMessage;
  }
  return request as IncomingMessage;
}

/** The Node response: Express's response is one; Fastify's reply wraps it as `raw`. */
export function nodeResponse(response: object): ServerResponse {
  const raw = (response as { raw?: unknown }).raw;
  if (typeof (response as { setHeader?: unknown }).setHeader !== 'function' && typeof (raw as { setHeader?: unknown } | undefined)?.setHeader === 'function') {
    return raw as ServerResponse;
  }
  return response as ServerResponse;
}

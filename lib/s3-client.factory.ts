/**
 * The one place S3 clients are built. Services receive a client; they never build one.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ResolvedConnectionOptions } from './storage-options.validation.js';

/**
 * Builds an S3 client for one bucket's connection options: path-style and the
 * `WHEN_REQUIRED` checksum policy by default on custom endpoints, keep-alive agents with a
 * bounded socket pool, and the configured timeouts and retry attempts.
 */
export function createS3Client(options: ResolvedConnectionOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: Math.min(options.maxSockets, 16) };
  const checksum = options.checksums === 'when-required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  const config: S3ClientConfig = {
    endpoint: options.endpoint,
    region: options.region,
    credentials: clientCredentials(options.credentials),
    forcePathStyle: options.forcePathStyle,
    maxAttempts: options.maxAttempts,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    requestHandler: {
      // An idle-socket timeout: a stalled answer (or a body stalled halfway) fails and is
      // retried. The SDK's own `requestTimeout` only logs a warning unless told otherwise.
      socketTimeout: options.requestTimeout,
      connectionTimeout: options.connectionTimeout,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    },
  };
  return new S3Client(config);
}

/**
 * What the SDK gets, so that it never writes to the caller's options: static credentials as
 * a private copy (the SDK adds its feature attribution, `$source`, to the object it is given),
 * a provider behind a wrapper (the SDK marks the function it is given as `memoized`; it
 * memoizes the wrapper and refreshes it before the credentials expire).
 */
function clientCredentials(credentials: ResolvedConnectionOptions['credentials']): S3ClientConfig['credentials'] {
  if (typeof credentials === 'function') return (identityProperties) => credentials(identityProperties);
  return credentials && { ...credentials };
}

/** An endpoint for messages: the URL without user-info, or "AWS S3 (region)" when unset. */
export function describeEndpoint(options: Pick<ResolvedConnectionOptions, 'endpoint' | 'region'>): string {
  if (!options.endpoint) return `AWS S3 (${options.region ?? 'default region'})`;
  try {
    const url = new URL(options.endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint)';
  }
}

/** What {@link createS3Client} builds a client from: everything but `bucket` and the per-operation `timeout`. */
const CLIENT_SETTINGS = ['endpoint', 'region', 'forcePathStyle', 'checksums', 'requestTimeout', 'connectionTimeout', 'maxAttempts', 'maxSockets'] as const;

/**
 * Whether {@link createS3Client} would build the same client for `a` and `b`, so one may
 * serve both: static credentials compared by value, a credential provider by identity (two
 * providers are two credential lifetimes, even when they return the same keys).
 */
export function sameClientSettings(a: ResolvedConnectionOptions, b: ResolvedConnectionOptions): boolean {
  if (CLIENT_SETTINGS.some((setting) => a[setting] !== b[setting])) return false;
  const [x, y] = [a.credentials, b.credentials];
  if (typeof x === 'function' || typeof y === 'function' || x === undefined || y === undefined) return x === y;
  return (
    x.accessKeyId === y.accessKeyId &&
    x.secretAccessKey === y.secretAccessKey &&
    x.sessionToken === y.sessionToken &&
    x.expiration?.getTime() === y.expiration?.getTime() &&
    x.credentialScope === y.credentialScope &&
    x.accountId === y.accountId
  );
}

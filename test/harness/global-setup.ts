import { probeCapabilities, startTestServer, type TestServer } from './s3-server.js';

declare global {
  // Kept for the teardown, which runs in the same process.
  var __NSS3_TEST_SERVER__: TestServer | undefined;
}

export default async function globalSetup(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const server = await startTestServer();
  globalThis.__NSS3_TEST_SERVER__ = server;
  const capabilities = await probeCapabilities(server);
  Object.assign(process.env, {
    S3_TEST_ENDPOINT: server.endpoint,
    S3_TEST_ACCESS_KEY: server.accessKeyId,
    S3_TEST_SECRET_KEY: server.secretAccessKey,
    S3_TEST_REGION: server.region,
    S3_TEST_KIND: server.kind,
    S3_TEST_CAPABILITIES: capabilities.join(','),
  });
  process.stdout.write(`\nS3 test server: ${server.kind} at ${server.endpoint} (enforces: ${capabilities.join(', ') || 'nothing'})\n`);
}

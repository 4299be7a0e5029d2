export default async function globalTeardown(): Promise<void> {
  await globalThis.__NSS3_TEST_SERVER__?.stop();
}

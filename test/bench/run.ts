/**
 * `npm run bench`: every benchmark, each figure printed next to the raw AWS SDK (or the
 * tool people use today) measured in the same run. Benchmarks that need an S3 server read
 * S3_TEST_ENDPOINT / S3_TEST_ACCESS_KEY / S3_TEST_SECRET_KEY (test/s3-server/ceph.sh writes them).
 */
import { runMemoryBench } from './memory.bench.js';
import { runMultipartBench } from './multipart.bench.js';
import { runStaticBench } from './static.bench.js';
import { runUploadBench } from './upload.bench.js';
import { runUrlBench } from './url.bench.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

async function main(): Promise<void> {
  const only = process.argv[2];
  console.log(`nestjs-s3-storage benchmarks — node ${process.version}, ${new Date().toISOString()}`);
  if (!only || only === 'url') await runUrlBench();
  if (!only || only === 'upload') await runUploadBench();
  if (!only || only === 'memory') await runMemoryBench();
  if (!only || only === 'static') await runStaticBench();
  if (!only || only === 'multipart') await runMultipartBench();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * Counts the multipart uploads open under a key prefix (ListMultipartUploads), for the
 * `maxOpenUploads` cap of `DirectUploadsModule`. Stops paging as soon as `atLeast` is reached:
 * a cap needs "at least n", not the exact total.
 */
import { ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';

export async function countOpenUploads(client: S3Client, bucket: string, keyPrefix: string, atLeast: number, signal?: AbortSignal): Promise<number> {
  let count = 0;
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: keyPrefix, KeyMarker, UploadIdMarker }), { abortSignal: signal });
    count += page.Uploads?.length ?? 0;
    if (count >= atLeast || !page.IsTruncated) return count;
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
    // A server that says "truncated" without a marker would loop forever.
    if (!KeyMarker && !UploadIdMarker) return count;
  }
}

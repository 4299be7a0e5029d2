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

/** An open multipart upload, as `GET <path>/s3/multipart` lists it. */
export interface OpenUpload {
  key: string;
  uploadId: string;
  /** When it was created (ISO 8601). */
  initiated: string;
}

/** The multipart uploads open under a key prefix, oldest first, at most `limit`. */
export async function listOpenUploads(client: S3Client, bucket: string, keyPrefix: string, limit: number, signal?: AbortSignal): Promise<OpenUpload[]> {
  const uploads: OpenUpload[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: keyPrefix, KeyMarker, UploadIdMarker }), { abortSignal: signal });
    for (const upload of page.Uploads ?? []) {
      if (upload.Key && upload.UploadId) uploads.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated?.toISOString() ?? '' });
    }
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
    if (uploads.length >= limit || !page.IsTruncated || (!KeyMarker && !UploadIdMarker)) break;
  }
  return uploads.sort((a, b) => a.initiated.localeCompare(b.initiated)).slice(0, limit);
}

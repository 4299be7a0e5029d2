/**
 * The image types avatars may have, told apart by their first bytes (the library's
 * `sniffContentType`), never by the file name or the Content-Type the browser sent: both are
 * the client's word.
 */
import { extensionFor, sniffContentType } from 'nestjs-s3-storage';

/** Content types an avatar may have. */
export const AVATAR_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

/** Human names of the accepted types, for error messages. */
export const ACCEPTED_IMAGE_TYPES = 'PNG, JPEG, WebP or GIF';

export interface ImageType {
  /** Extension the object is stored under. */
  ext: string;
  /** Content-Type stored with the object, so S3 serves it back as an image. */
  mime: string;
}

/** The type of an image from its bytes, or `undefined` when it is none of the accepted ones. */
export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  const mime = sniffContentType(bytes);
  return mime && AVATAR_TYPES.includes(mime) ? { mime, ext: extensionFor(mime)! } : undefined;
}

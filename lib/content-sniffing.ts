/**
 * Content types decided by a file's first bytes, not its name or the client's word. Covers
 * what user uploads usually are; anything unrecognised is `undefined`.
 */

/** How many leading bytes {@link sniffContentType} needs at most. */
export const SNIFF_BYTES = 32;

const ascii = (bytes: Uint8Array, at: number, text: string): boolean =>
  bytes.length >= at + text.length && [...text].every((c, i) => bytes[at + i] === c.charCodeAt(0));
const starts = (bytes: Uint8Array, sig: number[]): boolean => bytes.length >= sig.length && sig.every((b, i) => bytes[i] === b);

/** Types {@link sniffContentType} can recognise: a file claiming one must carry its signature. */
export const SNIFFABLE_TYPES: ReadonlySet<string> = new Set([
  'image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/heic', 'audio/wav', 'video/x-msvideo',
  'video/quicktime', 'audio/mp4', 'video/mp4', 'video/webm', 'application/pdf', 'application/zip', 'application/gzip',
  'audio/mpeg', 'audio/ogg', 'audio/flac',
]);

/** The content type the bytes announce, or undefined when they match no known signature. */
export function sniffContentType(head: Uint8Array): string | undefined {
  if (starts(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (starts(head, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (ascii(head, 0, 'GIF87a') || ascii(head, 0, 'GIF89a')) return 'image/gif';
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WEBP')) return 'image/webp';
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WAVE')) return 'audio/wav';
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'AVI ')) return 'video/x-msvideo';
  if (ascii(head, 4, 'ftyp')) {
    if (ascii(head, 8, 'avif') || ascii(head, 8, 'avis')) return 'image/avif';
    if (ascii(head, 8, 'heic') || ascii(head, 8, 'heix') || ascii(head, 8, 'mif1')) return 'image/heic';
    if (ascii(head, 8, 'qt  ')) return 'video/quicktime';
    if (ascii(head, 8, 'M4A ')) return 'audio/mp4';
    return 'video/mp4';
  }
  if (starts(head, [0x1a, 0x45, 0xdf, 0xa3])) return 'video/webm';
  if (ascii(head, 0, '%PDF-')) return 'application/pdf';
  if (starts(head, [0x50, 0x4b, 0x03, 0x04])) return 'application/zip';
  if (starts(head, [0x1f, 0x8b])) return 'application/gzip';
  if (ascii(head, 0, 'ID3') || starts(head, [0xff, 0xfb]) || starts(head, [0xff, 0xf3])) return 'audio/mpeg';
  if (ascii(head, 0, 'OggS')) return 'audio/ogg';
  if (ascii(head, 0, 'fLaC')) return 'audio/flac';
  return undefined;
}

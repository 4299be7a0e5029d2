/**
 * Content types guessed from file names, for uploads that do not state one. A small
 * table of what web apps store (images, video, audio, documents, web assets); anything
 * else is `application/octet-stream`, which browsers download rather than render.
 */
const TYPES: Record<string, string> = {
  avif: 'image/avif',
  bmp: 'image/bmp',
  gif: 'image/gif',
  ico: 'image/x-icon',
  jpeg: 'image/jpeg',
  jpg: 'image/jpeg',
  png: 'image/png',
  svg: 'image/svg+xml',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  webp: 'image/webp',
  heic: 'image/heic',
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  mov: 'video/quicktime',
  webm: 'video/webm',
  mkv: 'video/x-matroska',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  ogg: 'audio/ogg',
  wav: 'audio/wav',
  flac: 'audio/flac',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  json: 'application/json',
  map: 'application/json',
  xml: 'application/xml',
  txt: 'text/plain; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  wasm: 'application/wasm',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  eot: 'application/vnd.ms-fontobject',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
};

/** The content type for a file name, from its extension; `application/octet-stream` when unknown. */
export function guessContentType(name: string): string {
  const dot = name.lastIndexOf('.');
  if (dot < 0 || dot < name.lastIndexOf('/')) return 'application/octet-stream';
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? 'application/octet-stream';
}

/** The file extension (without dot) conventionally used for a content type, if known. */
export function extensionFor(contentType: string): string | undefined {
  const base = contentType.split(';')[0]!.trim().toLowerCase();
  if (base === 'image/jpeg') return 'jpg';
  return Object.keys(TYPES).find((ext) => TYPES[ext]!.split(';')[0] === base);
}

/** A MIME type without its parameters, lower-cased: `Video/WebM; codecs=vp8` → `video/webm`. */
export function baseType(type: string): string {
  return type.split(';')[0]!.trim().toLowerCase();
}

/**
 * Whether `type` is one of `allowed`: exact types, `type/*` wildcards and `*\/*`, all without
 * regard to case or parameters. The one rule create, confirm and complete all apply.
 */
export function matchesType(type: string, allowed: readonly string[]): boolean {
  const base = baseType(type);
  if (!base) return false;
  return allowed.some((entry) => {
    const a = baseType(entry);
    if (a === '*/*' || a === '*') return true;
    return a.endsWith('/*') ? base.startsWith(a.slice(0, -1)) : a === base;
  });
}

/**
 * `GET /`: one small HTML page, no framework. The script does the rest through the JSON API.
 *
 * Its JS and CSS are served by the app (the WhiteNoise role). When static storage on S3 is
 * configured (`AWS_STORAGE_BUCKET_NAME`, …) and `collectstatic sample-app/public` has run, the
 * page links them from S3 through `StaticManifestStorage` instead.
 */
import { Controller, Get, Header, Inject, Logger } from '@nestjs/common';
import { ManifestError, StaticManifestStorage, STORAGE_OPTIONS, type ResolvedStorageOptions } from 'nestjs-s3-storage';
import { avatarsConfig, formatBytes, type AvatarsConfig } from '../app.config.js';
import { FILES_BUNDLE, StaticAssets } from './static-assets.js';

@Controller()
export class PageController {
  private readonly html: string;

  constructor(
    assets: StaticAssets,
    staticStorage: StaticManifestStorage,
    @Inject(STORAGE_OPTIONS) storage: ResolvedStorageOptions,
    @Inject(avatarsConfig.KEY) avatars: AvatarsConfig,
  ) {
    const url = (name: string): string => {
      if (!storage.static) return assets.url(name);
      try {
        return staticStorage.url(name);
      } catch (error) {
        if (!(error instanceof ManifestError)) throw error;
        new Logger('PageController').warn(`${error.message}; serving ${name} from the app instead`);
        return assets.url(name);
      }
    };
    // The Uppy bundle is built into dist/ by `npm run build:sample`; without it the page says so.
    const files = assets.has(FILES_BUNDLE) ? { js: assets.url(FILES_BUNDLE), css: assets.url('files.css') } : undefined;
    if (!files) new Logger('PageController').warn(`${FILES_BUNDLE} is missing (run "npm run build:sample"): the page's Files section is disabled`);
    this.html = renderPage(url('app.css'), url('app.js'), avatars.maxBytes, avatars.fileMaxBytes, files);
  }

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  // The page names the current hashed assets, so it must be revalidated on every visit.
  @Header('Cache-Control', 'no-cache')
  page(): string {
    return this.html;
  }
}

function renderPage(cssUrl: string, jsUrl: string, maxBytes: number, fileMaxBytes: number, files: { js: string; css: string } | undefined): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Avatars · nestjs-s3-storage sample</title>
<link rel="stylesheet" href="${cssUrl}">
<script src="${jsUrl}" defer></script>
${files ? `<link rel="stylesheet" href="${files.css}">\n<script src="${files.js}" defer></script>\n` : ''}</head>
<body>
<main>
  <h1>Avatars</h1>
  <p class="hint">Uploads go to S3 through <code>nestjs-s3-storage</code>; the picture below is loaded straight from the bucket through a signed, expiring URL.</p>
  <form id="user-form">
    <label for="user-id">User id</label>
    <input id="user-id" name="userId" value="alice" required pattern="[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}" autocomplete="off">
    <button type="submit">Show</button>
  </form>
  <figure>
    <img id="avatar" alt="" hidden>
    <figcaption id="caption">No avatar loaded.</figcaption>
  </figure>
  <form id="upload-form" data-max-bytes="${maxBytes}">
    <label for="avatar-file">New avatar (PNG, JPEG, WebP or GIF, at most ${formatBytes(maxBytes)})</label>
    <input id="avatar-file" name="avatar" type="file" accept="image/png,image/jpeg,image/webp,image/gif" required>
    <label class="inline"><input id="direct" type="checkbox"> Upload straight to the storage (presigned POST; the bucket needs CORS for this page's origin)</label>
    <button type="submit">Upload</button>
    <button type="button" id="delete">Delete avatar</button>
  </form>
  <p id="status" role="status" aria-live="polite"></p>
</main>
<main id="files" data-max-bytes="${fileMaxBytes}">
  <h2>Files</h2>
  <p class="hint">Any file up to ${formatBytes(fileMaxBytes)} goes straight from this browser to the bucket with Uppy (files over 100 MiB as a resumable multipart upload through <code>DirectUploadsModule</code>); downloads come back through the app with Range support.</p>
  ${files ? '<div id="uppy-dashboard"></div>' : '<p class="error">The Uppy bundle is missing: run <code>npm run build:sample</code>.</p>'}
  <ul id="file-list"></ul>
  <p id="files-status" role="status" aria-live="polite"></p>
</main>
</body>
</html>
`;
}

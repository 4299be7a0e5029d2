/**
 * The page's JS and CSS, served by the app under content-hashed names (`app.3f2a9c1b7d4e.js`)
 * with a year-long immutable Cache-Control: the role WhiteNoise plays in the seed. A new
 * build changes the hash, so browsers fetch the new file and never a stale one.
 *
 * Names follow Django's ManifestStaticFilesStorage (12 hex of the MD5 before the extension).
 * The files are read and hashed once at start-up. Besides `sample-app/public`, they include the
 * Uppy bundle that `npm run build:sample` writes to `dist/sample-app/public` (esbuild, from the
 * npm packages; never committed, never fetched from a CDN).
 */
import { Controller, Get, Injectable, NotFoundException, Param, Res } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpResponse } from '../http.types.js';

export const IMMUTABLE = 'public, max-age=31536000, immutable';
const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

interface Asset {
  body: Buffer;
  type: string;
  hashed: boolean;
}

@Injectable()
export class StaticAssets {
  /** Original name → hashed name, what the page links to. */
  readonly manifest: Readonly<Record<string, string>>;
  private readonly files = new Map<string, Asset>();

  constructor() {
    const manifest: Record<string, string> = {};
    for (const dir of [publicDir(), bundleDir()]) this.read(dir, manifest);
    this.manifest = manifest;
  }

  private read(dir: string | undefined, manifest: Record<string, string>): void {
    if (!dir) return;
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (!type) continue;
      const body = readFileSync(join(dir, name));
      const hash = createHash('md5').update(body).digest('hex').slice(0, 12);
      const ext = extname(name);
      const hashedName = `${name.slice(0, -ext.length)}.${hash}${ext}`;
      manifest[name] = hashedName;
      this.files.set(hashedName, { body, type, hashed: true });
      // The plain name still works (for a hand-typed URL) but must be revalidated.
      this.files.set(name, { body, type, hashed: false });
    }
  }

  /** Whether `name` is there: the bundle is missing until `npm run build:sample` has run. */
  has(name: string): boolean {
    return name in this.manifest;
  }

  /** The URL path of an asset by its original name. @throws Error for a name not in the manifest */
  url(name: string): string {
    const hashed = this.manifest[name];
    if (!hashed) throw new Error(`Missing static asset manifest entry for "${name}"`);
    return `/static/${hashed}`;
  }

  get(name: string): Asset | undefined {
    return this.files.get(name);
  }
}

@Controller('static')
export class StaticAssetsController {
  constructor(private readonly assets: StaticAssets) {}

  @Get(':file')
  serve(@Param('file') file: string, @Res() res: HttpResponse): void {
    const asset = this.assets.get(file);
    if (!asset) throw new NotFoundException(`No static file named "${file}".`);
    res.setHeader('Cache-Control', asset.hashed ? IMMUTABLE : 'no-cache');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.type(asset.type).status(200).send(asset.body);
  }
}

/**
 * `sample-app/public`, found from this module's own location so it works both from the
 * compiled `dist/sample-app/src/web/` and from the sources (tests); `SAMPLE_APP_PUBLIC_DIR`
 * overrides it for a packaged layout.
 */
function publicDir(): string {
  const override = process.env.SAMPLE_APP_PUBLIC_DIR;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'sample-app', 'public');
    if (existsSync(join(candidate, 'app.js'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('sample-app/public not found above the sample app; set SAMPLE_APP_PUBLIC_DIR');
    dir = parent;
  }
}

/** Name of the Files section's bundle (Uppy), with `files.css` beside it. */
export const FILES_BUNDLE = 'files.js';

/**
 * `dist/sample-app/public`, where esbuild writes the Uppy bundle, found like `publicDir()`
 * (`SAMPLE_APP_BUNDLE_DIR` overrides it); undefined when the build has not run.
 */
function bundleDir(): string | undefined {
  const override = process.env.SAMPLE_APP_BUNDLE_DIR;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    for (const candidate of [join(dir, 'public'), join(dir, 'dist', 'sample-app', 'public')]) {
      if (existsSync(join(candidate, FILES_BUNDLE))) return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

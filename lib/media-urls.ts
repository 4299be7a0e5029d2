/**
 * The URLs of one media storage: SigV4-signed, plain, custom-domain or CloudFront-signed, and
 * CloudFront cookies, with the cache windows that keep them stable. No network call.
 */
import { CloudFrontSigner, type CloudFrontCookies, type CloudFrontPolicyOptions } from './cloudfront-signer.js';
import type { CookieOptions, UrlOptions } from './media-storage.types.js';
import { StorageError } from './storage.errors.js';
import type { ResolvedMediaOptions } from './storage-options.validation.js';
import { cacheWindowAt, checkCacheWindow, UrlCache, type MediaUrl } from './url-cache.js';
import { contentDisposition, encodeKeyPath, type UrlSigner } from './url-signer.js';

/** URL and cookie signing for one media storage (`MediaStorage.url()`, `urlInfo()`, `cookies()`). */
export class MediaUrls {
  private readonly cloudfront?: CloudFrontSigner;
  private readonly urlCache = new UrlCache<MediaUrl>();
  private readonly cookieCache = new UrlCache<CloudFrontCookies>();

  constructor(
    private readonly options: ResolvedMediaOptions,
    private readonly signer: UrlSigner,
  ) {
    const cf = options.cloudfront;
    if (cf) this.cloudfront = new CloudFrontSigner({ origin: cf.domain, keyPairId: cf.keyPairId, privateKey: cf.privateKey });
  }

  /** The URL of the object at `key` (already normalized, location included). */
  async urlInfo(key: string, options: UrlOptions): Promise<MediaUrl> {
    const { customDomain, signedUrls } = this.options;
    const expiresIn = options.expiresIn ?? this.options.urlExpiresIn;
    const window = checkCacheWindow('url', expiresIn, options.cacheWindow, this.options.urlCacheWindow);
    if (this.cloudfront) return this.cloudFrontUrl(this.cloudfront, key, expiresIn, window, options.policy);
    if (customDomain !== undefined) return { url: `${customDomain}/${encodeKeyPath(key)}` };
    if (!signedUrls) return { url: await this.signer.unsignedUrl(key) };
    const responseContentDisposition =
      options.responseContentDisposition ?? (options.downloadAs === undefined ? undefined : contentDisposition(options.downloadAs));
    const responseContentType = options.responseContentType;
    if (window === 0) {
      const url = await this.signer.sign(key, { expiresIn, responseContentDisposition, responseContentType });
      return { url, expiresAt: sigV4Expiry(url) };
    }
    const { start } = cacheWindowAt(this.signer.clock(), window);
    const credentials = await this.signer.credentials();
    const cacheKey = `${window}:${start}:${expiresIn}:${key}\n${responseContentDisposition ?? '\0'}\n${responseContentType ?? '\0'}`;
    return this.urlCache.lookup(credentials.accessKeyId, credentials.sessionToken ?? '', cacheKey, async () => {
      let signedFor = 0;
      const url = await this.signer.sign(key, {
        // Valid `expiresIn` after the window's last moment; clamping by expiring credentials still wins.
        expiresIn: expiresIn + window,
        signingDate: start,
        responseCacheControl: (seconds) => `private, max-age=${Math.max(0, (signedFor = seconds) - window)}`,
        responseContentDisposition,
        responseContentType,
      });
      return Object.freeze({ url, expiresAt: new Date(start + signedFor * 1000), maxAge: Math.max(0, signedFor - window) });
    });
  }

  /** CloudFront-signed cookies for `pathPattern` (relative to the location). */
  cookies(pathPattern: string, options: CookieOptions): CloudFrontCookies {
    const cf = this.cloudfront;
    if (!cf) throw new StorageError('cookies(): media.cloudfront is not configured; signed cookies are a CloudFront feature (set media.cloudfront or MEDIA_S3_CLOUDFRONT_*)');
    const expiresIn = options.expiresIn ?? this.options.urlExpiresIn;
    const window = checkCacheWindow('cookies', expiresIn, options.cacheWindow, this.options.urlCacheWindow);
    const resource = cf.resourceOf(pathPattern, this.options.location);
    const now = this.signer.clock();
    if (window === 0) return cf.cookies(resource, Math.floor(now / 1000) + expiresIn, options.ipAddress);
    const { start } = cacheWindowAt(now, window);
    const expiresAt = start / 1000 + window + expiresIn;
    const cacheKey = `${window}:${start}:${expiresIn}:${resource}\n${options.ipAddress ?? '\0'}`;
    return this.cookieCache.lookup('', '', cacheKey, () => Object.freeze(cf.cookies(resource, expiresAt, options.ipAddress)));
  }

  private cloudFrontUrl(cf: CloudFrontSigner, key: string, expiresIn: number, window: number, policy: CloudFrontPolicyOptions | undefined): MediaUrl {
    const url = cf.urlOf(key);
    const custom = policy && { resource: policy.resource === undefined ? undefined : cf.resourceOf(policy.resource, this.options.location), ipAddress: policy.ipAddress };
    const now = this.signer.clock();
    if (window === 0) {
      const expiresAt = Math.floor(now / 1000) + expiresIn;
      return { url: cf.sign(url, expiresAt, custom), expiresAt: new Date(expiresAt * 1000) };
    }
    const { start } = cacheWindowAt(now, window);
    const expiresAt = start / 1000 + window + expiresIn;
    const cacheKey = `${window}:${start}:${expiresIn}:${key}\n${custom?.resource ?? '\0'}\n${custom?.ipAddress ?? '\0'}`;
    return this.urlCache.lookup('cloudfront', '', cacheKey, () =>
      Object.freeze({ url: cf.sign(url, expiresAt, custom), expiresAt: new Date(expiresAt * 1000), maxAge: expiresIn }),
    );
  }
}

/** When a SigV4 query-signed URL stops working, from its own X-Amz-Date and X-Amz-Expires. */
function sigV4Expiry(url: string): Date {
  const date = /[?&]X-Amz-Date=(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(url)!;
  const expires = Number(/[?&]X-Amz-Expires=(\d+)/.exec(url)![1]);
  return new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!) + expires * 1000);
}

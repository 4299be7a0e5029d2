/**
 * Avatars kept in S3 alone: the current avatar of user `<id>` is the newest object under
 * `avatars/<id>/`. Object names start with a fixed-width time stamp, so "newest" is simply
 * the greatest name, and two racing uploads agree on which one wins.
 */
import { BadRequestException, Inject, Injectable, UnsupportedMediaTypeException } from '@nestjs/common';
import { extensionFor, MediaStorage, type DirectUpload, type MediaUrl } from 'nestjs-s3-storage';
import { randomBytes } from 'node:crypto';
import { avatarsConfig, type AvatarsConfig } from '../app.config.js';
import { ACCEPTED_IMAGE_TYPES, AVATAR_TYPES, sniffImageType } from './image-type.js';

export interface AvatarRef {
  /** The object key in the bucket. */
  key: string;
  /** A fresh signed URL the browser can load. */
  url: string;
}

/**
 * Avatar URLs are stable for an hour: every page view in that window gets the same signed URL,
 * so the browser keeps the image instead of downloading it again. Safe here because an avatar
 * never changes under its name: each upload gets a new, unique one.
 */
export const AVATAR_URL_CACHE_WINDOW = 3600;

/** At most this long a browser may reuse a redirect to the avatar, so a new one shows within a minute. */
const REDIRECT_MAX_AGE = 60;

/** The current avatar, and how long a response pointing at its URL may be cached. */
export interface CacheableAvatar {
  ref: AvatarRef;
  /** Seconds; 0 means do not cache. */
  cacheSeconds: number;
}

@Injectable()
export class AvatarsService {
  constructor(
    private readonly storage: MediaStorage,
    @Inject(avatarsConfig.KEY) private readonly config: AvatarsConfig,
  ) {}

  /** Stores a new avatar, then removes the ones it replaces. @throws UnsupportedMediaTypeException */
  async replace(userId: string, bytes: Buffer): Promise<AvatarRef> {
    const type = sniffImageType(bytes);
    if (!type) {
      throw new UnsupportedMediaTypeException(
        `The file is not a ${ACCEPTED_IMAGE_TYPES} image (judged by its contents, not its name). Choose an image file in one of those formats.`,
      );
    }
    const name = await this.storage.save(`${prefix(userId)}${uniqueStem()}.${type.ext}`, bytes, {
      contentType: type.mime,
    });
    return this.settle(userId, name);
  }

  /**
   * A presigned POST for the browser to send the avatar straight to the bucket: the S3
   * server itself enforces the size limit and the declared type.
   */
  async startDirect(userId: string, contentType: unknown): Promise<DirectUpload> {
    if (typeof contentType !== 'string' || !AVATAR_TYPES.includes(contentType)) {
      throw new UnsupportedMediaTypeException(`Choose a ${ACCEPTED_IMAGE_TYPES} image (got ${JSON.stringify(contentType ?? null)}).`);
    }
    return this.storage.createUpload({
      name: `${prefix(userId)}${uniqueStem()}.${extensionFor(contentType)}`,
      contentType,
      maxBytes: this.config.maxBytes,
    });
  }

  /**
   * After a direct upload: checks the bytes really are the image type declared (deleting the
   * object when not: UploadRejectedError, answered 415/413) and makes it the avatar.
   *
   * Only names under this user's own prefix are accepted, so one user's confirm cannot reach
   * another user's objects. The storage adds the other half: it publishes only an object that
   * a form created for exactly this name uploaded (the form's marker is bound to the key), so
   * an avatar stored some other way, or a used form posted again, cannot be confirmed into place.
   */
  async confirmDirect(userId: string, name: unknown): Promise<AvatarRef> {
    if (typeof name !== 'string' || !new RegExp(`^${prefix(userId)}[0-9a-z]{9}-[0-9a-f]{12}\\.(png|jpg|webp|gif)$`).test(name)) {
      throw new BadRequestException('Confirm the "name" that the direct-upload form was created for.');
    }
    await this.storage.confirmUpload(name, { maxBytes: this.config.maxBytes, allowedTypes: AVATAR_TYPES });
    return this.settle(userId, name);
  }

  /** After a new avatar is stored: keep the newest, delete the rest (so a user is never without one). */
  private async settle(userId: string, name: string): Promise<AvatarRef> {
    const current = await this.currentName(userId);
    await this.removeAllBut(userId, current);
    return this.ref(current ?? name);
  }

  /** The current avatar, or `undefined` when the user has none. */
  async find(userId: string): Promise<AvatarRef | undefined> {
    return (await this.findCacheable(userId))?.ref;
  }

  /**
   * The current avatar, with how long a redirect to it may be cached: never past the end of
   * the URL's window, so that following the cached redirect and then keeping the image for
   * the URL's own max-age both end before its signature does.
   */
  async findCacheable(userId: string): Promise<CacheableAvatar | undefined> {
    const name = await this.currentName(userId);
    if (name === undefined) return undefined;
    const info = await this.urlInfo(name);
    return { ref: { key: this.storage.key(name), url: info.url }, cacheSeconds: redirectMaxAge(info, Date.now()) };
  }

  /** Removes every avatar of the user; a user without one is fine. */
  async remove(userId: string): Promise<void> {
    await this.removeAllBut(userId, undefined);
  }

  private async currentName(userId: string): Promise<string | undefined> {
    let newest: string | undefined;
    for await (const entry of this.storage.list(prefix(userId))) {
      if (newest === undefined || entry.name > newest) newest = entry.name;
    }
    return newest;
  }

  private async removeAllBut(userId: string, keep: string | undefined): Promise<void> {
    const names: string[] = [];
    for await (const entry of this.storage.list(prefix(userId))) if (entry.name !== keep) names.push(entry.name);
    await Promise.all(names.map((name) => this.storage.delete(name)));
  }

  private async ref(name: string): Promise<AvatarRef> {
    return { key: this.storage.key(name), url: (await this.urlInfo(name)).url };
  }

  private urlInfo(name: string): Promise<MediaUrl> {
    return this.storage.urlInfo(name, { cacheWindow: AVATAR_URL_CACHE_WINDOW });
  }
}

function redirectMaxAge(info: MediaUrl, now: number): number {
  if (info.expiresAt === undefined || info.maxAge === undefined) return 0;
  const left = Math.floor((info.expiresAt.getTime() - now) / 1000) - info.maxAge;
  return Math.max(0, Math.min(REDIRECT_MAX_AGE, left));
}

function prefix(userId: string): string {
  return `avatars/${userId}/`;
}

/**
 * Milliseconds in base 36, zero-padded to a fixed width so names sort by time (9 digits
 * last until the year 5188), then randomness so two uploads in one millisecond differ.
 */
function uniqueStem(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}`;
}

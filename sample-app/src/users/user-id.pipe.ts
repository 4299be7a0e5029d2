/**
 * Validates the `:id` of `/users/:id/...`. The id becomes part of an object key
 * (`avatars/<id>/...`), so only a plain, short token is accepted: no slashes, dots or
 * spaces that could change which prefix a request touches.
 */
import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';
import { isString, matches } from 'class-validator';

export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

@Injectable()
export class UserIdPipe implements PipeTransform<unknown, string> {
  transform(value: unknown): string {
    if (isString(value) && matches(value, USER_ID_PATTERN)) return value;
    throw new BadRequestException(
      'Invalid user id: use 1 to 64 letters, digits, "-" or "_", starting with a letter or digit (for example "alice" or "42").',
    );
  }
}

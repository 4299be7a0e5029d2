import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { contentDisposition, UrlSigner, type SigningCredentials } from '../../lib/url-signer.js';

const NOW = Date.parse('2026-03-04T05:06:07.890Z');
const TRICKY_KEYS = [
  'a.png',
  'avatars/42/photo.png',
  'with space.png',
  'unicode/ünïcødé/日本語.png',
  'plus+sign.png',
  'percent%20literal.png',
  'hash#tag.png',
  'question?mark.png',
  'tilde~file.png',
  "quote's (paren) *star* !bang.png",
  'amp&eq=semi;colon,comma.png',
  'emoji/😀.png',
  '   leading spaces',
  'a/very/deep/path/to/a/file.tar.gz',
];

interface Case {
  label: string;
  client: { region: string; endpoint?: string; forcePathStyle?: boolean };
  bucket: string;
  credentials: SigningCredentials;
}

const CASES: Case[] = [
  { label: 'custom endpoint, path-style', client: { region: 'us-east-1', endpoint: 'http://localhost:9000', forcePathStyle: true }, bucket: 'media', credentials: { accessKeyId: 'minioadmin', secretAccessKey: 'minioadmin' } },
  { label: 'AWS virtual-hosted', client: { region: 'eu-west-1' }, bucket: 'my-media', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' } },
  { label: 'AWS dotted bucket (path-style)', client: { region: 'us-east-1' }, bucket: 'media.example.com', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret/with+chars=' } },
  { label: 'session token', client: { region: 'ap-southeast-2', endpoint: 'https://s3.example.com:8443/base', forcePathStyle: true }, bucket: 'b-1', credentials: { accessKeyId: 'ASIA', secretAccessKey: 's', sessionToken: 'FwoGZXIvYXdzE/+token==' } },
];

describe('UrlSigner matches getSignedUrl byte for byte at a pinned clock', () => {
  const clients: S3Client[] = [];
  afterAll(() => clients.forEach((c) => c.destroy()));

  for (const c of CASES) {
    it(`${c.label}: ${TRICKY_KEYS.length} tricky keys, with and without response overrides`, async () => {
      const client = new S3Client({
        ...c.client,
        credentials: c.credentials,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      clients.push(client);
      const signer = new UrlSigner({
        bucket: c.bucket,
        endpoint: c.client.endpoint,
        forcePathStyle: c.client.forcePathStyle ?? false,
        region: c.client.region,
        credentials: c.credentials,
        clock: () => NOW,
      });
      for (const key of TRICKY_KEYS) {
        for (const overrides of [{}, { ResponseContentDisposition: contentDisposition('Résumé "final".pdf'), ResponseContentType: 'application/pdf' }]) {
          const expected = await getSignedUrl(client, new GetObjectCommand({ Bucket: c.bucket, Key: key, ...overrides }), {
            expiresIn: 900,
            signingDate: new Date(NOW),
          });
          const actual = await signer.sign(key, {
            expiresIn: 900,
            responseContentDisposition: (overrides as { ResponseContentDisposition?: string }).ResponseContentDisposition,
            responseContentType: (overrides as { ResponseContentType?: string }).ResponseContentType,
          });
          expect(actual).toBe(expected);
          expect(actual).not.toMatch(/x-amz-checksum/i);
        }
      }
    });
  }

  it('signs for the endpoint it is given (the browser host), not the one the client talks to', async () => {
    const signer = new UrlSigner({ bucket: 'media', endpoint: 'http://localhost:9000', forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, clock: () => NOW });
    const url = new URL(await signer.sign('x.png', { expiresIn: 60 }));
    expect(url.host).toBe('localhost:9000');
    expect(url.pathname).toBe('/media/x.png');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('60');
  });

  it('resolves region and credentials from providers (the SDK chain) lazily', async () => {
    const provider = jest.fn(async (): Promise<SigningCredentials> => ({ accessKeyId: 'AK', secretAccessKey: 'SK' }));
    const signer = new UrlSigner({ bucket: 'mbk', forcePathStyle: false, region: async () => 'us-west-2', credentials: provider, clock: () => NOW });
    expect(await signer.sign('a', { expiresIn: 10 })).toMatch(/^https:\/\/mbk\.s3\.us-west-2\.amazonaws\.com\/a\?/);
    expect(provider).toHaveBeenCalledTimes(1);
  });
});

describe('expiry', () => {
  it('clamps to the expiry of temporary credentials and warns once', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const credentials = { accessKeyId: 'ASIA', secretAccessKey: 'secret-never-logged', sessionToken: 't', expiration: new Date(NOW + 120_500) };
    const signer = new UrlSigner({ bucket: 'media', endpoint: 'http://h:1', forcePathStyle: true, region: 'us-east-1', credentials, clock: () => NOW });
    const first = new URL(await signer.sign('a.png', { expiresIn: 3600 }));
    const second = new URL(await signer.sign('b.png', { expiresIn: 3600 }));
    const short = new URL(await signer.sign('c.png', { expiresIn: 60 }));
    expect(first.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(second.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(short.searchParams.get('X-Amz-Expires')).toBe('60');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain('limited to 120 s instead of 3600 s');
    expect(String(warn.mock.calls[0]![0])).not.toContain('secret-never-logged');
    warn.mockRestore();
  });

  it.each([0, -1, 1.5, 604801])('rejects expiresIn %p with a typed error', async (expiresIn) => {
    const signer = new UrlSigner({ bucket: 'media', endpoint: 'http://h:1', forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    await expect(signer.sign('a', { expiresIn })).rejects.toMatchObject({ code: 'STORAGE_CONFIGURATION' });
  });
});

describe('contentDisposition (RFC 6266)', () => {
  it('quotes ASCII names and adds filename* for others', () => {
    expect(contentDisposition('report.pdf')).toBe('attachment; filename="report.pdf"');
    expect(contentDisposition('a "b".pdf', 'inline')).toBe('inline; filename="a _b_.pdf"; filename*=UTF-8\'\'a%20%22b%22.pdf');
    expect(contentDisposition('Résumé.pdf')).toBe("attachment; filename=\"R_sum_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf");
  });
});

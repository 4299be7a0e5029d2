import { GetObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { contentDisposition, UrlSigner, type SigningCredentials } from '../../lib/url-signer.js';
import { createS3Client } from '../../lib/s3-client.factory.js';
import { createMediaSigner } from '../../lib/storage.module.js';
import { resolveStorageOptions } from '../../lib/storage-options.validation.js';

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

/** The partitions the installed SDK knows (`partitions.json` inside @aws-sdk/core), so an SDK update adding one shows up here. */
function sdkPartitions(): { id: string; regionRegex: string; regions: Record<string, unknown>; outputs: { dnsSuffix: string } }[] {
  const core = dirname(createRequire(import.meta.url).resolve('@aws-sdk/core/package.json'));
  const text = readFileSync(join(core, 'dist-es/submodules/client/util-endpoints/lib/aws/partitions.js'), 'utf8');
  return JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)).partitions;
}

const AK = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

/** Virtual-hosted requested where the SDK falls back to path style (or keeps virtual-hosted), per its endpoint rules. */
const ADDRESSING_CASES: Case[] = [
  { label: 'IPv4 endpoint, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: false }, bucket: 'media', credentials: AK },
  { label: 'IPv4 https endpoint with a base path, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'https://10.0.0.1/s3', forcePathStyle: false }, bucket: 'media', credentials: AK },
  { label: 'IPv6 endpoint, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'http://[::1]:7480', forcePathStyle: false }, bucket: 'media', credentials: AK },
  { label: 'dotted bucket, https custom endpoint, virtual-hosted requested', client: { region: 'eu-west-1', endpoint: 'https://s3.example.com', forcePathStyle: false }, bucket: 'media.example.com', credentials: AK },
  { label: 'dotted bucket, http custom endpoint, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'http://minio.local:9000', forcePathStyle: false }, bucket: 'media.example.com', credentials: AK },
  { label: 'dotted bucket, HTTP (upper case) custom endpoint, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'HTTP://MINIO.LOCAL:9000', forcePathStyle: false }, bucket: 'media.example.com', credentials: AK },
  { label: 'IP-shaped bucket, http custom endpoint, virtual-hosted requested', client: { region: 'us-east-1', endpoint: 'http://minio.local:9000', forcePathStyle: false }, bucket: '100.100.100.100', credentials: AK },
  { label: 'hostname endpoint with an explicit default port, virtual-hosted', client: { region: 'us-east-1', endpoint: 'https://s3.example.com:443', forcePathStyle: false }, bucket: 'media', credentials: AK },
  { label: 'aws-global (no endpoint)', client: { region: 'aws-global' }, bucket: 'my-media', credentials: AK },
  { label: 'aws-global, dotted bucket', client: { region: 'aws-global' }, bucket: 'media.example.com', credentials: AK },
  { label: 'aws-global with a custom endpoint', client: { region: 'aws-global', endpoint: 'http://localhost:9000', forcePathStyle: true }, bucket: 'media', credentials: AK },
  { label: 'aws-global, custom http endpoint, dotted bucket virtual-hosted (validation refuses it; the signer still equals the SDK)', client: { region: 'aws-global', endpoint: 'http://minio.local:9000', forcePathStyle: false }, bucket: 'media.example.com', credentials: AK },
];

/** Every region the installed SDK lists, plus one unlisted region per partition pattern, virtual-hosted and path-style. */
const PARTITION_CASES: Case[] = (() => {
  const regions = new Set<string>(['xx-unknown-1', 'us-iso-west-9', 'us-isob-north-9', 'eu-isoe-south-9', 'us-isof-north-9', 'cn-south-9', 'us-gov-south-9', 'eusc-de-west-9']);
  for (const partition of sdkPartitions()) for (const region of Object.keys(partition.regions)) regions.add(region);
  return [...regions].flatMap((region): Case[] => [
    { label: `region ${region}, virtual-hosted`, client: { region }, bucket: 'my-media', credentials: AK },
    { label: `region ${region}, path-style`, client: { region, forcePathStyle: true }, bucket: 'my-media', credentials: AK },
  ]);
})();

it('the parity matrix covers every partition of the installed SDK, the iso ones included', () => {
  const suffixes = sdkPartitions().map((p) => p.outputs.dnsSuffix);
  expect(suffixes).toEqual(expect.arrayContaining(['amazonaws.com', 'amazonaws.com.cn', 'c2s.ic.gov', 'sc2s.sgov.gov', 'cloud.adc-e.uk', 'csp.hci.ic.gov']));
  for (const region of ['us-iso-east-1', 'us-isob-east-1', 'eu-isoe-west-1', 'us-isof-south-1', 'cn-north-1', 'us-gov-west-1', 'aws-global']) {
    expect(PARTITION_CASES.map((c) => c.client.region)).toContain(region);
  }
});

describe('UrlSigner matches getSignedUrl byte for byte at a pinned clock', () => {
  const clients: S3Client[] = [];
  afterAll(() => clients.forEach((c) => c.destroy()));

  for (const c of [...CASES, ...ADDRESSING_CASES, ...PARTITION_CASES]) {
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

  it('UploadPart URLs (PUT with partNumber and uploadId) equal getSignedUrl for an UploadPartCommand, tricky keys and upload ids included', async () => {
    for (const c of [...CASES, ...ADDRESSING_CASES]) {
      const client = new S3Client({ ...c.client, credentials: c.credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
      clients.push(client);
      const signer = new UrlSigner({ bucket: c.bucket, endpoint: c.client.endpoint, forcePathStyle: c.client.forcePathStyle ?? false, region: c.client.region, credentials: c.credentials, clock: () => NOW });
      for (const key of TRICKY_KEYS) {
        for (const [uploadId, partNumber] of [['2~abcDEF-_.xyz', 1], ['VXBsb2FkIElEIGZvciA2aWJ+/+=', 10000]] as const) {
          const expected = await getSignedUrl(client, new UploadPartCommand({ Bucket: c.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber }), {
            expiresIn: 900,
            signingDate: new Date(NOW),
          });
          const actual = await signer.signUploadPart(key, { uploadId, partNumber, expiresIn: 900 });
          expect(actual).toBe(expected);
          expect(actual).not.toMatch(/x-amz-checksum|x-amz-sdk-checksum/i);
        }
      }
    }
  });

  it('addresses as the SDK does: path style for IP endpoints, iso partition hosts, aws-global signed for us-east-1', async () => {
    const url = async (bucket: string, region: string, endpoint?: string) =>
      new UrlSigner({ bucket, endpoint, forcePathStyle: false, region, credentials: AK, clock: () => NOW }).sign('a.png', { expiresIn: 60 });
    expect(await url('media', 'us-east-1', 'http://127.0.0.1:9000')).toMatch(/^http:\/\/127\.0\.0\.1:9000\/media\/a\.png\?/);
    expect(await url('media.example.com', 'eu-west-1', 'https://s3.example.com')).toMatch(/^https:\/\/s3\.example\.com\/media\.example\.com\/a\.png\?/);
    expect(await url('my-media', 'us-iso-east-1')).toMatch(/^https:\/\/my-media\.s3\.us-iso-east-1\.c2s\.ic\.gov\/a\.png\?/);
    expect(await url('my-media', 'us-isob-east-1')).toMatch(/^https:\/\/my-media\.s3\.us-isob-east-1\.sc2s\.sgov\.gov\/a\.png\?/);
    const global = new URL(await url('my-media', 'aws-global'));
    expect(global.host).toBe('my-media.s3.amazonaws.com');
    expect(global.searchParams.get('X-Amz-Credential')).toBe(`AKIAEXAMPLE/20260304/us-east-1/s3/aws4_request`);
  });

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
    const warn = jest.fn<(message: string) => void>();
    const credentials = { accessKeyId: 'ASIA', secretAccessKey: 'secret-never-logged', sessionToken: 't', expiration: new Date(NOW + 120_500) };
    const signer = new UrlSigner({ bucket: 'media', endpoint: 'http://h:1', forcePathStyle: true, region: 'us-east-1', credentials, clock: () => NOW, warn });
    const first = new URL(await signer.sign('a.png', { expiresIn: 3600 }));
    const second = new URL(await signer.sign('b.png', { expiresIn: 3600 }));
    const short = new URL(await signer.sign('c.png', { expiresIn: 60 }));
    expect(first.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(second.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(short.searchParams.get('X-Amz-Expires')).toBe('60');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain('limited to 120 s instead of 3600 s');
    expect(String(warn.mock.calls[0]![0])).not.toContain('secret-never-logged');
  });

  it("warns through the module's Nest Logger when built by createMediaSigner", async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const credentials = { accessKeyId: 'ASIA', secretAccessKey: 'secret-never-logged', sessionToken: 't', expiration: new Date(Date.now() + 120_500) };
    const media = resolveStorageOptions({ media: { bucket: 'media', region: 'us-east-1', credentials } }).media;
    const client = createS3Client(media);
    try {
      const url = new URL(await createMediaSigner(media, client).sign('a.png', { expiresIn: 3600 }));
      expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(121);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain('instead of 3600 s');
    } finally {
      warn.mockRestore();
      client.destroy();
    }
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

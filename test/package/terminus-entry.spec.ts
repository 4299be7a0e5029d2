/**
 * `@nestjs/terminus` is an optional peer: the main entry must never load it, in either build,
 * so an app without it installed starts. Checked in a child process on the build, with the
 * `nestjs-s3-storage/terminus` entry as the control that the detection sees a load.
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';

/** Every request for @nestjs/terminus that reaches the CommonJS resolver (require of CJS and of ESM). */
const CJS_PROBE = `
const Module = require('node:module');
const seen = [];
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === '@nestjs/terminus' || request.startsWith('@nestjs/terminus/')) seen.push(request);
  return resolve.call(this, request, ...rest);
};
require(process.argv[1]);
const files = Object.keys(require.cache).filter((f) => f.includes('/@nestjs/terminus/'));
console.log(JSON.stringify({ seen, files: files.length }));
`;

/** An ESM resolve hook that reports every specifier of @nestjs/terminus it is asked for. */
const ESM_HOOK = `data:text/javascript,${encodeURIComponent(`
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes('/@nestjs/terminus/')) port.postMessage(result.url);
  return result;
}
`)}`;
const ESM_PROBE = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
port1.on('message', (url) => seen.push(url));
register(${JSON.stringify(ESM_HOOK)}, { data: { port: port2 }, transferList: [port2] });
await import(process.argv[1]);
await new Promise((r) => setTimeout(r, 100)); // let the hook thread's messages arrive
port1.close();
console.log(JSON.stringify({ seen: seen.length }));
`;

const run = (type: 'commonjs' | 'module', entry: string): { seen: unknown[] | number; files?: number } =>
  JSON.parse(
    execFileSync('node', ['--disable-warning=ExperimentalWarning', `--input-type=${type}`, '-e', type === 'module' ? ESM_PROBE : CJS_PROBE, entry], {
      encoding: 'utf8',
      timeout: 60_000,
    }).trim().split('\n').pop()!,
  ) as { seen: unknown[] | number; files?: number };

describe('the main entry never loads @nestjs/terminus', () => {
  it('require("nestjs-s3-storage") resolves no @nestjs/terminus module; require("nestjs-s3-storage/terminus") does', () => {
    expect(run('commonjs', 'nestjs-s3-storage')).toEqual({ seen: [], files: 0 });
    const control = run('commonjs', 'nestjs-s3-storage/terminus');
    expect(control.seen).toContain('@nestjs/terminus');
  });

  it('import("nestjs-s3-storage") resolves no @nestjs/terminus module; import("nestjs-s3-storage/terminus") does', () => {
    expect(run('module', 'nestjs-s3-storage')).toEqual({ seen: 0 });
    expect(run('module', 'nestjs-s3-storage/terminus').seen).toBeGreaterThan(0);
  });
});

import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { pathToFileURL } from 'node:url';

interface Manifest {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  exports: Record<string, string | Record<string, Record<string, string>>>;
  bin: Record<string, string>;
  engines: { node: string };
}
const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as Manifest;

describe('package.json', () => {
  it('declares every package lib/ imports, as a dependency or peer dependency', () => {
    const declared = new Set([...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)]);
    const imported = new Set<string>();
    for (const file of readdirSync('lib').filter((f) => f.endsWith('.ts'))) {
      for (const [, spec] of readFileSync(`lib/${file}`, 'utf8').matchAll(/^(?:import|export)[^'"]*from\s+'([^']+)'|^import\s+'([^']+)'/gm)) {
        if (!spec || spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    expect([...imported].filter((p) => !declared.has(p))).toEqual([]);
    expect(imported.size).toBeGreaterThan(3);
  });

  it('points exports, types and bin at files the build produced', () => {
    const targets = [
      ...Object.values(manifest.exports['.'] as Record<string, Record<string, string>>).flatMap((c) => Object.values(c)),
      ...Object.values(manifest.bin),
    ];
    expect(targets.filter((t) => !existsSync(t))).toEqual([]);
    expect(JSON.parse(readFileSync('dist/cjs/package.json', 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('supports Nest 11 and 12 on Node 20.19+', () => {
    expect(manifest.peerDependencies['@nestjs/common']).toBe('^11.0.0 || ^12.0.0');
    expect(manifest.peerDependencies['@nestjs/core']).toBe('^11.0.0 || ^12.0.0');
    expect(manifest.engines.node).toBe('>=20.19');
  });
});

describe('self-reference', () => {
  it("resolves 'nestjs-s3-storage' to the build", async () => {
    const pkg = await import('nestjs-s3-storage');
    expect(typeof pkg.StorageModule.forRoot).toBe('function');
    expect(typeof pkg.MediaStorage).toBe('function');
    const resolve = (type: string): string =>
      execFileSync('node', [`--input-type=${type}`, '-e', type === 'module' ? "console.log(import.meta.resolve('nestjs-s3-storage'))" : "console.log(require.resolve('nestjs-s3-storage'))"], { encoding: 'utf8' }).trim();
    expect(resolve('module')).toBe(pathToFileURL(`${process.cwd()}/dist/esm/index.js`).href);
    expect(resolve('commonjs')).toBe(`${process.cwd()}/dist/cjs/index.js`);
  });
});

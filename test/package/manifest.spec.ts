/**
 * What package.json promises, checked on the build `npm test` made: the bin runs, every
 * import of the shipped code is something a user's install provides, and the README names
 * exactly the packages that come as dependencies.
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Manifest {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  exports: Record<string, string | Record<string, Record<string, string>>>;
  bin: Record<string, string>;
  files: string[];
}
const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as Manifest;
const SHIPPED = ['dist/esm', 'dist/cjs'];

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath, e.name));
}

/** Every module specifier in a built file: static and dynamic imports, re-exports, require(). */
function specifiers(source: string): { spec: string; dynamic: boolean }[] {
  const found: { spec: string; dynamic: boolean }[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) found.push({ spec: (m[1] ?? m[2])!, dynamic: false });
  // tsc's CommonJS output turns a dynamic import into `Promise.resolve().then(() => require(...))`.
  for (const m of source.matchAll(/(\bimport|Promise\.resolve\(\)\.then\(\(\) => (?:__importStar\()?require|\brequire)\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    found.push({ spec: m[2]!, dynamic: m[1] !== 'require' });
  }
  return found;
}

const packageName = (spec: string): string => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
const isBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!);

describe('the bin', () => {
  for (const [name, target] of Object.entries(manifest.bin)) {
    it(`${name} (${target}) is executable after the build and answers --help with exit 0`, () => {
      expect(SHIPPED.some((dir) => target.replace(/^\.\//, '').startsWith(`${dir}/`))).toBe(true);
      expect((statSync(target).mode & 0o111).toString(8)).toBe('111');
      // Run as the file itself, the way npx and a shell do: needs the mode bits and the shebang.
      const result = spawnSync(resolve(target), ['--help'], { encoding: 'utf8', timeout: 60_000 });
      expect({ status: result.status, error: result.error?.message }).toEqual({ status: 0, error: undefined });
      expect(result.stdout).toMatch(/collectstatic/);
    });
  }
});

describe('the test run', () => {
  it('spawns child processes (apps, the CLI, npm) on the same Node as jest, so a CI pass on another Node tests that Node', () => {
    expect(execFileSync('node', ['-p', 'process.version'], { encoding: 'utf8' }).trim()).toBe(process.version);
  });
});

describe('imports of the shipped build', () => {
  const declared = new Set([...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)]);
  const optional = new Set(Object.entries(manifest.peerDependenciesMeta ?? {}).filter(([, m]) => m.optional).map(([p]) => p));
  const files = SHIPPED.flatMap(jsFiles);
  // The files the main entries and the bin load statically: an optional peer has no place there.
  const mainGraph = new Set<string>();
  const visit = (file: string): void => {
    if (mainGraph.has(file) || !existsSync(file)) return;
    mainGraph.add(file);
    for (const { spec, dynamic } of specifiers(readFileSync(file, 'utf8'))) if (spec.startsWith('.') && !dynamic) visit(join(dirname(file), spec));
  };
  for (const dir of SHIPPED) visit(join(dir, 'index.js'));
  Object.values(manifest.bin).forEach((target) => visit(join(target)));

  it('covers both builds', () => {
    expect(files.filter((f) => f.startsWith('dist/esm/')).length).toBeGreaterThan(10);
    expect(files.filter((f) => f.startsWith('dist/cjs/')).length).toBe(files.filter((f) => f.startsWith('dist/esm/')).length);
  });

  it('each names a node: builtin, a declared dependency or peer dependency, or a shipped file', () => {
    const problems: string[] = [];
    const packages = new Set<string>();
    for (const file of files) {
      for (const { spec, dynamic } of specifiers(readFileSync(file, 'utf8'))) {
        if (spec.startsWith('.')) {
          if (!existsSync(join(dirname(file), spec))) problems.push(`${file}: ${spec} is not in the build`);
          continue;
        }
        if (isBuiltin(spec)) continue;
        const pkg = packageName(spec);
        packages.add(pkg);
        if (!declared.has(pkg)) problems.push(`${file}: ${spec} is not a dependency or peer dependency`);
        // An optional peer may be missing from a user's install: only a dynamic import, on the
        // path that needs it, or a subpath entry (`nestjs-s3-storage/terminus`) may load it.
        if (optional.has(pkg) && !dynamic && mainGraph.has(file)) problems.push(`${file}: optional peer ${spec} is imported statically`);
      }
    }
    expect(problems).toEqual([]);
    // The scan itself works: it found the SDK (static) and s3rver (dynamic, optional).
    expect([...packages]).toEqual(expect.arrayContaining(['@aws-sdk/client-s3', '@nestjs/common', 's3rver']));
    expect(mainGraph.has(join('dist', 'cjs', 'media.storage.js'))).toBe(true);
  });

  it('declares no dependency the build never imports', () => {
    const used = new Set(files.flatMap((f) => specifiers(readFileSync(f, 'utf8')).map((s) => packageName(s.spec))));
    expect(Object.keys(manifest.dependencies).filter((d) => !used.has(d))).toEqual([]);
  });
});

describe('the README', () => {
  it('lists exactly the packages that ship as dependencies', () => {
    const readme = readFileSync('README.md', 'utf8');
    const sentence = /These come with the package as dependencies:(.*?)\.(?:\s|$)/s.exec(readme);
    expect(sentence).not.toBeNull();
    const listed = [...sentence![1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    expect(listed.sort()).toEqual(Object.keys(manifest.dependencies).sort());
  });
});

describe('exports', () => {
  it('point at files the build produced, and the CommonJS folder is marked commonjs', () => {
    const targets = Object.values(manifest.exports)
      .filter((v): v is Record<string, Record<string, string>> => typeof v === 'object')
      .flatMap((conditions) => Object.values(conditions).flatMap((c) => Object.values(c)));
    expect(targets.length).toBeGreaterThan(3);
    expect(targets.filter((t) => !existsSync(t))).toEqual([]);
    expect(JSON.parse(readFileSync('dist/cjs/package.json', 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it("self-reference: 'nestjs-s3-storage' resolves to the build for import and require", async () => {
    const pkg = await import('nestjs-s3-storage');
    expect(typeof pkg.StorageModule.forRoot).toBe('function');
    expect(typeof pkg.MediaStorage).toBe('function');
    const resolveWith = (type: string): string =>
      execFileSync('node', [`--input-type=${type}`, '-e', type === 'module' ? "console.log(import.meta.resolve('nestjs-s3-storage'))" : "console.log(require.resolve('nestjs-s3-storage'))"], { encoding: 'utf8' }).trim();
    expect(resolveWith('module')).toBe(pathToFileURL(`${process.cwd()}/dist/esm/index.js`).href);
    expect(resolveWith('commonjs')).toBe(`${process.cwd()}/dist/cjs/index.js`);
  });
});

/**
 * Runs the built sample app (`dist/sample-app/src/main.js`, what `npm start` runs) as a child
 * process, waits for the address it prints, and stops it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
export const MAIN_JS = resolve(REPO, 'dist/sample-app/src/main.js');

export interface RunningApp {
  child: ChildProcess;
  /** `http://localhost:<port>/`, as printed. */
  url: string;
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** The environment a newcomer's shell would have, and nothing of ours. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  return { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extra };
}

export function requireBuild(file: string): void {
  if (!existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first (npm test does)`);
}

export async function spawnApp(cwd: string, env: Record<string, string>, timeoutMs = 30_000): Promise<RunningApp> {
  requireBuild(MAIN_JS);
  const child = spawn(process.execPath, [MAIN_JS], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app printed no address within ${timeoutMs} ms; output:\n${out}`)), timeoutMs);
    const check = (): void => {
      const match = /Sample app ready: (http:\/\/localhost:\d+\/)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the app exited with code ${code} before printing its address; output:\n${out}`));
    });
  });
  return {
    child,
    url,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

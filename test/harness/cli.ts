/**
 * Runs the built CLI as a child process with a clean environment, as a CI job or a Lambda
 * would: nothing from the developer's AWS profile or shell leaks in.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const CJS_CLI = resolve(process.cwd(), 'dist/cjs/cli.js');
export const ESM_CLI = resolve(process.cwd(), 'dist/esm/cli.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, script = CJS_CLI): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AWS_EC2_METADATA_DISABLED: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

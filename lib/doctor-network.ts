/**
 * The network half of `doctor`: whether a host is reachable (DNS, TCP, TLS), each stage told
 * apart, and plain HTTP requests (anonymous GETs, CORS preflights, signed URLs) made as a
 * browser would make them, outside the S3 client.
 */
import { lookup } from 'node:dns/promises';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** How far a connection got. */
export type ReachStage = 'dns' | 'tcp' | 'tls';

/** The outcome of {@link reach}. */
export type Reachability =
  | { ok: true; detail: string }
  | { ok: false; stage: ReachStage; code: string; detail: string };

/**
 * Resolves, connects to and (for `https:`) completes a verified TLS handshake with the host of
 * `origin`, each within `timeoutMs`. Never throws.
 */
export async function reach(origin: string, timeoutMs: number): Promise<Reachability> {
  const url = new URL(origin);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const tls = url.protocol === 'https:';
  const port = Number(url.port || (tls ? 443 : 80));
  let address = hostname;
  const parts: string[] = [];
  if (isIP(hostname) === 0) {
    try {
      const found = await withTimeout(lookup(hostname, { all: true }), timeoutMs, 'ETIMEDOUT');
      address = found[0]!.address;
      parts.push(`${hostname} resolves to ${found.map((a) => a.address).slice(0, 3).join(', ')}`);
    } catch (error) {
      const code = codeOf(error);
      return { ok: false, stage: 'dns', code, detail: `DNS: ${hostname} does not resolve (${code})` };
    }
  }
  const socket = await open(() => tcpConnect({ host: address, port }), 'connect', timeoutMs);
  if ('error' in socket) {
    const code = socket.error;
    return { ok: false, stage: 'tcp', code, detail: `TCP: nothing accepts connections at ${hostname}:${port} (${code})` };
  }
  socket.socket.destroy();
  parts.push(`TCP ${hostname}:${port} connects`);
  if (!tls) return { ok: true, detail: `${parts.join(', ')}, plain http (no TLS)` };
  const secure = await open(
    () => tlsConnect({ host: address, port, servername: isIP(hostname) === 0 ? hostname : undefined, rejectUnauthorized: true }),
    'secureConnect',
    timeoutMs,
  );
  if ('error' in secure) {
    return { ok: false, stage: 'tls', code: secure.error, detail: `TLS: the handshake with ${hostname}:${port} failed (${secure.error})` };
  }
  const s = secure.socket as TLSSocket;
  const cert = s.getPeerCertificate();
  const protocol = s.getProtocol();
  s.destroy();
  parts.push(`TLS ${protocol ?? ''} certificate valid until ${cert.valid_to ?? 'unknown'}`.replace('  ', ' '));
  return { ok: true, detail: parts.join(', ') };
}

/** Why a TLS handshake failed, and what fixes it. */
export function tlsFix(code: string, host: string): string {
  if (/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY_LEAF/.test(code)) {
    return `the certificate of ${host} is not signed by a CA this machine trusts: give Node your CA with NODE_EXTRA_CA_CERTS=/path/ca.pem, or use a certificate from a public CA`;
  }
  if (/EXPIRED/.test(code)) return `the certificate of ${host} has expired: renew it`;
  if (/ALTNAME|HOSTNAME/.test(code)) return `the certificate is not valid for ${host}: use a certificate naming this host, or the host the certificate names`;
  return `the TLS handshake with ${host} failed: is it an https port (or should the URL say http://)?`;
}

async function open(make: () => Socket, ready: 'connect' | 'secureConnect', timeoutMs: number): Promise<{ socket: Socket } | { error: string }> {
  return new Promise((resolve) => {
    let socket: Socket;
    try {
      socket = make();
    } catch (error) {
      resolve({ error: codeOf(error) });
      return;
    }
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ error: 'ETIMEDOUT' });
    }, timeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      resolve({ socket });
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ error: codeOf(error) });
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, code: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error(code), { code })), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function codeOf(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  return typeof e?.code === 'string' ? e.code : String(e?.message ?? 'error');
}

/** An HTTP answer, body read (at most 64 KiB kept). */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/** The outcome of {@link request}: an answer, or the network error that stopped it. */
export type HttpOutcome = { ok: true; answer: HttpAnswer } | { ok: false; code: string };

/** One request as a browser sends it (no credentials, no redirects followed). Never throws. */
export async function request(url: string, init: { method?: string; headers?: Record<string, string> }, timeoutMs: number): Promise<HttpOutcome> {
  try {
    const response = await fetch(url, { method: init.method ?? 'GET', headers: init.headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.text()).slice(0, 65536);
    return { ok: true, answer: { status: response.status, headers: response.headers, body } };
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    const name = (error as { name?: string }).name;
    return { ok: false, code: name === 'TimeoutError' ? 'ETIMEDOUT' : codeOf(cause ?? error) };
  }
}

/** The `<Code>` of an S3 XML error body. */
export function xmlErrorCode(body: string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
}

/**
 * The Host the server signed over, when its error says (AWS puts the canonical request in a
 * SignatureDoesNotMatch body; Ceph says nothing).
 */
export function hostSeenByServer(body: string): string | undefined {
  const canonical = /<CanonicalRequest>([\s\S]*?)<\/CanonicalRequest>/.exec(body)?.[1];
  return canonical && /(?:^|\n)host:([^\n]+)/.exec(canonical)?.[1]?.trim();
}

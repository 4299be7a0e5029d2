/**
 * A TCP proxy on 127.0.0.1 between the module and the S3 server, whose behaviour the tests
 * switch at any time. It only ever connects to the loopback target it was given.
 *
 * Modes apply to new AND existing connections, because the SDK's keep-alive agent reuses
 * sockets: a "stalled server" must stall the socket the client already holds too.
 *  - `pass`: forward both ways.
 *  - `refuse`: stop listening, so connects get ECONNREFUSED (the port is kept and reopened
 *    by `pass()`); existing connections are closed.
 *  - `drop`: accept, then close every new connection at once (and close existing ones).
 *  - `delay(ms)`: forward every chunk, each `ms` later.
 *  - `stall`: accept and never forward a byte either way (the server looks hung).
 *  - `resetAfter(n)`: pass, but once `n` client-to-server bytes have gone through after the
 *    call, send a TCP RST on that connection (both sides), once; then pass again.
 */
import { createServer, Socket, type Server } from 'node:net';

export type FaultMode = 'pass' | 'refuse' | 'drop' | 'delay' | 'stall';

export class FaultProxy {
  private mode: FaultMode = 'pass';
  private delayMs = 0;
  private resetBudget: number | undefined;
  private readonly sockets = new Set<Socket>();
  private listening = false;
  /** Connections accepted since start. */
  accepted = 0;
  /** Resets sent by `resetAfter`. */
  resets = 0;
  /** Most client connections open at once since the last `resetPeak()`. */
  peak = 0;

  private constructor(
    private server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Starts a proxy to `targetUrl` (an `http://127.0.0.1:port` style loopback URL). */
  static async start(targetUrl: string): Promise<FaultProxy> {
    const url = new URL(targetUrl);
    const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname;
    // Loopback only: this proxy must never reach another machine.
    if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== '[::1]') throw new Error(`FaultProxy targets loopback only, got ${host}`);
    const target = { host: host.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
    const proxy = new FaultProxy(createServer(), 0, target);
    const port = await proxy.listen(0);
    (proxy as { port: number }).port = port;
    return proxy;
  }

  /** The endpoint to give the module: `http://127.0.0.1:<proxy port>`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Client connections open now. */
  get open(): number {
    let n = 0;
    for (const s of this.sockets) if ((s as Socket & { side?: string }).side === 'client') n++;
    return n;
  }

  resetPeak(): void {
    this.peak = this.open;
  }

  async pass(): Promise<void> {
    this.mode = 'pass';
    this.resetBudget = undefined;
    if (!this.listening) {
      this.server = createServer();
      await this.listen(this.port);
    }
  }

  async refuse(): Promise<void> {
    this.mode = 'refuse';
    this.closeAll();
    if (this.listening) {
      const server = this.server;
      this.listening = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  drop(): void {
    this.mode = 'drop';
    this.closeAll();
  }

  delay(ms: number): void {
    this.mode = 'delay';
    this.delayMs = ms;
  }

  stall(): void {
    this.mode = 'stall';
  }

  /** Resets the connection that carries client byte number `bytes` (counted from now), once. */
  resetAfter(bytes: number): void {
    this.mode = 'pass';
    this.resetBudget = bytes;
  }

  async close(): Promise<void> {
    this.closeAll();
    if (this.listening) {
      this.listening = false;
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }

  private listen(port: number): Promise<number> {
    this.server.on('connection', (client) => this.accept(client));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.listening = true;
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  private closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private track(socket: Socket, side: 'client' | 'upstream'): void {
    (socket as Socket & { side?: string }).side = side;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // A reset or a destroyed peer is part of the test, not a crash.
    socket.on('error', () => undefined);
  }

  private accept(client: Socket): void {
    this.accepted++;
    if (this.mode === 'drop' || this.mode === 'refuse') {
      client.on('error', () => undefined);
      client.destroy();
      return;
    }
    this.track(client, 'client');
    this.peak = Math.max(this.peak, this.open);
    const upstream = new Socket();
    this.track(upstream, 'upstream');
    upstream.connect(this.target.port, this.target.host);
    const both = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once('close', both);
    upstream.once('close', both);

    const pending: Buffer[] = [];
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      for (const chunk of pending.splice(0)) this.forward(chunk, upstream, client, true);
    });
    client.on('data', (chunk: Buffer) => {
      if (!connected) pending.push(chunk);
      else this.forward(chunk, upstream, client, true);
    });
    upstream.on('data', (chunk: Buffer) => this.forward(chunk, client, upstream, false));
  }

  private forward(chunk: Buffer, to: Socket, from: Socket, fromClient: boolean): void {
    if (this.mode === 'stall') return; // swallowed: the peer waits forever
    if (fromClient && this.resetBudget !== undefined) {
      this.resetBudget -= chunk.length;
      if (this.resetBudget <= 0) {
        this.resetBudget = undefined;
        this.resets++;
        from.resetAndDestroy();
        to.resetAndDestroy();
        return;
      }
    }
    if (this.mode === 'delay') {
      setTimeout(() => to.destroyed || to.write(chunk), this.delayMs);
      return;
    }
    to.write(chunk);
  }
}

/**
 * The few parts of Express's request and response the app touches. Written out here
 * because the repo does not depend on @types/express; Nest hands us Express objects.
 */
export interface HttpRequest {
  method: string;
  originalUrl: string;
}

export interface HttpResponse {
  status(code: number): this;
  setHeader(name: string, value: string | number): this;
  type(type: string): this;
  json(body: unknown): this;
  send(body: string | Buffer): this;
  redirect(status: number, url: string): void;
  headersSent: boolean;
}

/** What multer's memory storage hands the route for one file. */
export interface UploadedBytes {
  fieldname: string;
  originalname: string;
  size: number;
  buffer: Buffer;
}

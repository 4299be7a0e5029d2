// s3rver (an optional peer) ships no typings; lib/local-s3.ts describes the parts it uses.
declare module 's3rver' {
  const S3rver: unknown;
  export default S3rver;
}
declare module 's3rver/lib/models/error.js' {
  const S3Error: unknown;
  export default S3Error;
}
declare module 's3rver/lib/models/account.js' {
  const AWSAccount: unknown;
  export default AWSAccount;
}

import * as Data from "effect/Data"
import * as Stream from "node:stream"
import { type BackendName, SecretMalformed } from "../SecretError.js"

/**
 * The most bytes of one secrets response body (Vault or Secrets Manager) that are read: 256 KiB.
 * A real answer is far smaller: a Secrets Manager secret holds at most 64 KiB (base64 for a
 * `SecretBinary`, JSON escapes for a `SecretString` still fit), and a KV v2 envelope of a few
 * credentials is under 10 KiB. Without a bound a 700 MB answer crashed the process
 * (ERR_STRING_TOO_LONG) and 300 MB cost 2 s and 1.1 GB of memory.
 *
 * @internal
 */
export const maxResponseBytes = 256 * 1024

/**
 * The most bytes (UTF-8) one secret value may have: 64 KiB, Secrets Manager's own maximum secret
 * size. A password, user name or host is a few hundred bytes at most.
 *
 * @internal
 */
export const maxSecretValueBytes = 64 * 1024

/** The limit as the messages print it, e.g. `256 KiB limit on a secrets response (maxResponseBytes)`. */
export const responseLimitText = `${maxResponseBytes / 1024} KiB limit on a secrets response (maxResponseBytes)`

/**
 * The response body was longer than `maxResponseBytes` (counted, or declared by Content-Length):
 * reading stopped there and the connection was destroyed. It carries no byte of the body.
 *
 * @internal
 */
export class ResponseTooLarge extends Data.TaggedError("ResponseTooLarge")<{
  /** The Content-Length the server declared, when that is what was refused up front. */
  readonly declaredBytes: number | undefined
}> {}

/** The declared Content-Length, when it is a number above the limit. */
export const declaredAboveLimit = (contentLength: unknown): number | undefined => {
  const declared = typeof contentLength === "string" && /^\d+$/.test(contentLength) ? Number(contentLength) : undefined
  return declared !== undefined && declared > maxResponseBytes ? declared : undefined
}

/** How a `ResponseTooLarge` reads in a message: what was refused, never what was in it. */
export const describe = (error: ResponseTooLarge): string =>
  error.declaredBytes === undefined
    ? `a response body longer than the ${responseLimitText}; reading stopped there and the connection was closed`
    : `a response that declared Content-Length: ${error.declaredBytes}, above the ${responseLimitText}; ` +
      "its body was not read and the connection was closed"

/**
 * `source` passed through, at most `maxResponseBytes` of it: past that, the returned stream fails
 * with `ResponseTooLarge` and `source` (the HTTP response, and with it its socket) is destroyed,
 * so nothing more is read from the network.
 *
 * @internal
 */
export const bounded = (source: Stream.Readable): Stream.Readable => {
  let seen = 0
  const counter = new Stream.Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      if (seen > maxResponseBytes) callback(new ResponseTooLarge({ declaredBytes: undefined }))
      else callback(null, chunk)
    }
  })
  // pipeline destroys `source` when `counter` fails and forwards a failure of `source` to
  // `counter`: either way the reader of `counter` gets the error, so the callback has nothing to add.
  Stream.pipeline(source, counter, () => undefined)
  return counter
}

/**
 * The `SecretMalformed` for a value longer than `maxSecretValueBytes` (checked on the raw value,
 * before it is wrapped in `Redacted`). The message names the key and the limit, never the value
 * or its length.
 *
 * @internal
 */
export const valueTooLarge = (options: {
  readonly backend: BackendName
  readonly key: string
  /** Where the value is stored, e.g. `Vault secret secret/takumi/production has a field DB_PASSWORD that`. */
  readonly what: string
  /** How to store a smaller value. */
  readonly fix: string
}): SecretMalformed =>
  new SecretMalformed({
    backend: options.backend,
    key: options.key,
    message: `${options.what} is longer than the ${maxSecretValueBytes / 1024} KiB limit on one secret value ` +
      `(maxSecretValueBytes): no ${options.key} is that long. Fix: ${options.fix}`
  })

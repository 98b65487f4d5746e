import * as Data from "effect/Data"
import * as Http from "node:http"
import * as Https from "node:https"
import * as SecretLimits from "../secretLimits.js"
import * as TlsAgent from "../tlsAgent.js"

/**
 * A request failed below HTTP (refused, reset, TLS verification, aborted). Only the Node
 * error `code` is kept: never the request, its headers (the token) or the original error.
 *
 * @internal
 */
export class TransportFailure extends Data.TaggedError("TransportFailure")<{ readonly code: string }> {}

/**
 * A redirect to `host`, which is neither `VAULT_ADDR`'s host nor listed in `VAULT_REDIRECT_HOSTS`,
 * was refused: nothing was sent there, so the token did not leave.
 *
 * @internal
 */
export class RedirectRefused extends Data.TaggedError("RedirectRefused")<{ readonly host: string }> {}

/** What node-vault hands its request function (see node-vault/src/index.js, `client.request`). */
interface VaultRequest {
  readonly uri: string
  readonly method: string
  readonly headers?: Readonly<Record<string, string>>
  readonly json?: unknown
  readonly signal?: AbortSignal
}

/** What node-vault expects back: it reads `statusCode`, `body` and `request.path`. */
interface VaultResponse {
  readonly statusCode: number
  readonly body: unknown
  readonly request: { readonly path: string }
}

const parseBody = (text: string): unknown => {
  if (text.length === 0) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * The HTTP transport we hand to node-vault through its `request-promise` option, replacing
 * its axios instance. This is how the node-vault traps are closed structurally rather than
 * by hoping an option sticks:
 *
 * - TLS verification is always on (`rejectUnauthorized: true` on our own agent): node-vault's
 *   `strictSSL: !process.env.VAULT_SKIP_VERIFY` default is computed but never used.
 * - Node's `http`/`https` modules do not read `HTTPS_PROXY`; axios did, and node-vault 0.12
 *   gives no way to pass `proxy: false` through to it (measured: an explicit agent is still
 *   wrapped in a CONNECT tunnel to the proxy).
 * - Failures are rejected as `TransportFailure { code }`, so no error object carrying the
 *   request config and its `X-Vault-Token` header ever exists.
 * - Each call takes an `AbortSignal`, so an Effect timeout or interruption cancels the request.
 * - Redirects (a standby pointing at the active node) are followed up to 3 hops, never from
 *   https to http, and only to `VAULT_ADDR`'s own host (any port: a standby) or a host listed in
 *   `VAULT_REDIRECT_HOSTS`: every hop carries the token, so any other host is refused before a
 *   byte is sent to it. The body of a redirect is never read.
 * - At most `maxResponseBytes` of a body are read: a larger Content-Length is refused before the
 *   body, and a body that grows past the limit is cut off there; either way the response (and
 *   its socket) is destroyed and the request fails with `ResponseTooLarge`.
 *
 * @internal
 */
const maxRedirects = 3

/** A host as redirects compare it: lower case, without IPv6 brackets or a trailing dot. */
const normaliseHost = (host: string): string => host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "")

export const make = (options: {
  readonly ca: string | undefined
  /** The host of `VAULT_ADDR`. */
  readonly host: string
  /** `VAULT_REDIRECT_HOSTS`. */
  readonly redirectHosts: ReadonlyArray<string>
}) => {
  const httpsAgent = TlsAgent.make(options.ca)
  const httpAgent = new Http.Agent({ keepAlive: true })
  const redirectHosts = new Set([options.host, ...options.redirectHosts].map(normaliseHost))

  const send = (vaultRequest: VaultRequest, url: URL, redirects: number): Promise<VaultResponse> =>
    new Promise<VaultResponse>((resolve, reject) => {
      const secure = url.protocol === "https:"
      const body = vaultRequest.json === undefined ? undefined : JSON.stringify(vaultRequest.json)
      const headers: Record<string, string> = { accept: "application/json", ...vaultRequest.headers }
      if (body !== undefined) {
        headers["content-type"] ??= "application/json"
        headers["content-length"] = String(Buffer.byteLength(body))
      }
      const requestOptions: Https.RequestOptions = {
        method: vaultRequest.method,
        headers,
        ...(vaultRequest.signal === undefined ? {} : { signal: vaultRequest.signal })
      }
      const onResponse = (response: Http.IncomingMessage) => {
        const status = response.statusCode ?? 0
        const location = response.headers.location
        // A Vault standby without request forwarding answers 307 to the active node. Follow a
        // few hops, never from https to http (that would send the token in clear text) and only
        // to a host the configuration names (any other would receive the token).
        if ((status === 301 || status === 302 || status === 307 || status === 308) && location !== undefined) {
          response.destroy()
          if (!URL.canParse(location, url.href)) return reject(new TransportFailure({ code: "INVALID_REDIRECT" }))
          const next = new URL(location, url)
          if (redirects >= maxRedirects) return reject(new TransportFailure({ code: "TOO_MANY_REDIRECTS" }))
          if (secure && next.protocol !== "https:") return reject(new TransportFailure({ code: "INSECURE_REDIRECT" }))
          if (next.protocol !== "https:" && next.protocol !== "http:") {
            return reject(new TransportFailure({ code: "INVALID_REDIRECT" }))
          }
          if (!redirectHosts.has(normaliseHost(next.hostname))) return reject(new RedirectRefused({ host: next.hostname }))
          return resolve(send(vaultRequest, next, redirects + 1))
        }
        const declaredBytes = SecretLimits.declaredAboveLimit(response.headers["content-length"])
        if (declaredBytes !== undefined) {
          response.destroy()
          return reject(new SecretLimits.ResponseTooLarge({ declaredBytes }))
        }
        const chunks: Array<Buffer> = []
        let received = 0
        response.on("data", (chunk: Buffer) => {
          received += chunk.length
          if (received > SecretLimits.maxResponseBytes) {
            response.destroy()
            return reject(new SecretLimits.ResponseTooLarge({ declaredBytes: undefined }))
          }
          chunks.push(chunk)
        })
        response.on("error", () => reject(new TransportFailure({ code: "ECONNRESET" })))
        response.on("end", () =>
          resolve({
            statusCode: response.statusCode ?? 0,
            body: parseBody(Buffer.concat(chunks).toString("utf8")),
            request: { path: url.pathname }
          })
        )
      }
      const outgoing = secure
        ? Https.request(url, { ...requestOptions, agent: httpsAgent }, onResponse)
        : Http.request(url, { ...requestOptions, agent: httpAgent }, onResponse)
      outgoing.on("error", (error: NodeJS.ErrnoException) =>
        reject(new TransportFailure({ code: typeof error.code === "string" ? error.code : error.name })))
      outgoing.end(body)
    })

  const request = (vaultRequest: VaultRequest): Promise<VaultResponse> =>
    send(vaultRequest, new URL(vaultRequest.uri), 0)

  return {
    /** node-vault calls `defaults(rpDefaults)` once and uses what it returns for every request. */
    requestPromise: { defaults: () => request },
    close: () => {
      httpsAgent.destroy()
      httpAgent.destroy()
    }
  }
}

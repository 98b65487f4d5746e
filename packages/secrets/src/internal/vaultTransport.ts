import * as Data from "effect/Data"
import * as Http from "node:http"
import * as Https from "node:https"

/**
 * A request failed below HTTP (refused, reset, TLS verification, aborted). Only the Node
 * error `code` is kept: never the request, its headers (the token) or the original error.
 *
 * @internal
 */
export class TransportFailure extends Data.TaggedError("TransportFailure")<{ readonly code: string }> {}

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
 *   https to http.
 *
 * @internal
 */
const maxRedirects = 3

export const make = (options: { readonly ca: string | undefined }) => {
  const httpsAgent = new Https.Agent({
    keepAlive: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    ...(options.ca === undefined ? {} : { ca: options.ca })
  })
  const httpAgent = new Http.Agent({ keepAlive: true })

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
        // few hops, never from https to http (that would send the token in clear text).
        if ((status === 301 || status === 302 || status === 307 || status === 308) && location !== undefined) {
          response.resume()
          let next: URL
          try {
            next = new URL(location, url)
          } catch {
            return reject(new TransportFailure({ code: "INVALID_REDIRECT" }))
          }
          if (redirects >= maxRedirects) return reject(new TransportFailure({ code: "TOO_MANY_REDIRECTS" }))
          if (secure && next.protocol !== "https:") return reject(new TransportFailure({ code: "INSECURE_REDIRECT" }))
          return resolve(send(vaultRequest, next, redirects + 1))
        }
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
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

import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"

/** @internal */
export interface HttpDoubleTls {
  readonly certPem: string
  readonly keyPem: string
}

/** @internal */
export interface HttpDoubleRequest {
  readonly method: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
}

/**
 * What the handler tells the server to do: answer, never answer (the socket stays open until
 * the double is closed), or destroy the connection so the client sees a reset.
 *
 * @internal
 */
export type HttpDoubleAnswer =
  | { readonly _tag: "Respond"; readonly status: number; readonly headers: Record<string, string>; readonly body: string }
  | HttpDoubleStream
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Reset" }

/**
 * A huge body, streamed: `prefix`, then filler bytes until the client hangs up, `length` bytes
 * in all (declared as Content-Length when `declareLength`, else sent chunked). Writes wait for
 * the socket to drain, so the double never holds more than one chunk, and `onSent` counts every
 * byte handed to the socket: the proof of how much a client read before it stopped.
 *
 * @internal
 */
export interface HttpDoubleStream {
  readonly _tag: "Stream"
  readonly status: number
  readonly headers: Record<string, string>
  readonly prefix: string
  readonly length: number
  readonly declareLength: boolean
  readonly onSent: (bytes: number) => void
}

/**
 * 1 GiB: the length of a huge-body fault, past V8's longest string (about 512 MiB), so a client
 * that buffers the whole body fails the way the 700 MB Vault answer made a process fail.
 *
 * @internal
 */
export const hugeBodyBytes = 1024 * 1024 * 1024

/** @internal */
export const hugeBody = (
  options: Omit<HttpDoubleStream, "_tag" | "length">
): HttpDoubleAnswer => ({ _tag: "Stream", length: hugeBodyBytes, ...options })

/** 64 KiB of `a`: valid inside a JSON string, so a client that reads it all only fails at the end. */
const filler = Buffer.alloc(64 * 1024, "a")

const stream = (res: Http.ServerResponse, answer: HttpDoubleStream): void => {
  res.writeHead(answer.status, answer.declareLength ? { ...answer.headers, "content-length": answer.length } : answer.headers)
  let sent = 0
  let closed = false
  res.on("close", () => void (closed = true))
  const write = (bytes: Buffer): boolean => {
    sent += bytes.length
    answer.onSent(bytes.length)
    return res.write(bytes)
  }
  const pump = (): void => {
    while (!closed && sent < answer.length) {
      const left = answer.length - sent
      if (!write(left < filler.length ? filler.subarray(0, left) : filler)) {
        res.once("drain", pump)
        return
      }
    }
    if (!closed) res.end()
  }
  const prefix = Buffer.from(answer.prefix, "utf8")
  if (write(prefix.subarray(0, Math.min(prefix.length, answer.length)))) pump()
  else res.once("drain", pump)
}

/** @internal */
export interface HttpDoubleServer {
  readonly port: number
  readonly url: string
}

/** @internal */
export const json = (status: number, body: unknown, headers: Record<string, string> = {}): HttpDoubleAnswer => ({
  _tag: "Respond",
  status,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body)
})

/**
 * Listens on 127.0.0.1 on a free port (HTTPS when `tls` is given) until the scope closes; then
 * every open connection, hanging ones included, is destroyed so the scope closes promptly.
 *
 * @internal
 */
export const listen = (options: {
  readonly tls?: HttpDoubleTls | undefined
  /** a promise for handlers that do work first (the Vault double's database engine runs SQL) */
  readonly handle: (request: HttpDoubleRequest) => HttpDoubleAnswer | Promise<HttpDoubleAnswer>
}): Effect.Effect<HttpDoubleServer, string, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: Http.Server; sockets: Set<Net.Socket>; port: number }, string>((resume) => {
      const sockets = new Set<Net.Socket>()
      const onRequest = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const answer = options.handle({
            method: req.method ?? "GET",
            path: req.url ?? "/",
            headers: req.headers,
            body: Buffer.concat(chunks)
          })
          if (answer instanceof Promise) {
            answer.then(answerWith, () => answerWith(json(500, { errors: ["internal error"] })))
          } else {
            answerWith(answer)
          }
        })
        const answerWith = (answer: HttpDoubleAnswer): void => {
          switch (answer._tag) {
            case "Respond":
              res.writeHead(answer.status, { ...answer.headers, "content-length": Buffer.byteLength(answer.body) })
              res.end(answer.body)
              return
            case "Stream":
              stream(res, answer)
              return
            case "Hang":
              return
            case "Reset":
              req.socket.destroy()
              return
          }
        }
      }
      const server = options.tls === undefined
        ? Http.createServer(onRequest)
        : Https.createServer({ cert: options.tls.certPem, key: options.tls.keyPem }, onRequest)
      server.on("connection", (socket: Net.Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
      })
      // A client that gives up mid-handshake (e.g. it rejects our certificate) is not an error.
      server.on("tlsClientError", () => {})
      server.once("error", (error) => resume(Effect.fail(`could not listen on 127.0.0.1: ${error.message}`)))
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        if (address === null || typeof address === "string") {
          resume(Effect.fail("server has no TCP address"))
          return
        }
        resume(Effect.succeed({ server, sockets, port: address.port }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(
    Effect.map(({ port }) => ({
      port,
      url: `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${port}`
    }))
  )

/**
 * An impostor PostgreSQL server for testing what a client hands to a peer it should not trust: a
 * loopback TCP server that answers the SSLRequest and upgrades to TLS with the certificate it is
 * given (the test PKI's `server` chains to the test CA, so the client's verification passes),
 * reads the StartupMessage and asks for the authentication the test chose — the password in
 * cleartext, an MD5 hash, SASL with SCRAM-SHA-256 only, SASL with SCRAM-SHA-256-PLUS too, GSSAPI — or
 * for none at all. Every message the client sends after its StartupMessage is recorded, so a test
 * can assert what the client gave away (nothing, for a refusal). It is not PostgreSQL: it cannot
 * verify a password, run SCRAM or answer a query.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as internal from "./internal/hostilePg.js"

/**
 * What the server asks for after the StartupMessage: `cleartext` (AuthenticationCleartextPassword,
 * code 3), `md5` (AuthenticationMD5Password, code 5, with a salt), `scram-sha-256` (AuthenticationSASL,
 * code 10, offering only SCRAM-SHA-256), `scram-sha-256-plus` (SASL offering SCRAM-SHA-256-PLUS and
 * SCRAM-SHA-256, as PostgreSQL does over TLS), `gss` (AuthenticationGSS, code 7, which `pg` cannot
 * parse), or `none` (AuthenticationOk, BackendKeyData and
 * ReadyForQuery at once, as for `trust`).
 *
 * @since 0.1.0
 * @category models
 */
export type AuthenticationRequest = internal.AuthenticationRequest

/**
 * What the server does with the client's first answer (the password message or the
 * SASLInitialResponse), after recording it: `reject` (the default) sends a FATAL ErrorResponse
 * 28P01 and closes, as a server that found the password wrong; `accept` sends AuthenticationOk,
 * BackendKeyData and ReadyForQuery, as an impostor that skips the rest of SCRAM would.
 *
 * @since 0.1.0
 * @category models
 */
export type AfterResponse = internal.AfterResponse

/**
 * A connection that got as far as its StartupMessage.
 *
 * @since 0.1.0
 * @category models
 */
export type Connection = internal.ConnectionRecord

/**
 * One message the client sent after its StartupMessage.
 *
 * @since 0.1.0
 * @category models
 */
export type ReceivedMessage = internal.ReceivedMessage

/**
 * @since 0.1.0
 * @category models
 */
export interface HostilePgServer {
  readonly host: "127.0.0.1"
  readonly port: number
  /** Every connection that sent a StartupMessage, oldest first. */
  readonly connections: Effect.Effect<ReadonlyArray<Connection>>
  /** Every message received after a StartupMessage, oldest first, across connections. */
  readonly received: Effect.Effect<ReadonlyArray<ReceivedMessage>>
}

/**
 * The server could not listen.
 *
 * @since 0.1.0
 * @category errors
 */
export class HostilePgServerError extends Schema.TaggedError<HostilePgServerError>()("HostilePgServerError", {
  message: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly request: AuthenticationRequest
  /** the certificate to upgrade to TLS with; without one the SSLRequest is answered `N` (no TLS) */
  readonly certificate?: { readonly certPem: string; readonly keyPem: string }
  /** default `reject` */
  readonly afterResponse?: AfterResponse
}

/**
 * Listens on a free port of 127.0.0.1 until the scope closes (open connections are destroyed then).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<HostilePgServer, HostilePgServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const state = new internal.PeerState({
      request: options.request,
      certificate: options.certificate,
      afterResponse: options.afterResponse ?? "reject"
    })
    const { port } = yield* Effect.acquireRelease(
      Effect.async<{ readonly server: Net.Server; readonly port: number }, HostilePgServerError>((resume) => {
        const server = Net.createServer(state.serve)
        server.once("error", (err) => resume(Effect.fail(new HostilePgServerError({ message: `HostilePgServer: ${err.message}` }))))
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resume(Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0 }))
        })
      }),
      ({ server }) =>
        Effect.async<void>((resume) => {
          for (const socket of state.sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      host: "127.0.0.1",
      port,
      connections: Effect.sync(() => [...state.connections]),
      received: Effect.sync(() => [...state.received])
    }
  })

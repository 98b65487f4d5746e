/**
 * A man in the middle on loopback: a proxy between a client and a real PostgreSQL server that
 * terminates the client's TLS itself — with whatever certificate the test hands it: one from
 * another CA, one from the trusted CA for another host, or one from the trusted CA for the right
 * host (a mis-issued certificate, which only channel binding detects) — or answers the client's
 * SSLRequest with `N` (a downgrade to plaintext), and runs its own TLS connection to the real
 * server. Every frame is parsed, recorded and relayed; with `stripScramPlus` the server's SASL
 * offer reaches the client without SCRAM-SHA-256-PLUS (a channel-binding downgrade).
 *
 * What the proxy recorded is what an attacker in that position obtains: every message the client
 * sent after its StartupMessage (the password, an MD5 hash, or the SCRAM messages and proof), and
 * whether the real server logged the proxy's own connection in (`serverAuthenticated`), in which
 * case the attacker holds a session as the client's role.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as internal from "./internal/interception.js"

/**
 * How the proxy answers the client's SSLRequest: `Terminate` (`S`, then TLS with `certificate`)
 * or `RefuseTls` (`N`: the client is offered plaintext while the proxy talks TLS to the server).
 *
 * @since 0.1.0
 * @category models
 */
export type ClientSide = internal.ClientSide

/**
 * One client connection and what the proxy's own connection to the server got.
 *
 * @since 0.1.0
 * @category models
 */
export type InterceptedConnection = internal.InterceptedConnection

/**
 * One message the client sent after its StartupMessage.
 *
 * @since 0.1.0
 * @category models
 */
export type InterceptedMessage = internal.InterceptedMessage

/**
 * @since 0.1.0
 * @category models
 */
export interface InterceptionProxy {
  readonly host: "127.0.0.1"
  readonly port: number
  /** Every client connection accepted, oldest first. */
  readonly connections: Effect.Effect<ReadonlyArray<InterceptedConnection>>
  /** Every message a client sent after its StartupMessage, oldest first, across connections. */
  readonly received: Effect.Effect<ReadonlyArray<InterceptedMessage>>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** the real server (it must accept TLS: the proxy always upgrades its own connection) */
  readonly target: { readonly host: string; readonly port: number }
  /** the CA that signed the real server's certificate: the proxy verifies its own leg to the server */
  readonly targetCa: string
  readonly clientSide: ClientSide
  /** remove SCRAM-SHA-256-PLUS from the server's AuthenticationSASL offer; default false */
  readonly stripScramPlus?: boolean
}

/**
 * Listens on a free port of 127.0.0.1 until the scope closes (every socket is destroyed then).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<InterceptionProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const state = new internal.RelayState({
      target: options.target,
      targetCa: options.targetCa,
      clientSide: options.clientSide,
      stripScramPlus: options.stripScramPlus ?? false
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<{ readonly server: Net.Server; readonly port: number }>((resume) => {
        const server = Net.createServer(state.serve)
        server.once("error", (error) => resume(Effect.die(error)))
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
    ).pipe(Effect.map(({ port }) => port))
    return {
      host: "127.0.0.1",
      port,
      connections: Effect.sync(() => state.connections.map((c) => ({ ...c }))),
      received: Effect.sync(() => [...state.received])
    }
  })

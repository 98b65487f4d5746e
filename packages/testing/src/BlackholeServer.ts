/**
 * A TCP server that accepts connections and never answers: the peer's connect succeeds and then
 * nothing happens, which is what a connect or TLS-handshake timeout test needs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"

/**
 * @since 0.1.0
 * @category models
 */
export interface BlackholeServer {
  readonly host: "127.0.0.1"
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: Effect.Effect<number>
}

/**
 * Listens on a free port of 127.0.0.1; every accepted socket is held open silently and destroyed
 * when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<BlackholeServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket>; readonly port: number; readonly count: { value: number } }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const count = { value: 0 }
    const server = Net.createServer((socket) => {
      count.value++
      sockets.add(socket)
      // A peer that gives up resets the socket; that is expected and not worth a crash.
      socket.on("error", () => socket.destroy())
      socket.once("close", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ server, sockets, port, count }))
    })
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
).pipe(
  Effect.map(({ count, port }): BlackholeServer => ({
    host: "127.0.0.1",
    port,
    accepted: Effect.sync(() => count.value)
  }))
)

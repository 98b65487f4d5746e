/**
 * A loopback TCP proxy in front of a real server (PostgreSQL, say) that can be told to stop
 * forwarding and to start again: the hostile peer of a statement-timeout test. While stalled,
 * nothing passes in either direction and every socket stays open — what a frozen server, a
 * dropped route or a middlebox that silently stops forwarding looks like to the client: writes
 * succeed, no answer comes, no error either. `resume` delivers what was held back, in order.
 *
 * The proxy only moves bytes, so TLS runs end to end between the client and the server: a client
 * that verifies the server certificate for `127.0.0.1` connects to the proxy's address unchanged.
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
export interface StallingProxy {
  readonly host: "127.0.0.1"
  readonly port: number
  /**
   * Stops forwarding in both directions on every connection, present and future, keeping all
   * sockets open; bytes that arrive meanwhile are held, not dropped.
   */
  readonly stall: Effect.Effect<void>
  /** Forwards again: first what was held back, in order, then everything new. */
  readonly resume: Effect.Effect<void>
  /** Client connections accepted so far. */
  readonly accepted: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** the server the proxy forwards to */
  readonly target: { readonly host: string; readonly port: number }
}

/** One direction of one connection: forwards `from` to `to`, holding chunks while stalled. */
interface Direction {
  readonly from: Net.Socket
  readonly to: Net.Socket
  readonly held: Array<Buffer>
}

interface Running {
  readonly server: Net.Server
  readonly sockets: Set<Net.Socket>
  readonly directions: Set<Direction>
  readonly port: number
  readonly state: { stalled: boolean; accepted: number }
}

const flush = (direction: Direction): void => {
  for (const chunk of direction.held.splice(0)) direction.to.write(chunk)
}

/**
 * Listens on a free port of 127.0.0.1 and forwards every accepted connection to `target`; all
 * sockets are destroyed when the scope closes. When either side of a connection closes or fails,
 * the other side is closed too.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<StallingProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Running>((resume) => {
      const sockets = new Set<Net.Socket>()
      const directions = new Set<Direction>()
      const state = { stalled: false, accepted: 0 }
      const track = (socket: Net.Socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      }
      const server = Net.createServer((client) => {
        state.accepted++
        track(client)
        const upstream = Net.connect(options.target.port, options.target.host)
        track(upstream)
        // Chunks are forwarded by hand, not with `pipe`: a pipe resumes its source on `drain` by
        // itself, which would end a stall behind the proxy's back. Backpressure from a slow side is
        // not needed for test traffic; held chunks stay in memory until `resume`.
        const pair: ReadonlyArray<Direction> = [
          { from: client, to: upstream, held: [] },
          { from: upstream, to: client, held: [] }
        ]
        for (const direction of pair) {
          directions.add(direction)
          direction.from.on("data", (chunk: Buffer) => {
            if (state.stalled) direction.held.push(chunk)
            else direction.to.write(chunk)
          })
        }
        // a peer that goes away takes its counterpart with it; errors here are expected (resets)
        const closeBoth = () => {
          for (const direction of pair) directions.delete(direction)
          client.destroy()
          upstream.destroy()
        }
        client.on("error", closeBoth)
        upstream.on("error", closeBoth)
        client.once("close", closeBoth)
        upstream.once("close", closeBoth)
      })
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, sockets, directions, port, state }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(
    Effect.map(({ directions, port, state }): StallingProxy => ({
      host: "127.0.0.1",
      port,
      stall: Effect.sync(() => {
        state.stalled = true
      }),
      resume: Effect.sync(() => {
        state.stalled = false
        for (const direction of directions) flush(direction)
      }),
      accepted: Effect.sync(() => state.accepted)
    }))
  )

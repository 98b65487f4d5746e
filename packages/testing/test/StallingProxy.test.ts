import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { StallingProxy } from "@takumi/testing"

/** A TCP server that records what it receives and can write to the one connection it accepts. */
const recordingServer: Effect.Effect<
  { readonly host: string; readonly port: number; readonly received: () => string; readonly send: (text: string) => void },
  never,
  Scope.Scope
> = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly port: number; readonly state: { received: string; socket: Net.Socket | undefined } }>(
    (resume) => {
      const state: { received: string; socket: Net.Socket | undefined } = { received: "", socket: undefined }
      const server = Net.createServer((socket) => {
        state.socket = socket
        socket.on("data", (chunk) => {
          state.received += chunk.toString()
        })
        socket.on("error", () => socket.destroy())
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0, state }))
      })
    }
  ),
  ({ server, state }) =>
    Effect.async<void>((resume) => {
      state.socket?.destroy()
      server.close(() => resume(Effect.void))
    })
).pipe(
  Effect.map(({ port, state }) => ({
    host: "127.0.0.1",
    port,
    received: () => state.received,
    send: (text: string) => {
      state.socket?.write(text)
    }
  }))
)

/** Waits (polling every 5 ms, at most 5 s) until `read` returns `expected`. */
const until = (read: () => string, expected: string) =>
  Effect.suspend(() => (read() === expected ? Effect.void : Effect.fail(read()))).pipe(
    Effect.retry({ schedule: Schedule.spaced("5 millis"), times: 1000 }),
    Effect.catchAll((last) => Effect.sync(() => assert.strictEqual(last, expected)))
  )

describe("StallingProxy", () => {
  it.live("forwards both ways; while stalled nothing passes and the sockets stay open; resume delivers what was held, in order", () =>
    Effect.gen(function*() {
      const target = yield* recordingServer
      const proxy = yield* StallingProxy.make({ target })
      assert.strictEqual(proxy.host, "127.0.0.1")
      const socket = Net.connect(proxy.port, proxy.host)
      socket.on("error", () => undefined)
      let fromServer = ""
      socket.on("data", (chunk) => {
        fromServer += chunk.toString()
      })
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))

      socket.write("a")
      yield* until(target.received, "a")
      target.send("x")
      yield* until(() => fromServer, "x")
      assert.strictEqual(yield* proxy.accepted, 1)

      yield* proxy.stall
      socket.write("b")
      target.send("y")
      // nothing to await here: that no byte arrives is the behaviour; 200 ms is ample on loopback
      yield* Effect.sleep("200 millis")
      assert.strictEqual(target.received(), "a")
      assert.strictEqual(fromServer, "x")
      assert.isFalse(socket.destroyed)

      yield* proxy.resume
      yield* until(target.received, "ab")
      yield* until(() => fromServer, "xy")
      socket.write("c")
      yield* until(target.received, "abc")

      return closed
    }).pipe(
      Effect.scoped,
      // closing the proxy's scope closes the sockets it holds
      Effect.flatMap((closed) => Effect.promise(() => closed))
    ))
})

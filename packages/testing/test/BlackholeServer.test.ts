import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Pg from "pg"
import { BlackholeServer } from "@takumi/testing"

describe("BlackholeServer", () => {
  it.live("accepts a TCP connection and never answers, so a pg connect times out", () =>
    Effect.gen(function*() {
      const hole = yield* BlackholeServer.make
      expect(hole.host).toBe("127.0.0.1")
      const outcome = yield* Effect.promise(async () => {
        const client = new Pg.Client({ host: hole.host, port: hole.port, user: "u", database: "d", connectionTimeoutMillis: 200 })
        client.on("error", () => undefined)
        return client.connect().then(() => "connected", (error: Error) => error.message)
      })
      expect(outcome).toContain("timeout")
      expect(yield* hole.accepted).toBe(1)
    }).pipe(Effect.scoped))

  it.live("closes the sockets it holds when its scope closes", () =>
    Effect.gen(function*() {
      const { closed, received } = yield* Effect.scoped(Effect.gen(function*() {
        const hole = yield* BlackholeServer.make
        const socket = Net.connect(hole.port, hole.host)
        let bytes = 0
        socket.on("data", (chunk) => {
          bytes += chunk.length
        })
        socket.on("error", () => undefined)
        const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
        yield* Effect.promise(() => new Promise<void>((resolve) => socket.once("connect", () => resolve())))
        socket.write("hello?")
        return { closed, received: () => bytes }
      }))
      yield* Effect.promise(() => closed)
      expect(received()).toBe(0)
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Pg from "pg"
import { HostilePgServer, TestPki } from "@takumi/testing"

const PASSWORD = "hostile-Pa55word-1c2d"

/** A plain `pg` client (pg 8's own behaviour, no policy): connects and reports how it ended. */
const connect = (
  peer: HostilePgServer.HostilePgServer,
  config: Omit<Pg.ClientConfig, "host" | "port"> = {}
) =>
  Effect.promise(async () => {
    const client = new Pg.Client({ host: peer.host, port: peer.port, user: "app", database: "app", password: PASSWORD, ...config })
    client.on("error", () => undefined)
    return client.connect().then(
      async () => {
        await client.end()
        return "connected"
      },
      (error: Error) => error.message
    )
  })

describe("HostilePgServer", () => {
  it.scoped("asks for a cleartext password over TLS with the given certificate and records what pg sends", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.make
      const peer = yield* HostilePgServer.make({ request: "cleartext", certificate: pki.server })
      const outcome = yield* connect(peer, { ssl: { ca: pki.ca.certPem, rejectUnauthorized: true } })
      expect(outcome).toContain("password authentication failed")
      const [connection] = yield* peer.connections
      expect(connection?.tls).toBe(true)
      expect(connection?.startup["user"]).toBe("app")
      const received = yield* peer.received
      expect(received.map((m) => [m.kind, Buffer.from(m.body).toString("utf8")])).toEqual([["PasswordMessage", `${PASSWORD}\0`]])
    }))

  it.scoped("asks for an MD5 hash without TLS when given no certificate", () =>
    Effect.gen(function*() {
      const peer = yield* HostilePgServer.make({ request: "md5" })
      yield* connect(peer)
      const received = yield* peer.received
      expect(received.map((m) => m.kind)).toEqual(["PasswordMessage"])
      expect(Buffer.from(received[0]?.body ?? []).toString("utf8")).toMatch(/^md5[0-9a-f]{32}\0$/)
      expect((yield* peer.connections)[0]?.tls).toBe(false)
    }))

  it.scoped("offers SCRAM-SHA-256-PLUS and records the mechanism of the SASLInitialResponse", () =>
    Effect.gen(function*() {
      const pki = yield* TestPki.make
      const peer = yield* HostilePgServer.make({ request: "scram-sha-256-plus", certificate: pki.server })
      yield* connect(peer, { ssl: { ca: pki.ca.certPem }, enableChannelBinding: true })
      const received = yield* peer.received
      expect(received.map((m) => [m.kind, m.mechanism])).toEqual([["SASLInitialResponse", "SCRAM-SHA-256-PLUS"]])
    }))

  it.scoped("lets the client in without a password for `none`, then records its Terminate", () =>
    Effect.gen(function*() {
      const peer = yield* HostilePgServer.make({ request: "none" })
      expect(yield* connect(peer)).toBe("connected")
      expect((yield* peer.received).map((m) => m.kind)).toEqual(["Terminate"])
    }))
})

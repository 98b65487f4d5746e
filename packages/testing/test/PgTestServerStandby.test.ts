import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Pg from "pg"
import { PgTestServer, TestPki } from "@takumi/testing"

class Pair extends Context.Tag("test/PgTestServerStandby/Pair")<Pair, {
  readonly pki: TestPki.TestPki
  readonly primary: PgTestServer.PgTestServer
  readonly standby: PgTestServer.PgTestServer
}>() {}

const PairLive = Layer.scoped(
  Pair,
  Effect.gen(function*() {
    const pki = yield* TestPki.make
    const primary = yield* PgTestServer.make({ certificate: pki.server })
    yield* primary.createRole({ name: "reader", password: "reader-password" })
    yield* primary.query("create table items (id int primary key, name text)")
    const standby = yield* PgTestServer.makeStandby(primary)
    return { pki, primary, standby }
  })
)

/** Polls the standby (bounded) until the query returns what the primary wrote. */
const eventually = <A>(effect: Effect.Effect<A, PgTestServer.PgTestServerError>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: done }),
    Effect.timeout("20 seconds"),
    Effect.flatMap(() => effect)
  )

const itemNames = (server: PgTestServer.PgTestServer) =>
  Effect.map(server.query("select name from items order by id"), (rows) => rows.map((row) => row["name"]))

layer(PairLive, { timeout: 90_000, excludeTestServices: true })("PgTestServer standby", (it) => {
  it.effect("is a hot standby in recovery, streaming from the primary", () =>
    Effect.gen(function*() {
      const { primary, standby } = yield* Pair
      expect(standby.port).not.toBe(primary.port)
      expect(yield* standby.query("select pg_is_in_recovery() as recovery")).toEqual([{ recovery: true }])
      expect(yield* primary.query("select pg_is_in_recovery() as recovery")).toEqual([{ recovery: false }])
      const [receiver] = yield* standby.query("select status from pg_stat_wal_receiver")
      expect(receiver?.["status"]).toBe("streaming")
    }))

  it.effect("replays the primary's writes", () =>
    Effect.gen(function*() {
      const { primary, standby } = yield* Pair
      yield* primary.query("insert into items values (1, 'one')")
      expect(yield* eventually(itemNames(standby), (names) => names.includes("one"))).toContain("one")
    }))

  it.effect("refuses writes with 25006 (read-only transaction)", () =>
    Effect.gen(function*() {
      const { standby } = yield* Pair
      const error = yield* Effect.flip(standby.query("insert into items values (99, 'nope')"))
      expect(error.message).toContain("25006")
    }))

  it.effect("serves TLS reads to a verifying client with the primary's certificate and roles", () =>
    Effect.gen(function*() {
      const { pki, standby } = yield* Pair
      const row = yield* Effect.promise(async () => {
        const client = new Pg.Client({
          host: standby.host,
          port: standby.port,
          user: "reader",
          password: "reader-password",
          database: "postgres",
          ssl: { ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" }
        })
        client.on("error", () => undefined)
        try {
          await client.connect()
          return (await client.query("select ssl, pg_is_in_recovery() as recovery from pg_stat_ssl where pid = pg_backend_pid()")).rows[0]
        } finally {
          await client.end().catch(() => undefined)
        }
      })
      expect(row).toEqual({ ssl: true, recovery: true })
    }))

  it.effect("keeps serving reads while the primary is paused and streams again once it resumes", () =>
    Effect.gen(function*() {
      const { primary, standby } = yield* Pair
      yield* primary.query("insert into items values (2, 'two')")
      yield* eventually(itemNames(standby), (names) => names.includes("two"))
      yield* primary.pause
      expect(yield* itemNames(standby)).toEqual(["one", "two"])
      yield* primary.resume
      yield* primary.query("insert into items values (3, 'three')")
      expect(yield* eventually(itemNames(standby), (names) => names.includes("three"))).toEqual(["one", "two", "three"])
    }))
})

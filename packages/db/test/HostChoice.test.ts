/**
 * Several hosts in DB_HOST against real servers: a primary and its streaming hot standby
 * (`PgTestServer.makeStandby`), plus a server whose certificate names another host. Which server
 * answered is checked with `pg_is_in_recovery()` and `inet_server_port()`.
 */
import { expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { DbSettings, ServerAddress, TargetSessionAttrs } from "@takumi/config"
import { PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import { NoSuitableHost } from "../src/DbError.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import { configLayer, makeTestSecrets, makeLogCapture, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-hosts-7c21"

class Env extends Context.Tag("hosts-test/Env")<Env, {
  readonly pki: TestPki.TestPki
  readonly primary: PgTestServer.PgTestServer
  readonly standby: PgTestServer.PgTestServer
  /** a primary of its own whose certificate names only wrong.example.com */
  readonly misnamed: PgTestServer.PgTestServer
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server: primary } = yield* TestDatabase.make({
      roles: [{ name: "app", password: APP_PASSWORD }],
      database: "app"
    })
    const standby = yield* PgTestServer.makeStandby(primary)
    const misnamed = yield* PgTestServer.make({ certificate: pki.wrongHost, ca: pki.ca.certPem })
    yield* misnamed.createRole({ name: "app", password: APP_PASSWORD })
    yield* misnamed.createDatabase("app", "app")
    return { pki, primary, standby, misnamed }
  }).pipe(Effect.orDie)
)

const address = (server: PgTestServer.PgTestServer): ServerAddress => ({ host: server.host, port: server.port })

const settingsFor = (
  env: Context.Tag.Service<Env>,
  servers: ReadonlyArray<PgTestServer.PgTestServer>,
  targetSessionAttrs: TargetSessionAttrs
): DbSettings => makeSettings(env.primary, env.pki, { hosts: servers.map(address), targetSessionAttrs })

const clientLayer = (settings: DbSettings) =>
  Layer.unwrapScoped(Effect.map(makeTestSecrets({ DB_PASSWORD: APP_PASSWORD }), (secrets) =>
    SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets.layer)))))

const whoAnswers = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ recovery: boolean; port: number }>`SELECT pg_is_in_recovery() AS recovery, inet_server_port() AS port`,
    (rows) => ({ recovery: rows[0]?.recovery, port: Number(rows[0]?.port) })
  ))

layer(EnvLive, { timeout: 120_000, excludeTestServices: true })("several hosts (DB_HOST list)", (it) => {
  it.effect("read-write skips the standby listed first and connects to the primary", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const logs = yield* makeLogCapture
      const answers = yield* Effect.all([whoAnswers, whoAnswers]).pipe(
        Effect.provide(clientLayer(settingsFor(env, [env.standby, env.primary], "read-write"))),
        Effect.provide(logs.layer)
      )
      expect(answers).toEqual([{ recovery: false, port: env.primary.port }, { recovery: false, port: env.primary.port }])
      // the startup log names the host the verified connection went to, not the first listed
      const verified = (yield* logs.lines).filter((l) => l.text.includes("PostgreSQL connection verified"))
      expect(verified.map((l) => l.text.includes(`port=${env.primary.port}`))).toEqual([true])
    }))

  it.effect("standby and prefer-standby connect to the standby listed after the primary", () =>
    Effect.gen(function*() {
      const env = yield* Env
      for (const attrs of ["standby", "prefer-standby"] as const) {
        const answer = yield* whoAnswers.pipe(
          Effect.provide(clientLayer(settingsFor(env, [env.primary, env.standby], attrs)))
        )
        expect(answer).toEqual({ recovery: true, port: env.standby.port })
      }
    }))

  it.effect("prefer-standby takes the primary when no standby answers; any takes the first host", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const preferred = yield* whoAnswers.pipe(
        Effect.provide(clientLayer(settingsFor(env, [env.primary], "prefer-standby")))
      )
      expect(preferred).toEqual({ recovery: false, port: env.primary.port })
      const first = yield* whoAnswers.pipe(
        Effect.provide(clientLayer(settingsFor(env, [env.standby, env.primary], "any")))
      )
      expect(first).toEqual({ recovery: true, port: env.standby.port })
    }))

  it.effect("checks each certificate against the host it was reached at: a writable server whose certificate names another host is never used", () =>
    Effect.gen(function*() {
      const env = yield* Env
      // 127.0.0.1 for every server: the misnamed one's certificate names only wrong.example.com
      const exit = yield* Effect.exit(
        whoAnswers.pipe(Effect.provide(clientLayer(settingsFor(env, [env.misnamed, env.standby], "read-write"))))
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      const error = Option.getOrThrow(failure)
      expect(error).toBeInstanceOf(NoSuitableHost)
      const seen = error instanceof NoSuitableHost ? error.seen : []
      expect(seen).toHaveLength(2)
      expect(seen[0]).toContain(`127.0.0.1:${env.misnamed.port} failed`)
      expect(seen[0]).toMatch(/wrong\.example\.com|altnames|Hostname\/IP does not match/i)
      expect(seen[1]).toBe(`127.0.0.1:${env.standby.port} is a hot standby`)
      expect(error.message).toContain("DB_TARGET_SESSION_ATTRS=read-write")
    }))
})

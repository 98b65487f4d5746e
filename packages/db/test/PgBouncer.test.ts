/**
 * SecureSqlClient behind a real PgBouncer 1.18 (PgBouncerTestServer) in transaction pooling mode,
 * TLS on both legs (client → PgBouncer verified with the test CA and host name, PgBouncer →
 * PostgreSQL with server_tls_sslmode = verify-full) and SCRAM, in front of a real PostgreSQL 15.
 */
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { DbSettings } from "@takumi/config"
import { PgBouncerTestServer, PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import * as Idempotent from "../src/Idempotent.js"
import * as SecureSqlClient from "../src/SecureSqlClient.js"
import { configLayer, makeTestSecrets, makeLogCapture, makeSettings } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-bouncer-91d2"
const BARE_PASSWORD = "bare-Pa55word-bouncer-5c07"

class Env extends Context.Tag("pgbouncer-test/Env")<Env, {
  readonly pki: TestPki.TestPki
  readonly server: PgTestServer.PgTestServer
  readonly bouncer: PgBouncerTestServer.PgBouncerTestServer
}>() {}

const EnvLive = Layer.scoped(
  Env,
  Effect.gen(function*() {
    const { pki, server } = yield* TestDatabase.make({
      roles: [{ name: "app", password: APP_PASSWORD }, { name: "bare", password: BARE_PASSWORD }],
      database: "app"
    })
    // behind PgBouncer the statement bounds are the server's: DB_STATEMENT_TIMEOUT and
    // DB_IDLE_IN_TRANSACTION_TIMEOUT keep their defaults (30000, 60000) and the role matches them
    yield* server.query("ALTER ROLE app SET statement_timeout = 30000")
    yield* server.query("ALTER ROLE app SET idle_in_transaction_session_timeout = 60000")
    const bouncer = yield* PgBouncerTestServer.make({
      server,
      certificate: pki.server,
      serverCa: pki.ca.certPem,
      users: ["app", "bare"],
      defaultPoolSize: 2
    })
    return { pki, server, bouncer }
  }).pipe(Effect.orDie)
)

const bouncerSettings = (env: Context.Tag.Service<Env>, overrides: Partial<DbSettings> = {}): DbSettings =>
  makeSettings({ host: "localhost", port: env.bouncer.port }, env.pki, { pooler: "pgbouncer", ...overrides })

const clientLayer = (settings: DbSettings, password = APP_PASSWORD) =>
  Layer.unwrapScoped(Effect.map(
    makeTestSecrets({ DB_PASSWORD: password }),
    (secrets) => SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets.layer)))
  ))

const withSql = <A, E>(
  settings: (env: Context.Tag.Service<Env>) => DbSettings,
  body: (sql: SqlClient.SqlClient, env: Context.Tag.Service<Env>) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const env = yield* Env
    return yield* Effect.flatMap(SqlClient.SqlClient, (sql) => body(sql, env)).pipe(
      Effect.provide(clientLayer(settings(env)))
    )
  })

/** Terminates, on the server, the backend PgBouncer runs a statement containing `marker` on. */
const terminateWhenRunning = (server: PgTestServer.PgTestServer, marker: string) =>
  server.query(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
     WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
    [marker]
  ).pipe(
    Effect.filterOrFail((rows) => rows.length > 0, () => "not running yet"),
    Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 500 }),
    Effect.orDie
  )

layer(EnvLive, { timeout: 90_000, excludeTestServices: true })("SecureSqlClient behind PgBouncer", (it) => {
  it.effect("runs parameterised statements as unnamed statements: nothing stays prepared on the server", () =>
    withSql(bouncerSettings, (sql) =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) {
          const rows = yield* sql<{ n: number; s: string }>`SELECT ${i}::int + 1 AS n, ${"x" + i}::text AS s`
          expect(rows).toEqual([{ n: i + 1, s: `x${i}` }])
        }
        // a named statement would stay in pg_prepared_statements of the server connection
        // (and collide on the next client's: 42P05); the unnamed one leaves nothing
        expect(yield* sql`SELECT count(*)::int AS n FROM pg_prepared_statements`).toEqual([{ n: 0 }])
      })))

  it.effect("commits and rolls back transactions", () =>
    withSql(bouncerSettings, (sql) =>
      Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS bouncer_tx (id int PRIMARY KEY)`
        yield* sql.withTransaction(sql`INSERT INTO bouncer_tx VALUES (${1})`)
        const failed = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO bouncer_tx VALUES (${2})`
          yield* sql`INSERT INTO bouncer_tx VALUES (${1})`
        })))
        expect(Exit.isFailure(failed)).toBe(true)
        expect(yield* sql`SELECT id FROM bouncer_tx ORDER BY id`).toEqual([{ id: 1 }])
      })))

  it.effect("runs a statement marked idempotent again when PgBouncer's server connection is lost under it", () =>
    withSql(bouncerSettings, (sql, env) =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const statement = Effect.zipRight(
          Ref.update(runs, (n) => n + 1),
          sql<{ answer: number }>`SELECT 42 AS answer, pg_sleep(0.3), 'marker-bouncer-idem'`
        )
        const fiber = yield* Effect.fork(Idempotent.retry(statement))
        yield* terminateWhenRunning(env.server, "marker-bouncer-idem")
        const rows = yield* Fiber.join(fiber)
        expect(rows[0]?.answer).toBe(42)
        expect(yield* Ref.get(runs)).toBe(2)
      })))

  it.effect("fails an unmarked statement whose server connection is lost, as a connection loss, run once", () =>
    withSql(bouncerSettings, (sql, env) =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        const statement = Effect.zipRight(Ref.update(runs, (n) => n + 1), sql`SELECT pg_sleep(2), 'marker-bouncer-plain'`)
        const fiber = yield* Effect.fork(statement)
        yield* terminateWhenRunning(env.server, "marker-bouncer-plain")
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        expect(Idempotent.isConnectionLost(Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined)).toBe(true)
        expect(yield* Ref.get(runs)).toBe(1)
      })))

  it.effect("refuses PgClient.listen at once (transaction mode would never deliver a notification)", () =>
    Effect.gen(function*() {
      const env = yield* Env
      const error = yield* Effect.flatMap(PgClient.PgClient, (pg) => Stream.runHead(pg.listen("jobs"))).pipe(
        Effect.provide(clientLayer(bouncerSettings(env))),
        Effect.flip
      )
      expect(error).toBeInstanceOf(SqlError)
      expect(error.message).toContain("LISTEN jobs cannot work through PgBouncer in transaction pooling mode")
    }))

  it.effect("the server enforces the statement bound set on the role (not sent by the client)", () =>
    withSql((env) => bouncerSettings(env, { queryTimeout: Duration.zero }), (sql) =>
      Effect.gen(function*() {
        expect(yield* sql`SHOW statement_timeout`).toEqual([{ statement_timeout: "30s" }])
      })))

  describe("startup", () => {
    it.effect("checks both legs: our socket to PgBouncer and pg_stat_ssl of PgBouncer's connection to the server", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const logs = yield* makeLogCapture
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
          Effect.provide(clientLayer(bouncerSettings(env))),
          Effect.provide(logs.layer)
        )
        const lines = yield* logs.lines
        expect(lines.find((l) => l.text.includes("PostgreSQL connection verified"))?.text).toMatch(/tls=.?TLSv1\.3/)
        expect(lines.filter((l) => l.level === "WARN")).toEqual([])
      }))

    it.effect("refuses in production a PgBouncer whose leg to the server is plaintext (pg_stat_ssl: TlsNotNegotiated)", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const error = yield* Effect.scoped(Effect.gen(function*() {
          // a server that also takes plaintext (hba `host`), behind a PgBouncer with server_tls_sslmode = disable
          const server = yield* PgTestServer.make({ certificate: env.pki.server, hba: [{ type: "host", method: "scram-sha-256" }] })
          yield* server.createRole({ name: "app", password: APP_PASSWORD })
          yield* server.createDatabase("app", "app")
          yield* server.query("ALTER ROLE app SET statement_timeout = 30000")
          yield* server.query("ALTER ROLE app SET idle_in_transaction_session_timeout = 60000")
          const plaintextLeg = yield* PgBouncerTestServer.make({
            server,
            certificate: env.pki.server,
            serverCa: env.pki.ca.certPem,
            users: ["app"],
            serverTlsMode: "disable"
          })
          const settings = makeSettings({ host: "localhost", port: plaintextLeg.port }, env.pki, {
            pooler: "pgbouncer",
            environment: "production"
          })
          return yield* Effect.flip(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(Effect.provide(clientLayer(settings)))
          )
        }))
        expect(error).toMatchObject({ _tag: "InsecureServer" })
        const findings = error._tag === "InsecureServer" ? error.findings : []
        // our own socket is TLS: only the server leg's pg_stat_ssl row is plaintext
        expect(findings).toEqual([{ rule: "TlsNotNegotiated", detail: expect.stringContaining("socket: TLS, pg_stat_ssl.ssl: false") }])
      }))

    it.effect("without DB_POOLER=pgbouncer, PgBouncer's 08P01 refusal is ConnectionRejected naming DB_POOLER", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const error = yield* Effect.flip(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
            Effect.provide(clientLayer(bouncerSettings(env, { pooler: "none" })))
          )
        )
        expect(error).toMatchObject({ _tag: "ConnectionRejected", code: "08P01" })
        expect(error.message).toContain("DB_POOLER=pgbouncer")
      }))

    it.effect("refuses in production a role whose server bounds differ from DB_STATEMENT_TIMEOUT (StatementBoundsNotApplied)", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const settings = bouncerSettings(env, { environment: "production", user: "bare" })
        const error = yield* Effect.flip(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
            Effect.provide(clientLayer(settings, BARE_PASSWORD))
          )
        )
        expect(error).toMatchObject({ _tag: "InsecureServer" })
        const rules = error._tag === "InsecureServer" ? error.findings.map((f) => f.rule) : []
        expect(rules).toEqual(["StatementBoundsNotApplied", "StatementBoundsNotApplied"])
        expect(error.message).toContain("ALTER ROLE bare SET statement_timeout = 30000")
      }))

    it.effect("warns outside production about a bound the server does not enforce", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const logs = yield* makeLogCapture
        const settings = bouncerSettings(env, { user: "bare", idleInTransactionTimeout: Duration.zero })
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
          Effect.provide(clientLayer(settings, BARE_PASSWORD)),
          Effect.provide(logs.layer)
        )
        const warnings = (yield* logs.lines).filter((l) => l.level === "WARN").map((l) => l.text)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toContain("DB_STATEMENT_TIMEOUT=30000 but the server runs with statement_timeout = 0 ms")
      }))
  })

  describe("channel binding (measured)", () => {
    it.effect("prefer: PgBouncer offers plain SCRAM-SHA-256 only, and the connection uses it", () =>
      withSql((env) => bouncerSettings(env, { auth: { channelBinding: "prefer", requireAuth: ["scram-sha-256"] } }), (sql) =>
        Effect.map(sql<{ one: number }>`SELECT 1 AS one`, (rows) => expect(rows).toEqual([{ one: 1 }]))))

    it.effect("require: refused before anything derived from the password is sent", () =>
      Effect.gen(function*() {
        const env = yield* Env
        const settings = bouncerSettings(env, { auth: { channelBinding: "require", requireAuth: ["scram-sha-256"] } })
        const error = yield* Effect.flip(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(Effect.provide(clientLayer(settings)))
        )
        expect(error).toMatchObject({
          _tag: "AuthenticationMethodRefused",
          rule: "ChannelBindingRequired",
          offered: ["SCRAM-SHA-256"]
        })
      }))
  })
})

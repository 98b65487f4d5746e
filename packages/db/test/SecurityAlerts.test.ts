/**
 * SecurityAlerts: the alert rules on TestClock (sliding window of failed authentications, slow
 * statements, stale secrets, logging and counting), then the alerts raised by SecureSqlClient
 * against a real PostgreSQL 15 server (PgTestServer, TLS, test PKI): wrong passwords, a slow
 * `pg_sleep` (one with a card number hidden from regular expressions), a pool near exhaustion, a
 * plaintext connection and a server without TLS. The real-server cases run with libpg-query or
 * without it, and check what each shows (slowQueryText.test.ts covers both in detail).
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { inspect } from "node:util"
import type { DbSettings } from "@takumi/config"
import { SecretMetrics, SecretsBackend } from "@takumi/secrets"
import { PgTestServer, TestDatabase } from "@takumi/testing"
import type { ConnectTarget } from "../src/internal/classify.js"
import * as Monitor from "../src/internal/monitor.js"
import * as SlowQueryText from "../src/internal/slowQueryText.js"
import { DbMetrics, SecurePool, SecureSqlClient, SecurityAlerts } from "../src/index.js"
import { configLayer, type TestSecrets, makeTestSecrets, makeLogCapture, makeSettings, reloadFrom, tlsBaseline } from "./fixtures.js"

const APP_PASSWORD = "app-Pa55word-alerts-41c9"
const VICTIM_PASSWORD = "victim-Pa55word-9e07"
const CHANGED_PASSWORD = "changed-Pa55word-3a5f"
const PARAMETER = "param-value-never-in-alerts-77d2"
const CARD = "4111111111111111"

const target: ConnectTarget = {
  host: "db.internal",
  port: 5432,
  user: "app",
  database: "app",
  connectTimeoutMillis: 2000,
  poolMax: 10
}

const unitSettings = (alerts: Partial<DbSettings["alerts"]> = {}): DbSettings => {
  const base = makeSettings({ host: target.host, port: target.port }, { ca: { certPath: "/nonexistent/ca.pem" } })
  return { ...base, alerts: { ...base.alerts, ...alerts } }
}

/**
 * A monitor and a subscription to its alerts, for the rule tests. The stale-secret check samples
 * once a day unless asked (every sample is a TestClock wake-up, which costs real milliseconds).
 * SlowQuery texts are the fallback's (no libpg-query), whether the package is installed or not.
 */
const monitored = (settings: DbSettings = unitSettings(), sampleInterval = Duration.days(1)) =>
  Effect.gen(function*() {
    const alerts = yield* SecurityAlerts.make
    const subscription = yield* alerts.subscribe
    const monitor = yield* Monitor.make(settings, alerts, { sampleInterval, lexer: Effect.succeedNone })
    const received = Effect.map(Queue.takeAll(subscription), Chunk.toReadonlyArray)
    return { alerts, monitor, received }
  })

const failAuthEvery = (monitor: Monitor.MonitorService, times: number, every: Duration.DurationInput) =>
  Effect.forEach(
    Array.from({ length: times }, (_, i) => i),
    (i) => (i === 0 ? Effect.void : TestClock.adjust(every)).pipe(Effect.zipRight(monitor.authenticationFailed(target))),
    { discard: true }
  )

describe("SecurityAlerts rules", () => {
  it.scoped("raises RepeatedAuthenticationFailures once for 5 failed authentications within 5 minutes", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored()
      yield* failAuthEvery(monitor, 5, Duration.minutes(1))
      const alerts = yield* received
      assert.strictEqual(alerts.length, 1)
      const alert = alerts[0]
      assert(alert instanceof SecurityAlerts.RepeatedAuthenticationFailures)
      assert.strictEqual(alert.failures, 5)
      assert.strictEqual(alert.windowMillis, Duration.toMillis(Duration.minutes(5)))
      assert.strictEqual(alert.user, "app")
    }))

  it.scoped("raises nothing for 4 failed authentications within the window", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored()
      yield* failAuthEvery(monitor, 4, Duration.seconds(10))
      assert.deepStrictEqual(yield* received, [])
    }))

  it.scoped("raises nothing for 5 failures spread over more than the window (the sliding window drops the oldest)", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored()
      // at 0, 75, 150, 225 and 300 s: when the fifth arrives the first is 5 min old and out
      yield* failAuthEvery(monitor, 5, Duration.seconds(75))
      assert.deepStrictEqual(yield* received, [])
      // one more inside the window makes five again
      yield* TestClock.adjust(Duration.seconds(1))
      yield* monitor.authenticationFailed(target)
      assert.strictEqual((yield* received).length, 1)
    }))

  it.scoped("starts counting afresh after an alert: the sixth failure of a burst raises nothing more", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored()
      yield* failAuthEvery(monitor, 6, Duration.seconds(1))
      assert.strictEqual((yield* received).length, 1)
    }))

  it.scoped("follows the configured threshold and window", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored(
        unitSettings({ failedAuthThreshold: 3, failedAuthWindow: Duration.seconds(30) })
      )
      // at 0, 20 and 40 s: the 30 s window never holds three
      yield* failAuthEvery(monitor, 3, Duration.seconds(20))
      assert.deepStrictEqual(yield* received, [])
      yield* TestClock.adjust(Duration.minutes(1))
      yield* failAuthEvery(monitor, 3, Duration.seconds(5))
      const alerts = yield* received
      assert.strictEqual(alerts.length, 1)
      assert(alerts[0] instanceof SecurityAlerts.RepeatedAuthenticationFailures)
      assert.strictEqual(alerts[0].failures, 3)
    }))

  it.scoped("raises SlowQuery only above the threshold, with neither the statement's literals nor its parameters", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored(unitSettings({ slowQuery: Duration.millis(100) }))
      yield* monitor.statementDone(target, 99e6, "SELECT 1")
      assert.deepStrictEqual(yield* received, [])
      yield* monitor.statementDone(target, 250e6, {
        text: "ALTER ROLE app PASSWORD 'hunter2-literal'",
        values: [PARAMETER]
      })
      const alerts = yield* received
      assert.strictEqual(alerts.length, 1)
      const alert = alerts[0]
      assert(alert instanceof SecurityAlerts.SlowQuery)
      assert.match(alert.statement, /^ALTER … \(fingerprint [0-9a-f]{16}; text withheld: install libpg-query@\^18\.1\.5 /)
      assert.strictEqual(alert.durationMillis, 250)
      assert.strictEqual(alert.thresholdMillis, 100)
      const shown = `${alert.message} ${inspect(alert)} ${JSON.stringify(alert)}`
      expect(shown).not.toContain("hunter2")
      expect(shown).not.toContain(PARAMETER)
    }))

  it.scoped("gives repeats of a slow statement one fingerprint, and the statement with another literal another", () =>
    Effect.gen(function*() {
      const { monitor, received } = yield* monitored(unitSettings({ slowQuery: Duration.millis(100) }))
      const text = `SELECT * FROM cards WHERE pan = '${CARD}'`
      yield* monitor.statementDone(target, 250e6, text)
      yield* monitor.statementDone(target, 250e6, text)
      yield* monitor.statementDone(target, 250e6, text.replace(CARD, "4111111111111112"))
      const [first, again, other] = (yield* received).map((alert) => alert instanceof SecurityAlerts.SlowQuery ? alert.statement : "")
      assert.isString(first)
      assert.strictEqual(again, first)
      assert.notStrictEqual(other, first)
    }))

  it.scoped("raises SecretServedStale when the real secrets cache serves a stale value (a sealed Vault double past the TTL)", () =>
    Effect.gen(function*() {
      const base = unitSettings()
      const settings: DbSettings = { ...base, secrets: { ...base.secrets, backend: "vault" } }
      const { received } = yield* monitored(settings, Monitor.sampleInterval)
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD }, {
        cacheTtl: Duration.minutes(1),
        maxStale: Duration.minutes(10)
      })
      const password = Effect.flatMap(SecretsBackend, (backend) => backend.get("DB_PASSWORD")).pipe(
        Effect.map(Redacted.value),
        Effect.provide(secrets.layer)
      )
      assert.strictEqual(yield* password, APP_PASSWORD)
      // fresh values raise nothing
      yield* TestClock.adjust(Monitor.sampleInterval)
      assert.deepStrictEqual(yield* received, [])
      // past the TTL Vault is sealed (503): the cache serves the expired value, within SECRETS_MAX_STALE
      yield* TestClock.adjust("2 minutes")
      yield* secrets.vault.fault("sealed")
      assert.strictEqual(yield* password, APP_PASSWORD)
      assert.strictEqual(yield* secrets.gets, 2)
      yield* TestClock.adjust(Monitor.sampleInterval)
      const alerts = yield* received
      assert.strictEqual(alerts.length, 1)
      assert(alerts[0] instanceof SecurityAlerts.SecretServedStale)
      assert.strictEqual(alerts[0].served, 1)
      assert.strictEqual(alerts[0].backend, "vault")
      expect(inspect(alerts[0])).not.toContain(APP_PASSWORD)
      // seen once: the next sample raises nothing more
      yield* TestClock.adjust(Monitor.sampleInterval)
      assert.deepStrictEqual(yield* received, [])
    }))

  it.scoped("raises VaultTokenExpiring when the Vault token lifecycle counts a failure near the token's end", () =>
    Effect.gen(function*() {
      const { received } = yield* monitored(unitSettings(), Monitor.sampleInterval)
      yield* Metric.incrementBy(SecretMetrics.vaultTokenExpiring, 2)
      yield* TestClock.adjust(Monitor.sampleInterval)
      const alerts = yield* received
      assert.strictEqual(alerts.length, 1)
      assert(alerts[0] instanceof SecurityAlerts.VaultTokenExpiring)
      assert.strictEqual(alerts[0].failures, 2)
      expect(alerts[0].message).toContain("VAULT_AUTH_METHOD")
      yield* TestClock.adjust(Monitor.sampleInterval)
      assert.deepStrictEqual(yield* received, [])
    }))

  it.scoped("logs every alert as a warning and counts it by kind", () =>
    Effect.gen(function*() {
      const logs = yield* makeLogCapture
      const alerts = yield* SecurityAlerts.make
      const counter = Metric.tagged(DbMetrics.securityAlerts, DbMetrics.kindTag, "PoolNearExhaustion")
      const before = (yield* Metric.value(counter)).count
      yield* alerts.publish(
        new SecurityAlerts.PoolNearExhaustion({ host: "h", port: 1, active: 9, max: 10, waiting: 0, ratio: 0.9 })
      ).pipe(Effect.provide(logs.layer))
      assert.strictEqual((yield* Metric.value(counter)).count, before + 1)
      const lines = yield* logs.lines
      assert.strictEqual(lines.length, 1)
      assert.strictEqual(lines[0]?.level, "WARN")
      expect(lines[0]?.text).toContain("9/10 connections in use")
      expect(lines[0]?.text).toContain("alert='PoolNearExhaustion'")
    }))

  it.scopedLive("delivers alerts to every running stream", () =>
    Effect.gen(function*() {
      const alerts = yield* SecurityAlerts.make
      const alert = new SecurityAlerts.SecretServedStale({ backend: "vault", served: 2 })
      const first = yield* alerts.subscribe
      const fiber = yield* Stream.runHead(alerts.stream).pipe(Effect.fork)
      // publish until the stream's subscription is live (it subscribes when it starts running)
      const head = yield* alerts.publish(alert).pipe(
        Effect.zipRight(Fiber.poll(fiber)),
        Effect.repeat({ schedule: Schedule.spaced("1 millis"), until: Option.isSome }),
        Effect.flatMap(() => Fiber.join(fiber))
      )
      assert.deepStrictEqual(head, Option.some(alert))
      assert.deepStrictEqual(yield* Queue.take(first), alert)
    }))
})

const database = TestDatabase.layer({
  roles: [
    { name: "app", password: APP_PASSWORD },
    { name: "victim", password: VICTIM_PASSWORD }
  ],
  database: "app"
})

const configure = reloadFrom(tlsBaseline)

/** Builds the client in the current scope and subscribes to its alerts before anything else runs. */
const client = (settings: DbSettings, secrets: TestSecrets) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets.layer)))
    ).pipe(Effect.orDie)
    const alerts = Context.get(context, SecurityAlerts.SecurityAlerts)
    const subscription = yield* alerts.subscribe
    return { sql: Context.get(context, SqlClient.SqlClient), pool: Context.get(context, SecurePool.SecurePool), subscription }
  })

/** The next alert of a kind, waiting for it (bounded by the test's timeout). */
const nextOf = <K extends SecurityAlerts.SecurityAlert["_tag"]>(
  subscription: Queue.Dequeue<SecurityAlerts.SecurityAlert>,
  kind: K
): Effect.Effect<Extract<SecurityAlerts.SecurityAlert, { readonly _tag: K }>> =>
  Effect.flatMap(Queue.take(subscription), (alert): Effect.Effect<Extract<SecurityAlerts.SecurityAlert, { readonly _tag: K }>> =>
    isKind(alert, kind) ? Effect.succeed(alert) : nextOf(subscription, kind))

const isKind = <K extends SecurityAlerts.SecurityAlert["_tag"]>(
  alert: SecurityAlerts.SecurityAlert,
  kind: K
): alert is Extract<SecurityAlerts.SecurityAlert, { readonly _tag: K }> => alert._tag === kind

const shown = (alert: SecurityAlerts.SecurityAlert): string =>
  `${alert.message} ${inspect(alert, { depth: 5, showHidden: true })} ${JSON.stringify(alert)}`

/**
 * Checks a SlowQuery statement against what this installation shows: PostgreSQL's scanner's
 * reading (`scanned`) when libpg-query is installed, else the fallback's first keyword and fingerprint.
 */
const expectStatement = (statement: string, scanned: string) =>
  Effect.map(
    SlowQueryText.loadLexer,
    Option.match({
      onSome: () => assert.strictEqual(statement, scanned),
      onNone: () => {
        const keyword = scanned.split(" ")[0] ?? ""
        assert.match(statement, new RegExp(`^${keyword} … \\(fingerprint [0-9a-f]{16}; text withheld: install libpg-query@`))
      }
    })
  )

const ourBackends = (server: PgTestServer.PgTestServer, user: string) =>
  server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1", [user]).pipe(
    Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)),
    Effect.orDie
  )

const untilZero = (effect: Effect.Effect<number>): Effect.Effect<void, never, Scope.Scope> =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0 }),
    Effect.asVoid
  )

layer(database, { timeout: 60_000, excludeTestServices: true })("SecurityAlerts with SecureSqlClient", (it) => {
  it.scoped("wrong passwords raise RepeatedAuthenticationFailures counting one refusal per failed connection (the one after re-reading the secret), without the password anywhere in it", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure()
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: VICTIM_PASSWORD })
      // idle connections close at once, so every query below needs a new, authenticated one
      const settings = makeSettings(server, pki, { user: "victim", idleTimeout: Duration.millis(20) })
      const { sql, subscription } = yield* client(settings, secrets)
      yield* Effect.acquireRelease(
        server.query(`ALTER ROLE victim PASSWORD '${CHANGED_PASSWORD}'`),
        () => server.query(`ALTER ROLE victim PASSWORD '${VICTIM_PASSWORD}'`).pipe(Effect.orDie)
      ).pipe(Effect.orDie)
      yield* untilZero(ourBackends(server, "victim"))
      // each failed query is two refusals (28P01, re-read the secret, 28P01) of which only the
      // last counts: the first may be a rotation the re-read cures
      const failedQuery = Effect.gen(function*() {
        const error = yield* Effect.flip(sql`SELECT 1`)
        expect(error.cause).toMatchObject({ code: "28P01" })
      })
      for (let i = 0; i < 4; i++) yield* failedQuery
      const early = yield* Queue.takeAll(subscription)
      expect(Chunk.toReadonlyArray(early).filter((a) => a._tag === "RepeatedAuthenticationFailures")).toEqual([])
      yield* failedQuery
      const alert = yield* nextOf(subscription, "RepeatedAuthenticationFailures")
      assert.strictEqual(alert.failures, 5)
      assert.strictEqual(alert.user, "victim")
      assert.strictEqual(alert.port, server.port)
      const text = shown(alert)
      expect(text).not.toContain(VICTIM_PASSWORD)
      expect(text).not.toContain(CHANGED_PASSWORD)
    }))

  it.scoped("a statement slower than the lowered threshold raises SlowQuery without its parameters", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure()
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const settings = makeSettings(server, pki)
      const { sql, subscription } = yield* client(
        { ...settings, alerts: { ...settings.alerts, slowQuery: Duration.millis(150) } },
        secrets
      )
      yield* sql`SELECT 1`
      yield* sql`SELECT pg_sleep(0.3), ${PARAMETER}::text AS p`
      const alert = yield* nextOf(subscription, "SlowQuery")
      yield* expectStatement(alert.statement, "SELECT pg_sleep(?), $1::text AS p")
      // usually raised while the statement still runs (the sweep every threshold / 2): past the threshold
      expect(alert.durationMillis).toBeGreaterThanOrEqual(150)
      assert.strictEqual(alert.thresholdMillis, 150)
      expect(shown(alert)).not.toContain(PARAMETER)
      expect(shown(alert)).not.toContain(APP_PASSWORD)
      // the fast statement before it raised nothing
      assert.strictEqual(yield* Queue.size(subscription), 0)
    }))

  it.scoped("a statement whose parameter pg cannot serialize fails at once, on either path, and is not left running (no SlowQuery later)", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure()
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const settings = makeSettings(server, pki)
      const { pool, sql, subscription } = yield* client(
        { ...settings, alerts: { ...settings.alerts, slowQuery: Duration.millis(150) } },
        secrets
      )
      const circular: { self?: unknown } = {}
      circular.self = circular
      // pg answers it from within `client.query`, before that call returns (its bind step throws)
      const direct = yield* Effect.flip(sql`SELECT ${circular}::text AS p`)
      assert.match(String(direct.cause), /circular/)
      // a pg-level caller, through the connection's `client.query`
      const viaPool = yield* Effect.async<unknown>((resume) => {
        pool.connect((err, pgClient, release) => {
          if (err !== undefined || pgClient === undefined) return resume(Effect.succeed(err))
          pgClient.query("SELECT $1::text AS p", [circular], (queryErr: unknown) => {
            release()
            resume(Effect.succeed(queryErr))
          })
        })
      })
      assert.match(String(viaPool), /circular/)
      // both connections work on, and nothing was left in the monitor's statements in flight
      assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
      yield* Effect.sleep("600 millis")
      assert.strictEqual(yield* Queue.size(subscription), 0)
    }))

  it.scoped("a slow statement with a card number in an E'' string after a comment holding an apostrophe raises SlowQuery, and logs it, without the number", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure()
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const logs = yield* makeLogCapture
      const settings = makeSettings(server, pki)
      const { sql, subscription } = yield* client(
        { ...settings, alerts: { ...settings.alerts, slowQuery: Duration.millis(150) } },
        secrets
      ).pipe(Effect.provide(logs.layer))
      // the apostrophe of the comment made the old regular expressions read the quotes shifted by one
      const rows = yield* sql.unsafe<{ pan: string }>(
        `SELECT pg_sleep(0.3) -- the customer's card\n, E'card \\'${CARD}\\'' AS pan, ${CARD} AS bare`
      )
      // the server read the literal as written: the statement is the one the review describes
      assert.strictEqual(rows[0]?.pan, `card '${CARD}'`)
      const alert = yield* nextOf(subscription, "SlowQuery")
      yield* expectStatement(alert.statement, "SELECT pg_sleep(?) , ? AS pan, ? AS bare")
      const lines = (yield* logs.lines).filter((l) => l.text.includes("alert='SlowQuery'"))
      assert.strictEqual(lines.length, 1)
      for (const text of [shown(alert), ...lines.map((l) => l.text)]) {
        expect(text).not.toContain(CARD.slice(0, 6))
        expect(text).not.toContain("customer")
      }
    }))

  it.scoped("raises PoolNearExhaustion when connections in use reach the ratio of the pool's maximum", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure()
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const settings = makeSettings(server, pki, { pool: { min: 0, max: 4 } })
      const { sql, subscription } = yield* client(
        { ...settings, alerts: { ...settings.alerts, poolUsageRatio: 0.75 } },
        secrets
      )
      yield* Effect.scoped(Effect.all([sql.reserve, sql.reserve], { concurrency: "unbounded" }))
      assert.strictEqual(yield* Queue.size(subscription), 0)
      yield* Effect.all([sql.reserve, sql.reserve, sql.reserve], { concurrency: "unbounded" })
      const alert = yield* nextOf(subscription, "PoolNearExhaustion")
      assert.strictEqual(alert.active, 3)
      assert.strictEqual(alert.max, 4)
      assert.strictEqual(alert.ratio, 0.75)
    }))

  it.scoped("a plaintext connection (TLS disabled in development) raises UnencryptedConnection", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure({ hba: [{ type: "host", method: "scram-sha-256" }] })
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const logs = yield* makeLogCapture
      const settings = makeSettings(server, pki, { tls: { enabled: false } })
      const counter = Metric.tagged(DbMetrics.securityAlerts, DbMetrics.kindTag, "UnencryptedConnection")
      const before = (yield* Metric.value(counter)).count
      // raised during startup, before anyone can subscribe: replayed to the subscriber, logged, counted
      const { subscription } = yield* client(settings, secrets).pipe(Effect.provide(logs.layer))
      const alert = yield* nextOf(subscription, "UnencryptedConnection")
      assert.strictEqual(alert.source, "TlsNotNegotiated")
      assert.strictEqual((yield* Metric.value(counter)).count, before + 1)
      const lines = (yield* logs.lines).filter((l) => l.text.includes("alert='UnencryptedConnection'"))
      assert.strictEqual(lines.length, 1)
      expect(lines[0]?.text).toContain("DB_SSL=false")
    }))

  it.scoped("a server certificate close to expiry raises CertificateExpiringSoon at startup, replayed to a subscriber", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure({ certificate: (yield* TestDatabase.TestDatabase).pki.expiringSoon })
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const { subscription } = yield* client(makeSettings(server, pki), secrets)
      const alert = yield* nextOf(subscription, "CertificateExpiringSoon")
      assert.strictEqual(alert.port, server.port)
      expect(alert.daysLeft).toBeLessThan(30)
      expect(Date.parse(alert.validTo)).toBeGreaterThan(Date.now())
    }))

  it.scoped("a server without TLS raises UnencryptedConnection while startup fails with SslNotSupportedByServer", () =>
    Effect.gen(function*() {
      const { pki, server } = yield* configure({ ssl: false, hba: PgTestServer.defaultHba(false) })
      const secrets = yield* makeTestSecrets({ DB_PASSWORD: APP_PASSWORD })
      const logs = yield* makeLogCapture
      const counter = Metric.tagged(DbMetrics.securityAlerts, DbMetrics.kindTag, "UnencryptedConnection")
      const before = (yield* Metric.value(counter)).count
      const error = yield* Layer.build(
        SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(makeSettings(server, pki)), secrets.layer)))
      ).pipe(Effect.flip, Effect.provide(logs.layer))
      assert.strictEqual(error._tag, "SslNotSupportedByServer")
      assert.strictEqual((yield* Metric.value(counter)).count, before + 1)
      const lines = (yield* logs.lines).filter((l) => l.text.includes("alert='UnencryptedConnection'"))
      assert.strictEqual(lines.length, 1)
      expect(lines[0]?.text).toContain("SslNotSupportedByServer")
    }))
})

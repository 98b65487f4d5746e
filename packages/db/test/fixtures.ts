/**
 * Test helpers for @takumi/db: hand-built settings, an in-memory secrets backend that behaves
 * like a cache in front of a store (so rotation and invalidation can be observed), and a
 * logger that captures every line.
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { DbConfig, type DbSettings, type PemSource, testSettings } from "@takumi/config"
import { SecretNotFound, SecretsBackend } from "@takumi/secrets"
import { PgTestServer, TestDatabase, type TestPki } from "@takumi/testing"
import { inspect } from "node:util"
import { SecureSqlClient } from "../src/index.js"

/** A file-backed PEM source. */
export const file = (path: string): Option.Option<PemSource> => Option.some({ _tag: "File", path })

/**
 * Settings for a local test server: `testSettings` with TLS on and the test CA, development,
 * database and user `app`, pool 0..4 and the secrets prefix `takumi/test/`.
 */
export const makeSettings = (
  server: { readonly host: string; readonly port: number },
  pki: { readonly ca: Pick<TestPki.CertificateFiles, "certPath"> },
  overrides: Partial<Omit<DbSettings, "tls">> & { readonly tls?: Partial<DbSettings["tls"]> } = {}
): DbSettings => {
  const { tls, ...rest } = overrides
  return testSettings({
    environment: "development",
    host: server.host,
    port: server.port,
    database: "app",
    user: "app",
    applicationName: "takumi-db-test",
    pool: { min: 0, max: 4 },
    secrets: { prefix: "takumi/test/" },
    ...rest,
    tls: { ca: file(pki.ca.certPath), ...tls }
  })
}

/**
 * An in-memory secrets backend shaped like the real one: `get` serves a cached value until
 * `invalidate` drops it; `rotate` changes only the store (as a rotation at AWS or Vault does).
 */
export interface FakeSecrets {
  readonly layer: Layer.Layer<SecretsBackend>
  readonly rotate: (key: string, value: string) => Effect.Effect<void>
  readonly gets: Effect.Effect<number>
  readonly invalidations: Effect.Effect<number>
}

export const makeFakeSecrets = (entries: Record<string, string>): Effect.Effect<FakeSecrets> =>
  Effect.gen(function*() {
    const store = yield* Ref.make(new Map(Object.entries(entries)))
    const cache = yield* Ref.make(new Map<string, string>())
    const gets = yield* Ref.make(0)
    const invalidations = yield* Ref.make(0)
    const get = (key: string) =>
      Effect.gen(function*() {
        yield* Ref.update(gets, (n) => n + 1)
        const cached = (yield* Ref.get(cache)).get(key)
        const value = cached ?? (yield* Ref.get(store)).get(key)
        if (value === undefined) {
          return yield* new SecretNotFound({ backend: "test", key, message: `no secret ${key}` })
        }
        yield* Ref.update(cache, (m) => new Map(m).set(key, value))
        return Redacted.make(value)
      })
    const invalidate = (key: string) =>
      Ref.update(invalidations, (n) => n + 1).pipe(
        Effect.zipRight(Ref.update(cache, (m) => {
          const next = new Map(m)
          next.delete(key)
          return next
        }))
      )
    return {
      layer: Layer.succeed(SecretsBackend, { get, invalidate }),
      rotate: (key, value) => Ref.update(store, (m) => new Map(m).set(key, value)),
      gets: Ref.get(gets),
      invalidations: Ref.get(invalidations)
    }
  })

/** One captured log line. */
export interface LogLine {
  readonly level: string
  readonly text: string
}

/** A logger that keeps every line: message parts and annotations via `inspect`, the cause via `Cause.pretty`. */
export const makeLogCapture = Effect.gen(function*() {
  const lines = yield* Ref.make(List.empty<LogLine>())
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    const parts = (Array.isArray(message) ? message : [message]).map((m) => typeof m === "string" ? m : inspect(m))
    for (const [key, value] of HashMap.toEntries(annotations)) parts.push(`${key}=${inspect(value)}`)
    if (!Cause.isEmpty(cause)) parts.push(Cause.pretty(cause))
    Effect.runSync(Ref.update(lines, List.prepend({ level: logLevel.label, text: parts.join(" ") })))
  })
  return {
    layer: Logger.replace(Logger.defaultLogger, logger),
    lines: Effect.map(Ref.get(lines), (l) => List.toArray(List.reverse(l)))
  }
})

/**
 * A file's `configure(settings)`: reloads the TestDatabase fixture's server with the file's
 * `baseline` and the case's `settings` on top, and returns the fixture.
 */
export const reloadFrom = (
  baseline: (env: Context.Tag.Service<TestDatabase.TestDatabase>) => Partial<PgTestServer.ServerSettings>
) =>
(settings: Partial<PgTestServer.ServerSettings> = {}) =>
  Effect.gen(function*() {
    const env = yield* TestDatabase.TestDatabase
    yield* env.server.reload({ ...baseline(env), ...settings }).pipe(Effect.orDie)
    return env
  })

/** The layer of settings. */
export const configLayer = (settings: DbSettings): Layer.Layer<DbConfig> => Layer.succeed(DbConfig, settings)

/** `SecureSqlClient.layer` on `settings` (no policy check) and a fake secrets backend. */
export const clientLayer = (settings: DbSettings, secrets: FakeSecrets) =>
  SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets.layer)))

/** A TLS server presenting the fixture's certificate, trusting its CA, `hostssl` only. */
export const tlsBaseline = (env: Context.Tag.Service<TestDatabase.TestDatabase>): Partial<PgTestServer.ServerSettings> => ({
  ssl: true,
  certificate: env.pki.server,
  ca: env.pki.ca.certPem,
  hba: PgTestServer.defaultHba(true)
})

/** How many connections of the role `app` the server has open. */
export const ourBackends = (server: PgTestServer.PgTestServer) =>
  server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app'").pipe(
    Effect.map((rows) => Number(rows[0]?.["n"] ?? -1)),
    Effect.orDie
  )

/** Waits until the pool has closed every connection of ours (with a short idle timeout), so that the next query opens one. */
export const untilNoConnections = (server: PgTestServer.PgTestServer) =>
  ourBackends(server).pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0 }))

/** The variables of a development service reaching the fixture's server over verified TLS as `app` on `app`. */
export const developmentVariables = (env: Context.Tag.Service<TestDatabase.TestDatabase>): Record<string, string> => ({
  NODE_ENV: "development",
  DB_HOST: env.server.host,
  DB_PORT: String(env.server.port),
  DB_NAME: "app",
  DB_USER: "app",
  DB_SSL: "true",
  DB_SSL_CA: env.pki.ca.certPath
})

/**
 * Test helpers for @takumi/db: hand-built settings, the real secrets stack (SecretCache over the
 * Vault backend and a Vault double, so rotation and invalidation can be observed), and a logger
 * that captures every line.
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { DbConfig, type DbSettings, type PemSource, testSettings } from "@takumi/config"
import { SecretsBackend } from "@takumi/secrets"
import { PgTestServer, TestDatabase, type TestPki, VaultDouble } from "@takumi/testing"
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

/** The KV v2 path (mount first) the test secrets live at in the Vault double. */
const secretsPath = "secret/takumi/test"

/**
 * The real secrets stack of a Vault deployment: the real `SecretCache` in front of the real Vault
 * backend (`node-vault`) reading a `VaultDouble` (plain HTTP on loopback; a protocol-level double,
 * not Vault) that holds `entries` at `secretsPath`. `rotate` writes a new version at the double
 * (the cache keeps serving the old value until its TTL or an `invalidate`, as after a real
 * rotation); `gets` counts the backend's reads of the secret (cache misses), `invalidations` the
 * `invalidate` calls the client made; `vault` is the double (faults: `sealed`, ...).
 */
export interface TestSecrets {
  readonly layer: Layer.Layer<SecretsBackend>
  readonly rotate: (key: string, value: string) => Effect.Effect<void>
  readonly gets: Effect.Effect<number>
  readonly invalidations: Effect.Effect<number>
  readonly vault: VaultDouble.VaultDouble
}

const VAULT_TOKEN = "hvs.takumi-db-test-token-4f9a1c"

export const makeTestSecrets = (
  entries: Record<string, string>,
  cache: { readonly cacheTtl?: Duration.Duration; readonly maxStale?: Duration.Duration } = {}
): Effect.Effect<TestSecrets, never, Scope.Scope> =>
  Effect.gen(function*() {
    const vault = yield* VaultDouble.make({ token: VAULT_TOKEN }).pipe(Effect.orDie)
    let current: Record<string, string> = { ...entries }
    yield* vault.put(secretsPath, current)
    const settings = testSettings({
      secrets: {
        backend: "vault",
        ...cache,
        vault: Option.some({
          address: vault.address,
          auth: { method: "token", token: Redacted.make(VAULT_TOKEN) },
          path: secretsPath,
          namespace: Option.none(),
          caCert: Option.none(),
          redirectHosts: [],
          database: Option.none()
        })
      }
    })
    const backend = yield* SecretsBackend.makeVault(settings).pipe(Effect.orDie)
    const invalidations = yield* Ref.make(0)
    const service = {
      ...backend,
      invalidate: (key: string) => Ref.update(invalidations, (n) => n + 1).pipe(Effect.zipRight(backend.invalidate(key)))
    }
    return {
      layer: Layer.succeed(SecretsBackend, service),
      // each version its own object: the double keeps the old ones as they were
      rotate: (key, value) =>
        Effect.suspend(() => {
          current = { ...current, [key]: value }
          return Effect.asVoid(vault.put(secretsPath, current))
        }),
      gets: Effect.map(vault.requests, (requests) => requests.filter((r) => r.path === secretsPath && r.url.includes("/data/")).length),
      invalidations: Ref.get(invalidations),
      vault
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

/** `SecureSqlClient.layer` on `settings` (no policy check) and the test secrets. */
export const clientLayer = (settings: DbSettings, secrets: TestSecrets) =>
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

/**
 * Waits until the pool has closed every connection of ours (with a short idle timeout), so that
 * the next query opens one; a connection still open after 15 s fails the test with how many.
 */
export const untilNoConnections = (server: PgTestServer.PgTestServer) =>
  ourBackends(server).pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (n) => n === 0 }),
    Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => "timeout" as const }),
    Effect.catchAll(() =>
      Effect.flatMap(ourBackends(server), (n) =>
        Effect.dieMessage(`${n} connection(s) of role app still open 15 s after the pool should have closed them`)))
  )

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

/**
 * The PostgreSQL client of a Takumi service: an `@effect/sql-pg` `PgClient` (and `SqlClient`)
 * over a `pg.Pool` that this module builds itself, so that
 *
 * - TLS options come from the settings only (CA / certificate / key files or inline PEM,
 *   `rejectUnauthorized`, minimum version TLS 1.2 by default, strong ciphers only, the expected
 *   server name) and neither a URL `sslmode` nor a `PG*` environment variable can change them;
 * - the password is read from the `SecretsBackend` for every new connection, and a 28P01 on a
 *   new connection re-reads the secret and retries once (rotation without restart);
 * - startup tests one connection within the connect timeout and verifies the TLS posture on the
 *   socket and in `pg_stat_ssl`, refusing in production (`InsecureServer`) and warning elsewhere;
 * - every connect failure is one of the typed errors of `DbError`, with its remedy;
 * - pool and client `error` events are handled and logged, so an idle connection dying never
 *   takes the process down;
 * - the pool feeds `DbMetrics` and raises `SecurityAlerts` (provided by the layer), and the
 *   password secret's age is checked at startup and daily (`CredentialRotationOverdue`).
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DbConfig } from "@takumi/config"
import type { SecretError, SecretsBackend } from "@takumi/secrets"
import type { ConnectError, InsecureServer, PoolExhausted } from "./DbError.js"
import type { DbHealth } from "./DbHealth.js"
import * as CredentialAge from "./internal/credentialAge.js"
import { install as installResilience, withStartupWait } from "./internal/resilience/install.js"
import * as Pooler from "./internal/pooler.js"
import * as Statements from "./internal/statement/statement.js"
import { makeVerifiedPool } from "./internal/startup.js"
import * as Monitor from "./internal/monitor.js"
import * as TestClient from "./internal/testClient.js"
import type { ReadReplica } from "./ReadReplica.js"
import { SecurePool } from "./SecurePool.js"
import * as ReconnectSchedule from "./ReconnectSchedule.js"
import * as SecurityAlerts from "./SecurityAlerts.js"

/**
 * Everything that can stop the client from starting: a typed connection error, a refused
 * security posture (production), or the password secret not being available.
 *
 * @since 0.1.0
 * @category errors
 */
export type StartupError = ConnectError | PoolExhausted | InsecureServer | SecretError

/**
 * The default layer: requires `DbConfig` and `SecretsBackend`, provides `PgClient` and
 * `SqlClient` (plus `DbHealth`, `ReadReplica`, `SecurityAlerts` and the `SecurePool` itself, see those modules; the reconnect policy is read
 * from `ReconnectSchedule` when provided). Building it runs the whole startup sequence; it fails
 * with a `StartupError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient | DbHealth | ReadReplica | SecurityAlerts.SecurityAlerts | SecurePool,
  StartupError,
  DbConfig | SecretsBackend
> = Layer.scopedContext(
  Effect.gen(function*() {
    const settings = yield* DbConfig
    // monitoring: the alerts and the metrics instruments exist before the first connection, so
    // that startup failures (28P01, a server without TLS) are counted and alerted too
    const alerts = yield* SecurityAlerts.make
    const monitor = yield* Monitor.make(settings, alerts)
    // resilience (issue 6): optional bounded wait for a database that is still starting (off by
    // default); acquisition retries, PoolExhausted, health supervisor, read replica — installed,
    // and the clients built, while the startup check's connection is being opened
    const policy = yield* ReconnectSchedule.policy
    const { alongside: { context, primaryFound }, pool } = yield* withStartupWait(
      policy,
      makeVerifiedPool(settings, { host: settings.host, port: settings.port, hosts: settings.hosts }, (pool, target) =>
        Effect.gen(function*() {
          const resilience = yield* installResilience({ settings, pool, target })
          // `fromPool` runs no probe and cannot fail in practice (it only allocates); the pool's
          // lifetime is this layer's scope, where `makePool` registered its `end()`. Plain
          // effects, not `Layer.build` (each build is a memo map and a scope of its own: startup
          // CPU, see BENCHMARKS.md).
          const client = yield* PgClient.fromPool({ acquire: Effect.succeed(pool), applicationName: settings.applicationName }).pipe(
            Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
            Effect.orDie
          )
          // behind PgBouncer: LISTEN fails at once instead of never receiving (internal/pooler.ts);
          // statements straight to pg where nobody can tell (internal/statement/)
          const primary = Statements.directly(pool, target)(Pooler.guardTransactionMode(settings)(
            Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))
          ))
          const context = Context.merge(primary, yield* resilience.services(Context.get(primary, SqlClient.SqlClient)))
          return { context, primaryFound: resilience.primaryFound }
        }))
    ).pipe(Effect.provideService(Monitor.Monitor, monitor))
    yield* primaryFound
    // CredentialRotationOverdue: the password secret's age, now and daily (forked: startup does not wait)
    yield* CredentialAge.watch(settings, alerts)
    return context.pipe(
      Context.add(SecurityAlerts.SecurityAlerts, alerts),
      // the same pool for pg-based code (Kysely, drizzle): see SecurePool.ts for what it bypasses
      Context.add(SecurePool, pool)
    )
  })
)

/**
 * The mock for unit tests, without a server: a real `@effect/sql` `SqlClient` compiling with
 * `@effect/sql-pg`'s compiler (templates, `$1` parameters and `withTransaction` as with the real
 * client) that records every statement in `script.statements` and answers from `script.answers`
 * (first match wins, no rows otherwise; a `fail` answer fails with a `SqlError` whose `cause` is the
 * given error, as `SecureSqlClient.layer` delivers it); plus `ReadReplica` (the same client, or one
 * of its own with `script.replica`), an in-memory `SecurityAlerts` and `DbHealth.layerTest(script.health)`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (
  script: layerTest.Script = {}
): Layer.Layer<SqlClient.SqlClient | ReadReplica | SecurityAlerts.SecurityAlerts | DbHealth> => TestClient.layer(script)

/**
 * The types of `layerTest`'s script and record.
 *
 * @since 0.1.0
 * @category layers
 */
export declare namespace layerTest {
  /** what `layerTest` is given: answers, the record, the replica's own script, the health status */
  export type Script = TestClient.Script
  /** one client's script: `answers` and where to record (`statements`) */
  export type ClientScript = TestClient.ClientScript
  /** `{ when, rows }` or `{ when, fail }` */
  export type Answer = TestClient.Answer
  /** exact text (whitespace collapsed), a `RegExp`, or a predicate of `(sql, params)` */
  export type Match = TestClient.Match
  /** one recorded statement: compiled text and parameters */
  export type RecordedStatement = TestClient.RecordedStatement
}

/**
 * The startup sequence for one server: credentials -> TLS options -> pool -> one connection
 * test and posture check, bounded together by the connect timeout -> `DB_POOL_MIN` connections
 * opened -> ready. Reusable for a read
 * replica, and (`verify` with a fresh client) as the replica's health probe.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import type { SecretError, SecretsBackend } from "@takumi/secrets"
import { ConnectTimeout, type InsecureServer, type TlsMaterialInvalid } from "../DbError.js"
import type { AcquireError, ConnectTarget } from "./classify.js"
import { type Credentials, makeCredentials } from "./credentials.js"
import { acquireClient, makePool, type SecurePool, targetOf } from "./pool.js"
import * as Posture from "./posture.js"
import { makeTlsOptions } from "./tlsOptions.js"

/** Everything startup can fail with. */
export type StartupError = AcquireError | InsecureServer | TlsMaterialInvalid | SecretError

/** A pool that passed the startup check, with what built it. */
export interface VerifiedPool {
  readonly pool: SecurePool
  readonly target: ConnectTarget
  readonly credentials: Credentials
  readonly posture: Posture.Posture
}

/**
 * How long the whole check of one server may take: pg's connect timeout bounds each connection
 * attempt, a 28P01 is retried once with a re-read secret (so two attempts at most), and 500 ms of
 * grace covers the posture query on a connection that has just been opened. Past it the server
 * counts as not answering (`ConnectTimeout`): a server that authenticates and then stalls, a hung
 * secrets backend or a hook that never returns cannot hang startup or a probe.
 */
export const verifyDeadline = (target: ConnectTarget): Duration.Duration =>
  Duration.millis(target.connectTimeoutMillis * 2 + 500)

/**
 * Opens one connection with `acquire` and checks it (TLS posture, policy), the whole of it —
 * connection and posture query — bounded by `verifyDeadline`. On a failure or at the deadline the
 * connection is discarded, never reused: `acquireClient` releases it to pg-pool with an error,
 * `openFreshClient` closes it.
 */
export const verify = (
  acquire: Effect.Effect<Pg.Client, AcquireError, Scope.Scope>,
  settings: DbSettings,
  target: ConnectTarget,
  credentials: Credentials
): Effect.Effect<Posture.Posture, AcquireError | InsecureServer> =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* acquire
      const posture = yield* Posture.inspect(client, target, credentials)
      yield* Posture.enforce(posture, settings, target)
      return posture
    })
  ).pipe(
    Effect.timeoutFail({
      duration: verifyDeadline(target),
      onTimeout: () =>
        new ConnectTimeout({ host: target.host, port: target.port, timeoutMillis: target.connectTimeoutMillis })
    })
  )

/**
 * Opens the pool's `DB_POOL_MIN` connections: pg-pool's `min` only stops its idle timer from
 * closing connections below it, it never opens one. All `min` are checked out at once (the
 * verified one is reused, the rest are new) and handed back idle, where `min` keeps them.
 */
const openMinimum = (pool: SecurePool, target: ConnectTarget, min: number): Effect.Effect<void, AcquireError> =>
  min <= 1 ? Effect.void : Effect.scoped(
    Effect.forEach(Array.from({ length: min }), () => acquireClient(pool, target), { concurrency: "unbounded", discard: true })
  )

/**
 * Builds a verified pool for a server (the primary, or a replica with its own host and port),
 * scoped: closing the scope ends the pool. When any step fails the scope's finalizer ends the
 * pool before the failure is reported, so a failed startup leaves no connection behind.
 */
export const makeVerifiedPool = (
  settings: DbSettings,
  server: { readonly host: string; readonly port: number }
): Effect.Effect<VerifiedPool, StartupError, Scope.Scope | SecretsBackend> =>
  Effect.gen(function*() {
    const credentials = yield* makeCredentials(settings.user)
    const ssl = yield* makeTlsOptions(settings, server)
    const options = { settings, host: server.host, port: server.port, ssl, credentials }
    const target = targetOf(options)
    const pool = yield* makePool(options)
    const posture = yield* verify(acquireClient(pool, target), settings, target, credentials)
    yield* openMinimum(pool, target, settings.pool.min)
    const tls = Option.match(posture.socket, {
      onNone: () => ({ tls: "off" }),
      onSome: (s) => ({ tls: s.protocol ?? "unknown", cipher: s.cipher })
    })
    yield* Effect.logInfo("PostgreSQL connection verified").pipe(
      Effect.annotateLogs({
        host: target.host,
        port: target.port,
        database: target.database,
        user: target.user,
        ...tls
      })
    )
    return { pool, target, credentials, posture }
  }).pipe(
    // the OpenTelemetry database-client attributes, as @effect/sql-pg puts them on statements
    Effect.withSpan("SecureSqlClient.startup", {
      kind: "client",
      attributes: {
        "db.system.name": "postgresql",
        "db.namespace": settings.database,
        "server.address": server.host,
        "server.port": server.port
      }
    })
  )

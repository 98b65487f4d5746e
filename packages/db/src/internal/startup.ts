/**
 * The startup sequence for one server: credentials -> TLS options -> pool -> one connection
 * test bounded by the connect timeout -> posture check -> ready. Reusable for a read replica.
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
import { acquireClient, makePool, targetOf } from "./pool.js"
import * as Posture from "./posture.js"
import { makeTlsOptions } from "./tlsOptions.js"

/** Everything startup can fail with. */
export type StartupError = AcquireError | InsecureServer | TlsMaterialInvalid | SecretError

/** A pool that passed the startup check, with what built it. */
export interface VerifiedPool {
  readonly pool: Pg.Pool
  readonly target: ConnectTarget
  readonly credentials: Credentials
  readonly posture: Posture.Posture
}

/**
 * Opens one connection and checks it. The wait is bounded twice: by pg's own connect timeout
 * per attempt, and here by two attempts' worth (a 28P01 is retried once with a re-read secret)
 * plus a small grace, so a hung secrets backend or a hook that never returns cannot hang startup.
 */
export const verify = (
  pool: Pg.Pool,
  settings: DbSettings,
  target: ConnectTarget,
  credentials: Credentials
): Effect.Effect<Posture.Posture, AcquireError | InsecureServer> =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* acquireClient(pool, target).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(target.connectTimeoutMillis * 2 + 500),
          onTimeout: () =>
            new ConnectTimeout({ host: target.host, port: target.port, timeoutMillis: target.connectTimeoutMillis })
        })
      )
      const posture = yield* Posture.inspect(client, target, credentials)
      yield* Posture.enforce(posture, settings, target)
      return posture
    })
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
    const ssl = yield* makeTlsOptions(settings, server.host)
    const options = { settings, host: server.host, port: server.port, ssl, credentials }
    const target = targetOf(options)
    const pool = yield* makePool(options)
    const posture = yield* verify(pool, settings, target, credentials)
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
  }).pipe(Effect.withSpan("SecureSqlClient.startup", { attributes: { host: server.host, port: server.port } }))

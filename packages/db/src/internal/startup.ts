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
import type { DbSettings, ServerAddress } from "@takumi/config"
import type { SecretError, SecretsBackend } from "@takumi/secrets"
import { ConnectTimeout, type InsecureServer, type TlsMaterialInvalid } from "../DbError.js"
import type { AcquireError, ConnectTarget } from "./classify.js"
import { type Credentials, makeCredentials } from "./credentials.js"
import { hostRoutes } from "./hosts/routes.js"
import { acquireClient, makePool, type PoolConnect, type SecurePool, targetOf } from "./pool.js"
import * as Pooler from "./pooler.js"
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
 * attempt, a 28P01 is retried once with a re-read secret and, during a Secrets Manager rotation,
 * once more with the AWSPENDING value (so three attempts at most), and 500 ms of
 * grace covers the posture query on a connection that has just been opened. Past it the server
 * counts as not answering (`ConnectTimeout`): a server that authenticates and then stalls, a hung
 * secrets backend or a hook that never returns cannot hang startup or a probe.
 */
export const verifyDeadline = (target: ConnectTarget): Duration.Duration =>
  Duration.millis(target.connectTimeoutMillis * 3 + 500)

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
      const posture = {
        ...(yield* Posture.inspect(client, target, credentials)),
        pooler: yield* Pooler.inspect(client, settings, target)
      }
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
 * verified one is reused, the rest are new) and handed back idle, where `min` keeps them. With the
 * pool's own `connect`, as the check: startup is as strict as the check (no retry on the backoff).
 */
const openMinimum = (connect: PoolConnect, target: ConnectTarget, min: number): Effect.Effect<void, AcquireError> =>
  min <= 1 ? Effect.void : Effect.scoped(
    Effect.forEach(Array.from({ length: min }), () => acquireClient(connect, target), { concurrency: "unbounded", discard: true })
  )

/**
 * Starts checking a connection out of the pool now (pg opens the socket inside `connect`) and
 * returns a `connect` that hands that very connection, once, to `acquireClient`. The check's TCP,
 * TLS and authentication round trips then begin before `alongside` runs: run side by side by
 * `Effect.all`, the check's fiber reached `connect` only after `alongside`'s synchronous work
 * (4–5 ms of it on the critical path, measured with the startup bench). A connection nobody took
 * when the scope closes (`alongside` failed first) is released with an error when it arrives, so
 * pg-pool destroys it and `pool.end()` does not wait for it. `onOpen` gets the connection the
 * moment pg hands it over, before any fiber has resumed.
 */
const connectNow = (
  connect: PoolConnect,
  target: ConnectTarget,
  onOpen: (client: Pg.Client) => void
): Effect.Effect<PoolConnect, never, Scope.Scope> => {
  type Callback = Parameters<PoolConnect>[0]
  let arrived: Parameters<Callback> | undefined
  let taker: Callback | undefined
  let closed = false
  const unclaimed = () => new Error(`the startup check of ${target.host}:${target.port} did not take its connection`)
  return Effect.acquireRelease(
    Effect.sync(() =>
      connect((err, client, release) => {
        if (client !== undefined && !closed) onOpen(client)
        if (taker !== undefined) taker(err, client, release)
        else if (!closed) arrived = [err, client, release]
        else if (client !== undefined) release(unclaimed())
      })
    ),
    () =>
      Effect.sync(() => {
        closed = true
        if (taker === undefined && arrived?.[1] !== undefined) arrived[2](unclaimed())
      })
  ).pipe(Effect.as((callback: Callback) => {
    if (taker !== undefined || closed) {
      callback(new Error("the startup check's connection was already taken"), undefined, () => {})
      return
    }
    taker = callback
    if (arrived !== undefined) callback(...arrived)
  }))
}

/**
 * Builds a verified pool for a server (the primary, or a replica with its own host and port),
 * scoped: closing the scope ends the pool. When any step fails the scope's finalizer ends the
 * pool before the failure is reported, so a failed startup leaves no connection behind.
 *
 * `alongside` runs while the check's connection is opened and checked: its TCP, TLS and
 * authentication round trips and the server's fork of a backend leave this process idle, so the
 * rest of a client's construction done there costs startup next to nothing (the pipelining of
 * issue 13's startup goal). It gets the pool but must not wait for a connection; the check takes
 * its connection with the pool's own `connect`, captured before `alongside` can patch it.
 */
export const makeVerifiedPool = <A, E, R>(
  settings: DbSettings,
  server: {
    readonly host: string
    readonly port: number
    /** the primary's: every host of `DB_HOST` (a connection goes to one that fits `DB_TARGET_SESSION_ATTRS`) */
    readonly hosts?: ReadonlyArray<ServerAddress> | undefined
  },
  alongside: (pool: SecurePool, target: ConnectTarget) => Effect.Effect<A, E, R>
): Effect.Effect<VerifiedPool & { readonly alongside: A }, StartupError | E, Scope.Scope | SecretsBackend | R> =>
  Effect.gen(function*() {
    // one after the other: making the credentials reads nothing (the password is read per
    // connection), so running them together would only cost two fibers
    const credentials = yield* makeCredentials(settings.user)
    const ssl = yield* makeTlsOptions(settings, server)
    const routes = yield* hostRoutes(settings, server.hosts)
    const options = { settings, host: server.host, port: server.port, ssl, credentials, routes }
    const target = targetOf(options)
    const pool = yield* makePool(options)
    const connect: PoolConnect = pool.connect.bind(pool)
    // the posture query goes out as soon as the connection is open (one client-side hop less)
    const started = yield* connectNow(connect, target, Posture.sendEarly)
    const [posture, built] = yield* Effect.all([
      verify(acquireClient(started, target), settings, target, credentials),
      alongside(pool, target)
    ], { concurrency: "unbounded" })
    yield* openMinimum(connect, target, settings.pool.min)
    const tls = Option.match(posture.socket, {
      onNone: () => ({ tls: "off" }),
      onSome: (s) => ({ tls: s.protocol ?? "unknown", cipher: s.cipher })
    })
    // with several hosts: the host the verified connection went to
    const at = pool.primaryHost?.lastConnected() ?? target
    yield* Effect.logInfo("PostgreSQL connection verified").pipe(
      Effect.annotateLogs({
        host: at.host,
        port: at.port,
        database: target.database,
        // with Vault dynamic credentials the user is the issued one, not DB_USER
        user: credentials.dynamic?.latest().username ?? target.user,
        ...tls
      })
    )
    return { pool, target, credentials, posture, alongside: built }
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

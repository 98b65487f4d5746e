/**
 * Wires the resilience pieces into a verified primary pool: the acquisition hook (retries that
 * cannot corrupt, `PoolExhausted` with the waiting count), the health supervisors fed by pool
 * events and failed acquisitions, the read-replica pool and its routing client, and the optional
 * wait for the database at startup. `SecureSqlClient.layer` calls `install` right after its
 * startup check and merges `layer` into what it provides.
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { DbSettings } from "@takumi/config"
import type { SecretsBackend } from "@takumi/secrets"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Pg from "pg"
import { ConnectTimeout, FailoverTimeout } from "../../DbError.js"
import * as DbHealth from "../../DbHealth.js"
import { ReadReplica, ReadReplicaFailedOver, ReadReplicaRestored } from "../../ReadReplica.js"
import * as ReconnectSchedule from "../../ReconnectSchedule.js"
import { type AcquireError, classifyConnectError, classifyRuntimeError, type ConnectTarget, isConnectionLoss } from "../classify.js"
import { type Credentials, makeCredentials } from "../credentials.js"
import { Monitor } from "../monitor.js"
import { makePool, openFreshClient, type SecurePool, targetOf } from "../pool.js"
import { installAcquireHook } from "./acquire.js"
import { makeReplicaClient, replicaIssue } from "./replica.js"
import type { HealthIssue } from "./supervisor.js"
import { makeVerifiedPool, type StartupError, verify, verifyDeadline } from "../startup.js"
import { makeTlsOptions } from "../tlsOptions.js"

/**
 * Opens a connection with a fresh client (not from the pool, whose slots may all be busy with
 * healthy work; with the pool's 28P01 retry, so a rotated password does not make a healthy server
 * look down), runs `SELECT 1` and closes it, all within `verifyDeadline`.
 */
export const probeServer = (pool: SecurePool, target: ConnectTarget): Effect.Effect<void, AcquireError> =>
  Effect.scoped(
    Effect.flatMap(openFreshClient(pool, target), (client) =>
      Effect.tryPromise({
        try: () => client.query("SELECT 1"),
        catch: (cause) => classifyConnectError(cause, target)
      }))
  ).pipe(
    Effect.asVoid,
    Effect.timeoutFail({
      duration: verifyDeadline(target),
      onTimeout: () => new ConnectTimeout({ host: target.host, port: target.port, timeoutMillis: target.connectTimeoutMillis })
    })
  )

/** Errors that waiting for the database at startup may outlast: nothing listening yet, no answer yet, starting up. */
export const isTransientStartupError = (error: StartupError): boolean =>
  error._tag === "ConnectionRefused" || error._tag === "NoSuitableHost" || error._tag === "ConnectTimeout" ||
  (error._tag === "ConnectionLost" && error.code === "57P03")

/**
 * Runs a scoped startup step; when the policy has `waitForDatabase`, transient failures are retried
 * on the backoff within that bound (each failed attempt's resources are released before the next).
 * Without it (the default) the first failure is returned: startup stays strict.
 */
export const withStartupWait = <A, R>(
  policy: ReconnectSchedule.ReconnectPolicy,
  step: Effect.Effect<A, StartupError, R | Scope.Scope>
): Effect.Effect<A, StartupError, R | Scope.Scope> =>
  Option.match(policy.waitForDatabase, {
    onNone: () => step,
    onSome: (bound) =>
      Effect.gen(function*() {
        const outer = yield* Effect.scope
        const attempt = Effect.gen(function*() {
          const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
          const exit = yield* Effect.exit(Scope.extend(step, scope))
          if (Exit.isFailure(exit)) yield* Scope.close(scope, exit)
          return yield* exit
        })
        return yield* attempt.pipe(
          Effect.tapError((error) =>
            isTransientStartupError(error)
              ? Effect.logWarning(`Waiting for the database: ${error.message}`)
              : Effect.void
          ),
          Effect.retry({ schedule: ReconnectSchedule.within(policy, bound), while: isTransientStartupError })
        )
      })
  })

/** What `install` hands back to the layer. */
export interface Installed {
  /**
   * `DbHealth` and `ReadReplica`, given the primary `SqlClient` (in the current scope: a plain
   * effect, not a layer, so that startup builds no second layer and memo map for them)
   */
  readonly services: (
    primary: SqlClient.SqlClient
  ) => Effect.Effect<Context.Context<DbHealth.DbHealth | ReadReplica>, never, Scope.Scope>
  readonly health: Context.Tag.Service<DbHealth.DbHealth>
  /** records in the health snapshot where the startup check found the writable server (several hosts) */
  readonly primaryFound: Effect.Effect<void>
}

interface ReplicaPool {
  readonly pool: SecurePool
  readonly target: ConnectTarget
  readonly probe: Effect.Effect<void, HealthIssue>
}

/**
 * The replica's probe: the full startup check (TLS posture included) on a fresh client, so that a
 * replica pool whose connections are all busy (or hung on a frozen server) cannot make the probe
 * wait or the replica look down; a connect timeout is reported as the failover timeout.
 */
const replicaProbe = (
  pool: SecurePool,
  settings: DbSettings,
  target: ConnectTarget,
  credentials: Credentials
): Effect.Effect<void, HealthIssue> =>
  verify(openFreshClient(pool, target), settings, target, credentials).pipe(
    Effect.asVoid,
    Effect.mapError((error) =>
      error._tag === "ConnectTimeout"
        ? new FailoverTimeout({ host: target.host, port: target.port, timeoutMillis: target.connectTimeoutMillis })
        : error
    )
  )

/**
 * The replica's pool: verified like the primary's when the replica answers at startup. A replica
 * that does not answer yet (refused, timeout, starting up) does not stop the service — reads go to
 * the primary and the replica is probed until it answers; any other failure (TLS, authentication,
 * insecure posture) is a configuration error and fails startup like it would for the primary.
 */
const makeReplicaPool = (
  settings: DbSettings,
  server: { readonly host: string; readonly port: number }
): Effect.Effect<ReplicaPool, StartupError, Scope.Scope | SecretsBackend> =>
  Effect.gen(function*() {
    // a replica that cannot give a connection within the failover timeout is failed over
    const failover = Duration.min(settings.connectTimeout, settings.failoverTimeout)
    const replicaSettings: DbSettings = { ...settings, connectTimeout: failover }
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const verified = yield* Effect.exit(Scope.extend(makeVerifiedPool(replicaSettings, server, () => Effect.void), scope))
    if (Exit.isSuccess(verified)) {
      const { credentials, pool, target } = verified.value
      return { pool, target, probe: replicaProbe(pool, replicaSettings, target, credentials) }
    }
    yield* Scope.close(scope, verified)
    const failure = Cause.failureOption(verified.cause)
    if (
      Option.isNone(failure) ||
      !(isTransientStartupError(failure.value) || failure.value._tag === "ConnectionLost" ||
        failure.value._tag === "TooManyConnections")
    ) {
      return yield* Effect.failCause(verified.cause)
    }
    const error = failure.value
    yield* Effect.logWarning(`The read replica at ${server.host}:${server.port} does not answer at startup; reads go to the primary until it does: ${error.message}`)
    const credentials = yield* makeCredentials(settings.user)
    const ssl = yield* makeTlsOptions(replicaSettings, server)
    const options = { settings: replicaSettings, host: server.host, port: server.port, ssl, credentials }
    const pool = yield* makePool(options)
    const target = targetOf(options)
    return { pool, target, probe: replicaProbe(pool, replicaSettings, target, credentials) }
  })

/** Runs `f` on the current runtime for every `event` of the pool that passes `when`, until the scope closes. */
const onPoolEvent = (
  pool: Pg.Pool,
  event: "error" | "release",
  f: (err: Error | undefined) => Effect.Effect<void>,
  when: (err: Error | undefined) => boolean = () => true
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // pg-pool passes no error on an ordinary release, whatever its typings say
    const listener = (err: Error | undefined) => {
      const error = err ?? undefined
      if (when(error)) runFork(f(error))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => pool.on(event, listener)),
      () => Effect.sync(() => pool.off(event, listener))
    )
  })

/**
 * With several hosts in `DB_HOST`: every move of the writable server goes into the health
 * snapshot (until the scope closes); the effect returned records where the startup check found it
 * (`install` runs alongside that check, so it is run once the check is done).
 */
const followPrimaryHost = (
  pool: SecurePool,
  supervised: DbHealth.Supervised
): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const primaryHost = pool.primaryHost
    if (primaryHost === undefined) return Effect.void
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    yield* Effect.acquireRelease(
      Effect.sync(() => primaryHost.onMove((from, to) => runFork(supervised.reportPrimaryAt(to, from)))),
      (unsubscribe) => Effect.sync(unsubscribe)
    )
    return Effect.suspend(() => {
      const current = primaryHost.current()
      return current === undefined ? Effect.void : supervised.reportPrimaryAt(current, undefined)
    })
  })

/**
 * Installs resilience on a primary pool, in the current scope (closing it removes the hook and
 * stops the supervisors); `SecureSqlClient.layer` runs it alongside the startup check.
 */
export const install = (options: {
  readonly settings: DbSettings
  readonly pool: SecurePool
  readonly target: ConnectTarget
}): Effect.Effect<Installed, StartupError, Scope.Scope | SecretsBackend> =>
  Effect.gen(function*() {
    const { pool, settings, target } = options
    const policy = yield* ReconnectSchedule.policy
    const replica = yield* Option.match(settings.readReplica, {
      onNone: () => Effect.succeed(Option.none<ReplicaPool>()),
      onSome: (server) => Effect.map(makeReplicaPool(settings, server), Option.some)
    })
    const failoverTimeoutMillis = Duration.toMillis(settings.failoverTimeout)
    // failover alerts go through SecurityAlerts (logged, counted, streamed) when monitored
    const monitor = yield* Effect.serviceOption(Monitor)
    const raise = (alert: ReadReplicaFailedOver | ReadReplicaRestored): Effect.Effect<void> =>
      Option.match(monitor, {
        onSome: (m) => m.alerts.publish(alert),
        onNone: () => Effect.logWarning(alert.message).pipe(Effect.annotateLogs({ alert: alert._tag }))
      })

    const supervised = yield* DbHealth.makeSupervised({
      policy,
      probePrimary: probeServer(pool, target),
      probeReplica: Option.getOrUndefined(Option.map(replica, (r) => r.probe)),
      onReplicaDown: (error) =>
        Option.match(replica, {
          onNone: () => Effect.void,
          onSome: ({ target }) => {
            const alert = new ReadReplicaFailedOver({
              host: target.host,
              port: target.port,
              error: error._tag,
              reason: error.message,
              failoverTimeoutMillis
            })
            return raise(alert)
          }
        }),
      onReplicaUp: Option.match(replica, {
        onNone: () => Effect.void,
        onSome: ({ target }) => {
          return raise(new ReadReplicaRestored({ host: target.host, port: target.port }))
        }
      })
    })
    const { health } = supervised

    // several hosts: the snapshot names the host the primary's connections go to, and each move
    const primaryFound = yield* followPrimaryHost(pool, supervised)

    // primary: failed acquisitions are retried (when waiting can fix them) and reported
    const removeHook = yield* installAcquireHook(pool, {
      target,
      retry: policy,
      onAttemptFailed: (error) => (error._tag === "PoolExhausted" ? Effect.void : health.report("primary", error))
    })
    yield* Effect.addFinalizer(() => removeHook)
    yield* onPoolEvent(pool, "error", (err) => health.report("primary", classifyRuntimeError(err, target)))
    // every query releases a connection: decide without the runtime, fork only for a lost one
    yield* onPoolEvent(
      pool,
      "release",
      (err) => health.report("primary", classifyRuntimeError(err, target)),
      (err) => err !== undefined && isConnectionLoss(err)
    )

    // every connection stuck in a slow statement degrades the server (the monitor's sweep sees it)
    const watchStuck = (role: "primary" | "replica", watched: Pg.Pool): Effect.Effect<void, never, Scope.Scope> =>
      Option.match(monitor, {
        onNone: () => Effect.void,
        onSome: (m) => m.onStuckChange(watched, (stuck) => supervised.reportStuck(role, stuck))
      })
    yield* watchStuck("primary", pool)
    if (Option.isSome(replica)) yield* watchStuck("replica", replica.value.pool)

    // replica: no retries (a failed read goes to the primary at once), failures reported
    if (Option.isSome(replica)) {
      const r = replica.value
      const removeReplicaHook = yield* installAcquireHook(r.pool, { target: r.target, retry: undefined })
      yield* Effect.addFinalizer(() => removeReplicaHook)
      yield* onPoolEvent(r.pool, "error", (err) => health.report("replica", replicaIssue(err, r.target)))
    }

    // without a replica, reads go to the primary's own client; the replica's two clients share a
    // Reactivity of their own, made only when there is a replica
    const readReplica = (primary: SqlClient.SqlClient): Effect.Effect<SqlClient.SqlClient, never, Scope.Scope> => {
      if (Option.isNone(replica)) return Effect.succeed(primary)
      const r = replica.value
      return Effect.gen(function*() {
        const replicaClient = yield* PgClient.fromPool({ acquire: Effect.succeed(r.pool), applicationName: settings.applicationName })
        return yield* makeReplicaClient({
          primary,
          replica: replicaClient,
          primaryPool: pool,
          primaryTarget: target,
          replicaPool: r.pool,
          target: r.target,
          failoverTimeout: settings.failoverTimeout,
          replicaUsable: Effect.map(supervised.replicaState, (s) => Option.exists(s, (state) => state.status !== "down")),
          onReplicaFailure: (issue) => health.report("replica", issue)
        })
      }).pipe(Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make), Effect.orDie)
    }

    const services = (primary: SqlClient.SqlClient) =>
      Effect.map(readReplica(primary), (client) => Context.make(DbHealth.DbHealth, health).pipe(Context.add(ReadReplica, client)))

    return { services, health, primaryFound }
  })

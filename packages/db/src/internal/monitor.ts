/**
 * The machinery behind `DbMetrics` and `SecurityAlerts`: what a pool reports and how it is turned
 * into metrics and alerts. Everything that runs per statement or per checkout is plain JavaScript
 * (a clock read, a comparison, a histogram update); the Effect runtime is entered only to raise
 * an alert or to sample the pool gauges on a schedule.
 *
 * `SecureSqlClient.layer` provides a `Monitor`; `makePool` picks it up (when present) and gives
 * the pool an instrumented client class and its listeners.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Crypto from "node:crypto"
import * as Tls from "node:tls"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import type { ConnectionLost } from "../DbError.js"
import * as DbMetrics from "../DbMetrics.js"
import {
  CertificateExpiringSoon,
  PoolNearExhaustion,
  RepeatedAuthenticationFailures,
  SecretServedStale,
  type SecurityAlert,
  type Service as AlertsService,
  SlowQuery,
  UnencryptedConnection,
  VaultTokenExpiring
} from "../SecurityAlerts.js"
import { classifyConnectError, type ConnectTarget, isAuthenticationFailure } from "./classify.js"
import { isPoolQueueTimeout } from "./resilience/acquire.js"
import { type QueryCallback, statementText } from "./queryArguments.js"
import type { StuckStatements } from "./resilience/supervisor.js"
import * as SlowQueryText from "./slowQueryText.js"
import { queryReadTimeoutMessage, statementBounds } from "./statementTimeout.js"

/** How often the pool gauges (and the stale-secret counter) are sampled. */
export const sampleInterval: Duration.Duration = Duration.seconds(1)

/** What a pool needs to report into the monitor. */
export interface PoolInstruments {
  /** the `pg.Client` class the pool creates connections with: times setup and TLS */
  readonly Client: typeof Pg.Client
  /** times the statements of the pool's connections and ends them at `DB_QUERY_TIMEOUT` */
  readonly statements: StatementTimer
  /** a connection attempt of this pool failed with `err` (pg's own error, or a secrets error) */
  readonly connectFailed: (err: unknown) => void
  /**
   * a connection could not be opened: `err` is the failure handed to the caller, after the
   * 28P01 retry with a re-read secret when there was one (a 28P01 that retry cured never gets here)
   */
  readonly connectGaveUp: (err: unknown) => void
  /** an established connection of this pool was lost */
  readonly connectionLost: (error: ConnectionLost) => void
  /** listens to the pool's events and samples its gauges until the scope closes */
  readonly watch: (pool: Pg.Pool) => Effect.Effect<void, never, Scope.Scope>
}

/** The monitor of one `SecureSqlClient`. */
export interface MonitorService {
  readonly alerts: AlertsService
  /** instruments for a pool to one server */
  readonly forPool: (target: ConnectTarget) => PoolInstruments
  /** one 28P01 seen: the sliding-window rule of `RepeatedAuthenticationFailures` */
  readonly authenticationFailed: (target: ConnectTarget) => Effect.Effect<void>
  /** a finished statement: the `SlowQuery` rule */
  readonly statementDone: (target: ConnectTarget, nanos: number, statement: unknown) => Effect.Effect<void>
  /**
   * whether every connection of a watched pool is stuck in a statement running past the slow-query
   * threshold: the current state, then every change (`Some` while they are); empty for a pool never watched
   */
  readonly stuckStatements: (pool: Pg.Pool) => Stream.Stream<Option.Option<StuckStatements>>
  /**
   * the same changes as `stuckStatements` (not the current state), handed to `f` by the sweep
   * itself until the scope closes: no stream, subscription or fiber of its own, which is what
   * startup would otherwise pay for a state that almost never changes
   */
  readonly onStuckChange: (
    pool: Pg.Pool,
    f: (stuck: Option.Option<StuckStatements>) => Effect.Effect<void>
  ) => Effect.Effect<void, never, Scope.Scope>
  /** the startup posture saw the certificate or a plaintext socket */
  readonly certificateExpiring: (alert: CertificateExpiringSoon) => Effect.Effect<void>
  readonly unencrypted: (alert: UnencryptedConnection) => Effect.Effect<void>
}

/** The monitor, when the pool is built by `SecureSqlClient.layer`. */
export class Monitor extends Context.Tag("@takumi/db/internal/Monitor")<Monitor, MonitorService>() {}

/**
 * The sliding window of failed authentications: `record` adds one at the current `Clock` time
 * and answers how many the window holds when that reaches the threshold (then starts afresh, so
 * one burst raises one alert).
 */
export const makeFailureWindow = (
  threshold: number,
  window: Duration.Duration
): { readonly record: Effect.Effect<Option.Option<number>> } => {
  const windowMillis = Duration.toMillis(window)
  let times: Array<number> = []
  return {
    record: Effect.map(Clock.currentTimeMillis, (now) => {
      times = times.filter((t) => now - t < windowMillis)
      times.push(now)
      if (times.length < Math.max(1, threshold)) return Option.none()
      const failures = times.length
      times = []
      return Option.some(failures)
    })
  }
}

/** A statement in flight on one of a pool's connections, from submission to its answer. */
export interface RunningStatement {
  readonly client: Pg.Client
  /** `nowNanos()` when the statement was submitted */
  readonly start: number
  /** `client.query`'s first argument */
  readonly statement: unknown
  /** set once `SlowQuery` was raised for it while it ran: its completion raises no second one */
  slowReported: boolean
  /** answers the statement, as pg would: what the sweep ends it with at `DB_QUERY_TIMEOUT` */
  readonly answer: QueryCallback
}

/**
 * How a pool's statements are timed (internal/statement/connection.ts calls it for every statement
 * of a connection): from `begin` to `end` a statement is in the set the sweep of `watch` walks.
 */
export interface StatementTimer {
  /** `statement` is being sent on `client`; `answer` is how the sweep answers it at `DB_QUERY_TIMEOUT` */
  readonly begin: (client: Pg.Client, statement: unknown, answer: QueryCallback) => RunningStatement
  /** the statement was answered (`error` as pg gave it, or the sweep's): the histogram, `SlowQuery` */
  readonly end: (running: RunningStatement, error: unknown) => void
  /** a cursor or stream, which the sweep does not see: it keeps pg's own read timeout */
  readonly untimed: (submittable: unknown) => void
}

/**
 * How often the statements in flight are checked against the slow-query threshold: half of it, so
 * a statement is reported between 1 and 1.5 thresholds after it was submitted; never more often
 * than every 10 ms. `undefined` (no sweep) for a threshold of zero or infinity.
 */
export const sweepInterval = (slowQuery: Duration.Duration): Duration.Duration | undefined => {
  const millis = Duration.toMillis(slowQuery)
  return Number.isFinite(millis) && millis > 0 ? Duration.millis(Math.max(millis / 2, 10)) : undefined
}

/**
 * How often the statements in flight are checked against `DB_QUERY_TIMEOUT` (`queryMillis`): a
 * tenth of it, between 10 ms and 1 s, so a statement is ended between 1 and 1.1 bounds after it was
 * submitted (at most 1 s late). `undefined` without a bound.
 */
export const readTimeoutInterval = (queryMillis: number | undefined): Duration.Duration | undefined =>
  queryMillis === undefined ? undefined : Duration.millis(Math.min(Math.max(queryMillis / 10, 10), 1000))

/** The sweep's interval: the shorter of the two that are defined. */
const shorter = (a: Duration.Duration | undefined, b: Duration.Duration | undefined) =>
  a === undefined ? b : b === undefined ? a : Duration.min(a, b)

/**
 * Makes the monitor of one client layer. The options are for tests: the sampling interval (on
 * TestClock), and the lexer the `SlowQuery` text is made with instead of loading libpg-query.
 */
export const make = (
  settings: DbSettings,
  alerts: AlertsService,
  options: {
    readonly sampleInterval?: Duration.Duration
    readonly lexer?: Effect.Effect<Option.Option<SlowQueryText.Lexer>>
  } = {}
): Effect.Effect<MonitorService, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const clock = yield* Effect.clock
    const auth = makeFailureWindow(settings.alerts.failedAuthThreshold, settings.alerts.failedAuthWindow)
    const slowNanos = Duration.toNanos(settings.alerts.slowQuery).pipe(
      Option.map(Number),
      Option.getOrElse(() => Number.POSITIVE_INFINITY)
    )
    const slowMillis = Duration.toMillis(settings.alerts.slowQuery)
    // DB_QUERY_TIMEOUT: the pool's statements are ended by the sweep of `watch` (no timer per
    // statement); cursors and streams, which it does not see, keep pg's own timer (`readTimeout`)
    const { queryMillis } = statementBounds(settings)
    const queryNanos = queryMillis === undefined ? Number.POSITIVE_INFINITY : queryMillis * 1e6
    const readTimeout = (submittable: unknown) => {
      if (queryMillis === undefined) return
      const config = submittable as { query_timeout?: number }
      config.query_timeout ??= queryMillis
    }
    const sweepEvery = shorter(sweepInterval(settings.alerts.slowQuery), readTimeoutInterval(queryMillis))
    // each watched pool's stuck state, for DbHealth (`stuckStatements`)
    const stuckByPool = new WeakMap<Pg.Pool, SubscriptionRef.SubscriptionRef<Option.Option<StuckStatements>>>()
    const stuckListeners = new WeakMap<Pg.Pool, Set<(stuck: Option.Option<StuckStatements>) => Effect.Effect<void>>>()
    const listenersOf = (pool: Pg.Pool) => {
      let listeners = stuckListeners.get(pool)
      if (listeners === undefined) {
        listeners = new Set()
        stuckListeners.set(pool, listeners)
      }
      return listeners
    }
    // libpg-query is loaded by the first slow statement, if ever: a client without one pays nothing
    const lexer = yield* Effect.cached(options.lexer ?? SlowQueryText.loadLexer)
    // The key of the fallback's fingerprints: crypto randomness, not `Random` (a seeded generator
    // that TestRandom replaces), since whoever could predict it could test guesses of a literal.
    const fingerprintKey = yield* Effect.sync(() => Crypto.randomBytes(32))

    const authenticationFailed = (target: ConnectTarget) =>
      Effect.flatMap(auth.record, (reached) =>
        Option.match(reached, {
          onNone: () => Effect.void,
          onSome: (failures) =>
            alerts.publish(
              new RepeatedAuthenticationFailures({
                host: target.host,
                port: target.port,
                user: target.user,
                database: target.database,
                failures,
                windowMillis: Duration.toMillis(settings.alerts.failedAuthWindow)
              })
            )
        }))

    /** Raises `SlowQuery` for a statement that ran `nanos` (and still runs, when `running`). */
    const slowQuery = (target: ConnectTarget, nanos: number, statement: unknown, running: boolean) =>
      Effect.flatMap(lexer, (loaded) => {
        const text = statementText(statement)
        return alerts.publish(
          new SlowQuery({
            host: target.host,
            port: target.port,
            durationMillis: nanos / 1e6,
            thresholdMillis: slowMillis,
            statement: text === undefined
              ? "(statement text not available)"
              : SlowQueryText.slowQueryText(text, loaded, fingerprintKey),
            ...(running ? { running } : {})
          })
        )
      })

    const statementDone = (target: ConnectTarget, nanos: number, statement: unknown) =>
      nanos < slowNanos ? Effect.void : slowQuery(target, nanos, statement, false)

    // the secrets cache counts the stale values it serves, the Vault token lifecycle its failures
    // near the end; a rise between two samples is an alert
    const onRise = (
      counter: Metric.Metric.Counter<number>,
      alert: (rise: number) => SecurityAlert
    ) =>
      Effect.map(Metric.value(counter), ({ count: start }) => {
        let seen = start
        return Effect.flatMap(Metric.value(counter), ({ count }) => {
          const rise = count - seen
          seen = count
          return rise > 0 ? alerts.publish(alert(rise)) : Effect.void
        })
      })
    const staleServes = Metric.tagged(
      Metric.tagged(DbMetrics.secretFetches, "backend", settings.secrets.backend),
      "outcome",
      "stale"
    )
    const checkStale = yield* onRise(
      staleServes,
      (served) => new SecretServedStale({ backend: settings.secrets.backend, served })
    )
    const checkVaultToken = yield* onRise(DbMetrics.vaultTokenExpiring, (failures) => new VaultTokenExpiring({ backend: "vault", failures }))
    const every = Schedule.spaced(options.sampleInterval ?? sampleInterval)
    yield* Effect.zipRight(checkStale, checkVaultToken).pipe(Effect.repeat(every), Effect.forkScoped)

    const forPool = (target: ConnectTarget): PoolInstruments => {
      // The hot-path updates go to the untagged metrics with one label array made here: the
      // metric caches its registry entry by that array's identity, whereas a `Metric.tagged`
      // metric builds a new array (and misses that cache) on every update.
      const server: ReadonlyArray<MetricLabel.MetricLabel> = [
        MetricLabel.make(DbMetrics.serverTag, DbMetrics.serverLabel(target.host, target.port))
      ]
      const errors = Metric.taggedWithLabels(DbMetrics.connectionErrors, server)
      // nanoseconds since this pool's instruments were made: small enough for a double to hold exactly
      const origin = clock.unsafeCurrentTimeNanos()
      const nowNanos = () => Number(clock.unsafeCurrentTimeNanos() - origin)

      // the statements in flight on this pool's connections (see `watch` for the sweep over them)
      const running = new Set<RunningStatement>()

      // one label array per error type, for the same registry cache as `server` (the types are
      // bounded: SQLSTATE codes and error class names)
      const failed = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
      const failedLabels = (error: unknown) => {
        const type = DbMetrics.errorType(error)
        let labels = failed.get(type)
        if (labels === undefined) {
          labels = [...server, MetricLabel.make(DbMetrics.errorTypeTag, type)]
          failed.set(type, labels)
        }
        return labels
      }

      const countError = (kind: string) => {
        runFork(Metric.increment(Metric.tagged(errors, DbMetrics.kindTag, kind)))
      }

      const connectFailed = (err: unknown) => {
        const error = classifyConnectError(err, target)
        const kind = isPoolQueueTimeout(err) ? "PoolExhausted" : error._tag
        countError(kind)
        const noEncryption = error._tag === "ConnectionRejected" && /no encryption/i.test(error.reason ?? "")
        if (error._tag === "SslNotSupportedByServer" || noEncryption) {
          runFork(alerts.publish(
            new UnencryptedConnection({
              host: target.host,
              port: target.port,
              reason: error._tag === "SslNotSupportedByServer"
                ? "the server does not support SSL connections (the client refused to continue without TLS)"
                : `pg_hba.conf rejected a connection without encryption: ${error.reason ?? ""}`,
              source: error._tag
            })
          ))
        }
      }

      // only a refusal that stands counts toward the alert: a rotation seen by a burst of new
      // connections is cured by the re-read secret and is not an attack
      const connectGaveUp = (err: unknown) => {
        if (isAuthenticationFailure(err)) runFork(authenticationFailed(target))
      }

      const connectionLost = (error: ConnectionLost) => countError(error._tag)

      /** A statement answered: out of `running`, into the histogram, and `SlowQuery` if it was. */
      const finish = (entry: RunningStatement, error?: unknown) => {
        running.delete(entry)
        const nanos = nowNanos() - entry.start
        DbMetrics.queryDuration.unsafeUpdate(nanos / 1e9, error ? failedLabels(error) : server)
        // one alert per statement: none on completion when the sweep raised it while it ran
        if (nanos >= slowNanos && !entry.slowReported) runFork(statementDone(target, nanos, entry.statement))
      }

      const statements: StatementTimer = {
        begin: (client, statement, answer) => {
          const entry: RunningStatement = { client, start: nowNanos(), statement, slowReported: false, answer }
          running.add(entry)
          return entry
        },
        end: finish,
        untimed: readTimeout
      }

      /** TCP connected -> the TLS socket's `secureConnect`: the handshake, PostgreSQL's SSLRequest included. */
      const timeTls = (client: Pg.Client) => {
        const connection = client.connection
        let tcpAt: number | undefined
        connection.once("connect", () => {
          tcpAt = nowNanos()
        })
        connection.once("sslconnect", () => {
          const socket = connection.stream
          if (socket instanceof Tls.TLSSocket) {
            socket.once("secureConnect", () => {
              if (tcpAt !== undefined) DbMetrics.tlsHandshake.unsafeUpdate((nowNanos() - tcpAt) / 1e9, server)
            })
          }
        })
      }

      const startedAt = new WeakMap<Pg.Client, number>()
      class InstrumentedClient extends Pg.Client {
        constructor(config?: string | Pg.ClientConfig) {
          super(config)
          // pg-pool calls `connect` right after constructing: setup time starts here
          startedAt.set(this, nowNanos())
          timeTls(this)
        }
      }

      const watch = (pool: Pg.Pool): Effect.Effect<void, never, Scope.Scope> =>
        Effect.gen(function*() {
          const max = pool.options.max ?? target.poolMax
          const alertAt = settings.alerts.poolUsageRatio * max
          let alerted = false
          const sample = () => {
            const inUse = pool.totalCount - pool.idleCount
            DbMetrics.connectionsActive.unsafeUpdate(inUse, server)
            DbMetrics.connectionsIdle.unsafeUpdate(pool.idleCount, server)
            DbMetrics.connectionsWaiting.unsafeUpdate(pool.waitingCount, server)
            // re-arm the pool alert once use has fallen back below the level
            if (alerted && inUse < alertAt) alerted = false
          }
          const onConnect = (client: Pg.PoolClient) => {
            const started = client instanceof Pg.Client ? startedAt.get(client) : undefined
            if (started !== undefined) DbMetrics.connectionSetup.unsafeUpdate((nowNanos() - started) / 1e9, server)
            if (settings.tls.enabled && !(client.connection.stream instanceof Tls.TLSSocket)) {
              runFork(alerts.publish(
                new UnencryptedConnection({
                  host: target.host,
                  port: target.port,
                  reason: "a connection was established without TLS",
                  source: "TlsNotNegotiated"
                })
              ))
            }
            sample()
          }
          // per checkout: two counts and a comparison, nothing else
          const onAcquire = () => {
            if (alerted) return
            const inUse = pool.totalCount - pool.idleCount
            if (inUse < alertAt) return
            alerted = true
            runFork(alerts.publish(
              new PoolNearExhaustion({
                host: target.host,
                port: target.port,
                active: inUse,
                max,
                waiting: pool.waitingCount,
                ratio: settings.alerts.poolUsageRatio
              })
            ))
          }
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              pool.on("connect", onConnect)
              pool.on("remove", sample)
              pool.on("acquire", onAcquire)
            }),
            () =>
              Effect.sync(() => {
                pool.off("connect", onConnect)
                pool.off("remove", sample)
                pool.off("acquire", onAcquire)
              })
          )
          yield* Effect.sync(sample).pipe(Effect.repeat(every), Effect.forkScoped)

          // SlowQuery while a statement still runs, whether every connection is stuck, and the end
          // of a statement past DB_QUERY_TIMEOUT, from one sweep over the statements in flight
          // (every slowQuery / 2 or a tenth of the query timeout, whichever is shorter), started
          // with the pool and stopped with its scope. A timer per statement (pg's query_timeout)
          // costs every statement a setTimeout, a clearTimeout and a closure (measured: 5 % of
          // throughput at concurrency 1); the sweep costs a statement one Set add and delete, and
          // the pool one wake-up per interval that walks at most `max` entries.
          const stuck = yield* SubscriptionRef.make(Option.none<StuckStatements>())
          stuckByPool.set(pool, stuck)
          const sweep = Effect.suspend(() => {
            const now = nowNanos()
            const slow: Array<{ readonly nanos: number; readonly statement: unknown }> = []
            const stuckClients = new Set<Pg.Client>()
            const expired: Array<QueryCallback> = []
            let oldestNanos = 0
            for (const entry of running) {
              const nanos = now - entry.start
              if (nanos >= queryNanos) expired.push(entry.answer)
              if (nanos < slowNanos) continue
              stuckClients.add(entry.client)
              oldestNanos = Math.max(oldestNanos, nanos)
              if (entry.slowReported) continue
              entry.slowReported = true
              slow.push({ nanos, statement: entry.statement })
            }
            const next = stuckClients.size >= max
              ? Option.some<StuckStatements>({
                connections: stuckClients.size,
                max,
                thresholdMillis: slowMillis,
                oldestMillis: oldestNanos / 1e6
              })
              : Option.none<StuckStatements>()
            const publishStuck = Effect.flatMap(SubscriptionRef.get(stuck), (previous) =>
              Option.isSome(previous) === Option.isSome(next)
                ? Effect.void
                : Effect.zipRight(
                  SubscriptionRef.set(stuck, next),
                  Effect.forEach(listenersOf(pool), (f) => f(next), { discard: true })
                ))
            // answered as pg's own timer would (the connection's statements turn this into
            // StatementTimeout and end the connection; internal/statement/connection.ts); pg's
            // late answer is then dropped
            for (const answer of expired) answer(new Error(queryReadTimeoutMessage))
            const raise = Effect.forEach(slow, ({ nanos, statement }) => slowQuery(target, nanos, statement, true), {
              discard: true
            })
            return Effect.zipRight(raise, publishStuck)
          })
          if (sweepEvery !== undefined) {
            yield* sweep.pipe(Effect.repeat(Schedule.spaced(sweepEvery)), Effect.forkScoped)
          }
        })

      return { Client: InstrumentedClient, statements, connectFailed, connectGaveUp, connectionLost, watch }
    }

    return {
      alerts,
      forPool,
      authenticationFailed,
      statementDone,
      stuckStatements: (pool) =>
        Stream.unwrap(Effect.sync(() => {
          const stuck = stuckByPool.get(pool)
          return stuck === undefined ? Stream.empty : stuck.changes
        })),
      onStuckChange: (pool, f) =>
        Effect.acquireRelease(Effect.sync(() => listenersOf(pool).add(f)), () => Effect.sync(() => listenersOf(pool).delete(f))),
      certificateExpiring: alerts.publish,
      unencrypted: alerts.publish
    }
  })

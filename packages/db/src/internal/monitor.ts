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
import * as Tls from "node:tls"
import * as Pg from "pg"
import type { DbSettings } from "@takumi/config"
import type { ConnectionLost } from "../DbError.js"
import * as DbMetrics from "../DbMetrics.js"
import {
  CertificateExpiringSoon,
  PoolNearExhaustion,
  RepeatedAuthenticationFailures,
  redactStatement,
  SecretServedStale,
  type Service as AlertsService,
  SlowQuery,
  UnencryptedConnection
} from "../SecurityAlerts.js"
import { classifyConnectError, type ConnectTarget, isAuthenticationFailure } from "./classify.js"
import { isPoolQueueTimeout } from "./resilienceAcquire.js"

/** How often the pool gauges (and the stale-secret counter) are sampled. */
export const sampleInterval: Duration.Duration = Duration.seconds(1)

/** What a pool needs to report into the monitor. */
export interface PoolInstruments {
  /** the `pg.Client` class the pool creates connections with: times setup, TLS and statements */
  readonly Client: typeof Pg.Client
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

/** The text of a `client.query` first argument, whatever form it took (text or config object). */
const statementText = (first: unknown): string => {
  if (typeof first === "string") return first
  if (typeof first === "object" && first !== null && "text" in first && typeof first.text === "string") {
    return first.text
  }
  return "(statement text not available)"
}

const isSubmittable = (first: unknown): boolean =>
  typeof first === "object" && first !== null && "submit" in first && typeof first.submit === "function"

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  typeof u === "object" && u !== null && "then" in u && typeof u.then === "function"

/** Makes the monitor of one client layer (the sampling interval is for tests on TestClock). */
export const make = (
  settings: DbSettings,
  alerts: AlertsService,
  options: { readonly sampleInterval?: Duration.Duration } = {}
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

    const statementDone = (target: ConnectTarget, nanos: number, statement: unknown) =>
      nanos < slowNanos ? Effect.void : alerts.publish(
        new SlowQuery({
          host: target.host,
          port: target.port,
          durationMillis: nanos / 1e6,
          thresholdMillis: slowMillis,
          statement: redactStatement(statementText(statement))
        })
      )

    // the secrets cache counts the stale values it serves; a rise between two samples is an alert
    const staleServes = Metric.tagged(
      Metric.tagged(DbMetrics.secretFetches, "backend", settings.secrets.backend),
      "outcome",
      "stale"
    )
    let staleSeen = (yield* Metric.value(staleServes)).count
    const checkStale = Effect.flatMap(Metric.value(staleServes), ({ count }) => {
      const served = count - staleSeen
      staleSeen = count
      return served > 0 ? alerts.publish(new SecretServedStale({ backend: settings.secrets.backend, served })) : Effect.void
    })
    const every = Schedule.spaced(options.sampleInterval ?? sampleInterval)
    yield* checkStale.pipe(Effect.repeat(every), Effect.forkScoped)

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

      /**
       * Times every statement around `client.query`: the callback form (what `@effect/sql-pg` and
       * `pool.query` use) and the promise form; cursors and streams (submittables) pass untimed.
       */
      const timeQueries = (client: Pg.Client) => {
        const query: (...args: Array<unknown>) => unknown = client.query
        const timed = function(this: unknown, ...args: Array<unknown>): unknown {
          const first = args[0]
          if (isSubmittable(first)) return Reflect.apply(query, this, args)
          const start = nowNanos()
          const done = () => {
            const nanos = nowNanos() - start
            DbMetrics.queryDuration.unsafeUpdate(nanos / 1e9, server)
            if (nanos >= slowNanos) runFork(statementDone(target, nanos, first))
          }
          const last = args.length - 1
          const callback = args[last]
          if (typeof callback === "function") {
            args[last] = function(this: unknown, ...results: Array<unknown>) {
              done()
              return Reflect.apply(callback, this, results)
            }
            return Reflect.apply(query, this, args)
          }
          const result: unknown = Reflect.apply(query, this, args)
          if (isThenable(result)) result.then(done, done)
          return result
        }
        Object.defineProperty(client, "query", { value: timed, writable: true, configurable: true })
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
          timeQueries(this)
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
        })

      return { Client: InstrumentedClient, connectFailed, connectGaveUp, connectionLost, watch }
    }

    return {
      alerts,
      forPool,
      authenticationFailed,
      statementDone,
      certificateExpiring: alerts.publish,
      unencrypted: alerts.publish
    }
  })

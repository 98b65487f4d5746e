/**
 * Retries that cannot corrupt: the hook on `pool.connect`.
 *
 * `@effect/sql-pg` acquires every connection through `pool.connect` — one per statement outside a
 * transaction, one per transaction (`withTransaction`), one per `reserve` — and `pg-pool`'s own
 * `pool.query` does too. A failure there means no statement has been sent yet, so retrying it on
 * the reconnect backoff, within the budget, is always safe. Only failures that waiting can fix are
 * retried (refused, connect timeout, the server starting up or shutting down, no free server slot,
 * a reset during the handshake); TLS, authentication, pg_hba and unknown-database failures are
 * returned at once, as is a pool that has been ended.
 *
 * The same hook tells a full pool's queue timeout ("timeout exceeded when trying to connect") from
 * a new connection's connect timeout ("Connection terminated due to connection timeout") and turns
 * the former into `PoolExhausted` with the pool size and the number of callers waiting.
 *
 * The common case costs nothing extra: the first attempt is a plain `pool.connect` whose success
 * goes straight to the caller; the Effect runtime (classification, reporting, the retry schedule)
 * is entered only when that attempt fails.
 *
 * The pool is patched in place (an own `connect` on the instance that calls the class's `connect`),
 * so whatever the pool class already does on connect — the 28P01 secret re-read — still happens
 * first, once per attempt. SecureSqlClient's direct statements check out with pg-pool's own
 * `connect` (pool.ts `checkout`) and hand a failed attempt to the pool's `recover`, which is
 * patched the same way: from there on they take this path too.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Pg from "pg"
import type { SecurePool } from "../pool.js"
import { PoolExhausted } from "../../DbError.js"
import * as ReconnectSchedule from "../../ReconnectSchedule.js"
import {
  type AcquireError,
  classifyConnectError,
  classifyRuntimeError,
  type ConnectTarget,
  isConnectionLoss
} from "../classify.js"

type ConnectCallback = Parameters<Pg.Pool["connect"]>[0]
type Release = (release?: Error | boolean) => void

/** pg-pool's message when a caller waited in the queue of a full pool for `connectionTimeoutMillis`. */
export const poolQueueTimeoutMessage = "timeout exceeded when trying to connect"

/** True for the failure of a pool that is full, not of a server that is slow to accept. */
export const isPoolQueueTimeout = (cause: unknown): boolean =>
  cause instanceof Error && cause.message === poolQueueTimeoutMessage

/**
 * Whether opening a connection failed in a way that waiting can fix. Nothing has reached the
 * server as a statement when this is asked, so a retry cannot run anything twice.
 */
export const isRetryableConnectFailure = (error: AcquireError, cause: unknown): boolean => {
  switch (error._tag) {
    case "ConnectionRefused":
    case "NoSuitableHost":
    case "ConnectTimeout":
    case "TooManyConnections":
      return true
    case "ConnectionLost":
      // 57P01/57P03, ECONNRESET, "Connection terminated ...": the server went away mid-handshake
      return isConnectionLoss(cause)
    default:
      return false
  }
}

/** What the hook reports while it works. */
export interface AcquireHooks {
  /** an attempt to open or acquire a connection failed (retried or not) */
  readonly onAttemptFailed?: ((error: AcquireError) => Effect.Effect<void>) | undefined
  /** the next attempt will be made after `delay` */
  readonly onBackoff?: ((delay: Duration.Duration) => Effect.Effect<void>) | undefined
}

/** Options of `installAcquireHook`. */
export interface AcquireHookOptions extends AcquireHooks {
  readonly target: ConnectTarget
  /** `None`: report `PoolExhausted` but never retry (the read replica fails over instead) */
  readonly retry: ReconnectSchedule.ReconnectPolicy | undefined
}

interface Acquired {
  readonly client: Pg.PoolClient
  readonly release: Release
}

class AttemptFailed {
  constructor(readonly error: AcquireError, readonly cause: unknown) {}
}

/**
 * Patches `pool.connect` in place. Returns an effect that removes the patch (the pool's class
 * method applies again).
 */
export const installAcquireHook = (
  pool: Pg.Pool & Partial<Pick<SecurePool, "recover">>,
  options: AcquireHookOptions
): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runCallback = Runtime.runCallback(runtime)
    // the pool's own connect (its class's, with whatever that already does), captured before patching
    const original: (callback: ConnectCallback) => void = pool.connect.bind(pool)
    const { target } = options

    // What a failed attempt is, decided inside pg's callback: the waiting count of a full pool is
    // only right at that moment.
    const failedAttempt = (err: Error): AttemptFailed =>
      new AttemptFailed(
        isPoolQueueTimeout(err)
          ? new PoolExhausted({
            host: target.host,
            port: target.port,
            max: target.poolMax,
            timeoutMillis: target.connectTimeoutMillis,
            // the caller that gave up has left the queue already: count it back in
            waiting: pool.waitingCount + 1
          })
          : classifyConnectError(err, target),
        err
      )
    const noClient = (): AttemptFailed => {
      const lost = classifyRuntimeError("pg returned no client", target)
      return new AttemptFailed(lost, lost)
    }

    const attempt = Effect.async<Acquired, AttemptFailed>((resume) => {
      let abandoned = false
      const callback: ConnectCallback = (err, client, release) => {
        if (abandoned) {
          if (client !== undefined) release()
          return
        }
        if (err !== undefined && err !== null) resume(Effect.fail(failedAttempt(err)))
        else if (client !== undefined) resume(Effect.succeed({ client, release }))
        else resume(Effect.fail(noClient()))
      }
      original(callback)
      return Effect.sync(() => {
        abandoned = true
      })
    })

    const report = (failed: AttemptFailed): Effect.Effect<void> =>
      options.onAttemptFailed === undefined ? Effect.void : options.onAttemptFailed(failed.error)
    const policy = options.retry
    const retrySchedule = policy === undefined ? undefined : ReconnectSchedule.retry(policy).pipe(
      Schedule.tapOutput((delay) => options.onBackoff === undefined ? Effect.void : options.onBackoff(delay))
    )
    const shouldRetry = (failed: AttemptFailed): boolean =>
      !pool.ending && isRetryableConnectFailure(failed.error, failed.cause)

    /**
     * The slow path, entered only once the first attempt (made directly on the pool) has failed:
     * exactly what `Effect.retry` over `attempt` would do, with that first failure in the place of
     * the first attempt — it is reported, and retried on the backoff while waiting can fix it.
     */
    const afterFailure = (first: AttemptFailed): Effect.Effect<Acquired, AttemptFailed> => {
      let pending = true
      const attemptAfter = Effect.suspend(() => {
        if (pending) {
          pending = false
          return Effect.fail(first)
        }
        return attempt
      })
      const reported = Effect.tapError(attemptAfter, report)
      return retrySchedule === undefined
        ? reported
        : Effect.retry(reported, { schedule: retrySchedule, while: shouldRetry })
    }

    const settle = (callback: ConnectCallback, first: AttemptFailed): void => {
      runCallback(afterFailure(first), {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) {
            callback(undefined, exit.value.client, exit.value.release)
            return
          }
          const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
          if (failure === undefined) {
            // only when the runtime shuts down under a waiting caller
            callback(classifyRuntimeError("connection acquisition was interrupted", target), undefined, () => {})
            return
          }
          // a full pool is reported typed (it carries the waiting count only this hook knows);
          // every other failure keeps pg's own error, which the usual classification understands
          const err = failure.error._tag === "PoolExhausted" ? failure.error : failure.cause
          callback(err instanceof Error ? err : failure.error, undefined, () => {})
        }
      })
    }

    // The fast path: a connection that is available (or opens on the first try) goes straight
    // from pg to the caller, with no Effect runtime work; the Effect machinery above (report,
    // classification, retry on the backoff) runs only when that first attempt fails.
    function connect(): Promise<Pg.PoolClient>
    function connect(callback: ConnectCallback): void
    function connect(callback?: ConnectCallback): Promise<Pg.PoolClient> | void {
      if (callback === undefined) {
        return new Promise<Pg.PoolClient>((resolve, reject) => {
          connect((err, client) => {
            if (err !== undefined && err !== null) reject(err)
            else if (client !== undefined) resolve(client)
          })
        })
      }
      original(outcomeFor(callback))
    }
    /** `callback`'s outcome of an attempt: a failure enters the slow path, a connection goes straight through. */
    function outcomeFor(callback: ConnectCallback): ConnectCallback {
      return (err, client, release) => {
        if (err !== undefined && err !== null) settle(callback, failedAttempt(err))
        else if (client !== undefined) callback(undefined, client, release)
        else settle(callback, noClient())
      }
    }

    pool.connect = connect
    // a SecurePool's direct checkout (pool.ts `checkout`) reaches this hook only once it failed
    const recover = pool.recover?.bind(pool)
    if (recover !== undefined) pool.recover = (first, callback) => recover(first, outcomeFor(callback))
    return Effect.sync(() => {
      Reflect.deleteProperty(pool, "connect")
      Reflect.deleteProperty(pool, "recover")
    })
  })

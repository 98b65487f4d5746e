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
 * The pool is patched in place (an own `connect` on the instance that calls the class's `connect`),
 * so whatever the pool class already does on connect — the 28P01 secret re-read — still happens
 * first, once per attempt.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Pg from "pg"
import { PoolExhausted } from "../DbError.js"
import * as ReconnectSchedule from "../ReconnectSchedule.js"
import {
  type AcquireError,
  classifyConnectError,
  classifyRuntimeError,
  type ConnectTarget,
  isConnectionLoss
} from "./classify.js"

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
  pool: Pg.Pool,
  options: AcquireHookOptions
): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runCallback = Runtime.runCallback(runtime)
    // the pool's own connect (its class's, with whatever that already does), captured before patching
    const original: (callback: ConnectCallback) => void = pool.connect.bind(pool)
    const { target } = options

    const attempt = Effect.async<Acquired, AttemptFailed>((resume) => {
      let abandoned = false
      const callback: ConnectCallback = (err, client, release) => {
        if (abandoned) {
          if (client !== undefined) release()
          return
        }
        if (err !== undefined && err !== null) {
          const error = isPoolQueueTimeout(err)
            ? new PoolExhausted({
              host: target.host,
              port: target.port,
              max: target.poolMax,
              timeoutMillis: target.connectTimeoutMillis,
              // the caller that gave up has left the queue already: count it back in
              waiting: pool.waitingCount + 1
            })
            : classifyConnectError(err, target)
          resume(Effect.fail(new AttemptFailed(error, err)))
        } else if (client !== undefined) {
          resume(Effect.succeed({ client, release }))
        } else {
          const lost = classifyRuntimeError("pg returned no client", target)
          resume(Effect.fail(new AttemptFailed(lost, lost)))
        }
      }
      original(callback)
      return Effect.sync(() => {
        abandoned = true
      })
    })

    const reported = attempt.pipe(
      Effect.tapError((failed) =>
        options.onAttemptFailed === undefined ? Effect.void : options.onAttemptFailed(failed.error)
      )
    )
    const policy = options.retry
    const acquire = policy === undefined ? reported : reported.pipe(
      Effect.retry({
        schedule: ReconnectSchedule.retry(policy).pipe(
          Schedule.tapOutput((delay) => options.onBackoff === undefined ? Effect.void : options.onBackoff(delay))
        ),
        while: (failed) => !pool.ending && isRetryableConnectFailure(failed.error, failed.cause)
      })
    )

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
      runCallback(acquire, {
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

    pool.connect = connect
    return Effect.sync(() => {
      Reflect.deleteProperty(pool, "connect")
    })
  })

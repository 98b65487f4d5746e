/**
 * `DB_FAILOVER_TIMEOUT` for the read replica's direct statements (internal/statement/run.ts): one
 * sweep over the statements in flight on the replica, a tenth of the timeout apart (between 10 ms
 * and 1 s), instead of a timer per statement. A statement still unanswered one timeout after it
 * was sent (a frozen or partitioned replica: its connection was idle in the pool and looked fine)
 * has its connection ended and fails with `FailoverTimeout`, between 1 and 1.1 timeouts after it
 * was sent; the replica client then runs it on the primary. Time is the `Clock`'s and the sweep
 * runs on a `Schedule`, so TestClock drives it.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { FailoverTimeout } from "../../DbError.js"
import type { ConnectTarget } from "../classify.js"
import type * as Run from "../statement/run.js"

/** How often the statements in flight are checked: a tenth of the timeout, between 10 ms and 1 s. */
export const sweepInterval = (timeout: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.min(Math.max(Duration.toMillis(timeout) / 10, 10), 1000))

/** The deadline of the replica at `target`, swept until the scope closes. */
export const make = (target: ConnectTarget, timeout: Duration.Duration): Effect.Effect<Run.Watch, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const timeoutMillis = Duration.toMillis(timeout)
    // each statement in flight, with the clock's time when it was sent
    const running = new Map<Run.Expirable, number>()
    const sweep = Effect.sync(() => {
      if (running.size === 0) return
      const now = clock.unsafeCurrentTimeMillis()
      for (const [run, sent] of running) {
        if (now - sent < timeoutMillis) continue
        running.delete(run)
        run.end(new FailoverTimeout({ host: target.host, port: target.port, timeoutMillis }))
      }
    })
    yield* sweep.pipe(Effect.repeat(Schedule.spaced(sweepInterval(timeout))), Effect.forkScoped)
    return {
      sent: (run) => {
        running.set(run, clock.unsafeCurrentTimeMillis())
      },
      answered: (run) => {
        running.delete(run)
      }
    }
  })

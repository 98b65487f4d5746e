/**
 * The read replica's failover deadline (internal/resilience/failoverDeadline.ts) on TestClock: a
 * statement still in flight one timeout after it was sent is ended with `FailoverTimeout` by the
 * next sweep (at most a tenth of the timeout later); one answered in time is left alone. The
 * behaviour on a real frozen standby is in ReadReplica.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { FailoverTimeout } from "../src/DbError.js"
import * as FailoverDeadline from "../src/internal/resilience/failoverDeadline.js"
import type * as Run from "../src/internal/statement/run.js"

const target = { host: "replica.test", port: 5433, user: "app", database: "app", connectTimeoutMillis: 1000, poolMax: 1 }
const TIMEOUT = Duration.millis(1000)

/** A statement in flight that records how it was ended. */
const statement = () => {
  const ended: Array<Error> = []
  const run: Run.Expirable = { end: (cause) => ended.push(cause) }
  return { run, ended }
}

describe("FailoverDeadline", () => {
  it("sweeps a tenth of the timeout apart, between 10 ms and 1 s", () => {
    assert.strictEqual(Duration.toMillis(FailoverDeadline.sweepInterval(Duration.millis(5000))), 500)
    assert.strictEqual(Duration.toMillis(FailoverDeadline.sweepInterval(Duration.millis(50))), 10)
    assert.strictEqual(Duration.toMillis(FailoverDeadline.sweepInterval(Duration.minutes(1))), 1000)
  })

  it.scoped("ends a statement unanswered one timeout after it was sent with FailoverTimeout, within a tenth of the timeout", () =>
    Effect.gen(function*() {
      const deadline = yield* FailoverDeadline.make(target, TIMEOUT)
      const hung = statement()
      deadline.sent(hung.run)
      yield* TestClock.adjust(Duration.millis(999))
      assert.deepStrictEqual(hung.ended, [])
      yield* TestClock.adjust(Duration.millis(100))
      assert.strictEqual(hung.ended.length, 1)
      const cause = hung.ended[0]
      assert.instanceOf(cause, FailoverTimeout)
      assert.strictEqual(cause.host, "replica.test")
      assert.strictEqual(cause.port, 5433)
      assert.strictEqual(cause.timeoutMillis, 1000)
      // ended once: it left the sweep
      yield* TestClock.adjust(Duration.seconds(5))
      assert.strictEqual(hung.ended.length, 1)
    }))

  it.scoped("leaves a statement answered in time alone, and times each statement from its own send", () =>
    Effect.gen(function*() {
      const deadline = yield* FailoverDeadline.make(target, TIMEOUT)
      const answered = statement()
      const later = statement()
      deadline.sent(answered.run)
      yield* TestClock.adjust(Duration.millis(600))
      deadline.sent(later.run)
      deadline.answered(answered.run)
      yield* TestClock.adjust(Duration.millis(600))
      assert.deepStrictEqual(answered.ended, [])
      assert.deepStrictEqual(later.ended, [])
      yield* TestClock.adjust(Duration.millis(500))
      assert.deepStrictEqual(answered.ended, [])
      assert.strictEqual(later.ended.length, 1)
    }))
})

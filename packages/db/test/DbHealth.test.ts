import { describe, expect, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as DbHealth from "../src/DbHealth.js"
import { ConnectionLost, ConnectionRefused } from "../src/DbError.js"
import * as ReconnectSchedule from "../src/ReconnectSchedule.js"

const policy: ReconnectSchedule.ReconnectPolicy = { ...ReconnectSchedule.defaultPolicy, jitter: 0 }
const refused = new ConnectionRefused({ host: "db.test", port: 5432, code: "ECONNREFUSED" })
const lost = new ConnectionLost({ host: "db.test", port: 5432, code: "57P01", reason: "terminating connection" })

/** A probe whose outcome the test switches, counting its calls. */
const makeProbe = Effect.gen(function*() {
  const answers = yield* Ref.make(true)
  const calls = yield* Ref.make<ReadonlyArray<number>>([])
  const probe = Effect.gen(function*() {
    const now = yield* TestClock.currentTimeMillis
    yield* Ref.update(calls, (cs) => [...cs, now])
    if (!(yield* Ref.get(answers))) return yield* refused
  })
  return { answers, calls, probe }
})

/** Waits (on events, not time) for the first snapshot satisfying `predicate`. */
const waitFor = (
  health: DbHealth.DbHealth["Type"],
  predicate: (s: DbHealth.HealthSnapshot) => boolean
) => Effect.map(Stream.runHead(Stream.filter(health.changes, predicate)), Option.getOrThrow)

describe("DbHealth", () => {
  it.scoped("starts healthy, with no error, since the time it started", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 minute")
      const { probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      const snapshot = yield* health.get
      expect(snapshot.status).toBe("healthy")
      expect(Option.isNone(snapshot.lastError)).toBe(true)
      expect(DateTime.toEpochMillis(snapshot.since)).toBe(60_000)
    }))

  it.scoped("stays healthy but keeps the error when a reported failure is answered by the next probe", () =>
    Effect.gen(function*() {
      const { calls, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      yield* health.report("primary", lost)
      const snapshot = yield* waitFor(health, (s) => s.status === "healthy" && Option.isSome(s.lastError))
      expect(Option.map(snapshot.lastError, (e) => e._tag)).toEqual(Option.some("ConnectionLost"))
      expect((yield* Ref.get(calls)).length).toBe(1)
    }))

  it.scoped("goes down with the probe's error and the time it happened when the primary does not answer", () =>
    Effect.gen(function*() {
      const { answers, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      yield* TestClock.adjust("5 seconds")
      yield* Ref.set(answers, false)
      yield* health.report("primary", lost)
      const down = yield* waitFor(health, (s) => s.status === "down")
      expect(DateTime.toEpochMillis(down.since)).toBe(5_000)
      expect(Option.map(down.lastError, (e) => e._tag)).toEqual(Option.some("ConnectionRefused"))
      expect(down.primary.failedProbes).toBe(1)
    }))

  it.scoped("re-probes a down primary on the backoff and reports healthy as soon as it answers", () =>
    Effect.gen(function*() {
      const { answers, calls, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      yield* Ref.set(answers, false)
      yield* health.report("primary", lost)
      yield* waitFor(health, (s) => s.status === "down")
      const healthy = yield* Effect.fork(waitFor(health, (s) => s.status === "healthy" && s.primary.failedProbes === 0))
      // probes at 0, 100, 300, 700 fail; the server answers from 1000 on; next probe at 1500
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(calls)).toEqual([0, 100, 300, 700])
      yield* Ref.set(answers, true)
      yield* TestClock.adjust("1 second")
      const snapshot = yield* Fiber.join(healthy)
      expect(yield* Ref.get(calls)).toEqual([0, 100, 300, 700, 1500])
      expect(DateTime.toEpochMillis(snapshot.since)).toBe(1500)
      expect(Option.isNone(snapshot.primary.retryDelay)).toBe(true)
    }))

  it.scoped("shows the backoff delay before the next probe while down", () =>
    Effect.gen(function*() {
      const { answers, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      yield* Ref.set(answers, false)
      yield* health.report("primary", lost)
      const down = yield* waitFor(health, (s) => s.status === "down" && Option.isSome(s.primary.retryDelay))
      expect(Option.map(down.primary.retryDelay, Duration.toMillis)).toEqual(Option.some(100))
      yield* TestClock.adjust("300 millis")
      const later = yield* health.get
      expect(Option.map(later.primary.retryDelay, Duration.toMillis)).toEqual(Option.some(400))
    }))

  it.scoped("fails readiness with DatabaseUnavailable while down and passes it again once healthy", () =>
    Effect.gen(function*() {
      const { answers, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      expect((yield* health.readiness).status).toBe("healthy")
      yield* Ref.set(answers, false)
      yield* health.report("primary", lost)
      yield* waitFor(health, (s) => s.status === "down")
      const error = yield* Effect.flip(health.readiness)
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.lastError).toBe("ConnectionRefused")
      expect(error.message).toContain("has not answered since 1970-01-01T00:00:00")
      yield* Ref.set(answers, true)
      yield* TestClock.adjust("1 second")
      yield* waitFor(health, (s) => s.status === "healthy")
      expect((yield* health.readiness).status).toBe("healthy")
    }))

  it.scoped("keeps liveness passing while the database is down", () =>
    Effect.gen(function*() {
      const { answers, probe } = yield* makeProbe
      const health = yield* DbHealth.make({ probePrimary: probe, policy })
      yield* Ref.set(answers, false)
      yield* health.report("primary", lost)
      yield* waitFor(health, (s) => s.status === "down")
      expect((yield* health.liveness).status).toBe("down")
    }))

  it.scoped("is degraded while the replica is down, calling the down hook once and the up hook when it returns", () =>
    Effect.gen(function*() {
      const primary = yield* makeProbe
      const replica = yield* makeProbe
      const downs = yield* Ref.make(0)
      const ups = yield* Ref.make(0)
      yield* Ref.set(replica.answers, false)
      const health = yield* DbHealth.make({
        probePrimary: primary.probe,
        probeReplica: replica.probe,
        policy,
        onReplicaDown: () => Ref.update(downs, (n) => n + 1),
        onReplicaUp: Ref.update(ups, (n) => n + 1)
      })
      const degraded = yield* waitFor(health, (s) => Option.exists(s.replica, (r) => r.status === "down"))
      expect(degraded.status).toBe("degraded")
      expect(degraded.primary.status).toBe("up")
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(downs)).toBe(1)
      yield* Ref.set(replica.answers, true)
      yield* TestClock.adjust("1 second")
      const healthy = yield* waitFor(health, (s) => s.status === "healthy")
      expect(Option.map(healthy.replica, (r) => r.status)).toEqual(Option.some("up"))
      expect(yield* Ref.get(ups)).toBe(1)
      expect(yield* Ref.get(downs)).toBe(1)
    }))

  it.scoped("reads the status from the readiness accessor of the provided layer", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(DbHealth.readiness)
      expect(error._tag).toBe("DatabaseUnavailable")
      expect((yield* DbHealth.liveness).status).toBe("down")
    }).pipe(Effect.provide(DbHealth.layerTest("down"))))
})

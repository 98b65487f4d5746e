/**
 * Recovery of SecureSqlClient after a fast restart of its PostgreSQL server, under a steady load of
 * idempotent queries (4 workers, `Idempotent.retry(SELECT 1)`), over several rounds:
 *
 * - server restart: fast shutdown until the server accepts connections again (PgTestServer
 *   pause + resume) — the baseline, what no client can beat;
 * - recovery: from the server accepting again to the first query that succeeds;
 * - outage seen: from the restart beginning to that first success;
 * - step bound: the longest backoff step a caller can be in after that outage
 *   (`ReconnectSchedule.stepBound`), i.e. what recovery is guaranteed not to exceed (plus a handshake).
 *
 *   npx tsx bench/recovery.bench.ts [rounds=5]
 *
 * The server is a throwaway PostgreSQL 15 from @takumi/testing with a test PKI (TLS 1.3).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { pathToFileURL } from "node:url"
import { Idempotent, ReconnectSchedule } from "@takumi/db"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"

const WORKERS = 4
const PASSWORD = "bench-Pa55word-recovery-8a1f"

interface Round {
  readonly serverRestart: number
  readonly recovery: number
  readonly outage: number
  readonly bound: number
  readonly failures: number
}

/** The benchmark; prints a table and returns the rounds. */
export const run = (rounds = 5) =>
  Effect.gen(function*() {
    const { server, settings } = yield* BenchDatabase.make({
      password: PASSWORD,
      applicationName: "takumi-bench-recovery",
      poolMax: WORKERS
    })
    const policy = yield* ReconnectSchedule.makePolicy()
    const context = yield* Layer.build(BenchDatabase.secureSqlClient(settings, PASSWORD)).pipe(Effect.orDie)
    const sql = Context.get(context, SqlClient.SqlClient)

    const lastSuccess = yield* Ref.make(0)
    const successes = yield* Ref.make(0)
    const failures = yield* Ref.make(0)
    const worker = Idempotent.retry(sql`SELECT 1`).pipe(
      Effect.zipRight(Clock.currentTimeMillis),
      Effect.flatMap((now) => Effect.zipRight(Ref.set(lastSuccess, now), Ref.update(successes, (n) => n + 1))),
      Effect.catchAll(() => Ref.update(failures, (n) => n + 1)),
      Effect.forever
    )
    const workers = yield* Effect.forkAll(Array.from({ length: WORKERS }, () => worker))
    const waitSuccessAfter = (since: number) =>
      Ref.get(lastSuccess).pipe(
        Effect.filterOrFail((t) => t >= since, () => "not yet"),
        Effect.retry(Schedule.spaced("1 millis")),
        Effect.orDie
      )

    yield* Effect.sleep("500 millis")
    const results: Array<Round> = []
    for (let round = 0; round < rounds; round++) {
      const failuresBefore = yield* Ref.get(failures)
      const begin = yield* Clock.currentTimeMillis
      yield* server.pause.pipe(Effect.orDie)
      yield* server.resume.pipe(Effect.orDie)
      const accepting = yield* Clock.currentTimeMillis
      const first = yield* waitSuccessAfter(accepting)
      results.push({
        serverRestart: accepting - begin,
        recovery: first - accepting,
        outage: first - begin,
        bound: Duration.toMillis(ReconnectSchedule.stepBound(policy, accepting - begin)),
        failures: (yield* Ref.get(failures)) - failuresBefore
      })
      // let the pool settle at full load before the next round
      yield* Effect.sleep("500 millis")
    }
    yield* Fiber.interrupt(workers)

    console.log(
      `\nrecovery after a fast restart: ${WORKERS} workers of Idempotent.retry(SELECT 1), pool ${WORKERS}, TLS, ` +
        `backoff ${Duration.format(policy.base)} x${policy.factor} cap ${Duration.format(policy.cap)} ` +
        `±${policy.jitter * 100}% (node ${process.version}); ${yield* Ref.get(successes)} queries in total`
    )
    console.log("  round  server restart  recovery after accept  outage seen by client  step bound  failed queries")
    results.forEach((r, i) => {
      console.log(
        `  ${String(i + 1).padStart(5)}  ${`${r.serverRestart} ms`.padStart(14)}  ${`${r.recovery} ms`.padStart(21)}  ` +
          `${`${r.outage} ms`.padStart(21)}  ${`${r.bound} ms`.padStart(10)}  ${String(r.failures).padStart(14)}`
      )
    })
    const restart = median(results.map((r) => r.serverRestart))
    const outage = median(results.map((r) => r.outage))
    console.log(
      `  median: server restart ${restart} ms, recovery after accept ${median(results.map((r) => r.recovery))} ms, ` +
        `outage seen ${outage} ms = ${(outage / Math.max(1, restart)).toFixed(2)}x the server's own restart`
    )
    return results
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href

if (invokedDirectly) {
  const rounds = Number(process.argv[2] ?? "5")
  Effect.runPromise(run(rounds)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}

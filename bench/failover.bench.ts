/**
 * Failover of the primary as the client sees it: a primary and its streaming hot standby listed
 * together in DB_HOST (`DB_TARGET_SESSION_ATTRS=read-write`), 4 workers writing
 * (`Idempotent.retry` marked INSERTs of unique ids), then the primary stopped (fast shutdown) and
 * the standby promoted (`pg_ctl promote -w`). Per round (fresh servers each time):
 *
 * - stop: the primary's fast shutdown;
 * - promote: `pg_ctl promote` until the standby has left recovery — with the stop, the part no
 *   client can beat;
 * - outage seen: from the stop beginning to the first write acknowledged by the new primary;
 * - client's share: outage seen − stop − promote, what the client adds (the backoff step it was in,
 *   a scan of the hosts, a TLS handshake). Negative when the client wrote on the new primary before
 *   `pg_ctl promote -w` returned: pg_ctl checks for the end of recovery every 100 ms;
 * - failed / lost / twice: writes that failed, acknowledged ids missing from the table, ids
 *   written twice (the table's primary key would refuse them) — all must be 0.
 *
 *   npx tsx bench/failover.bench.ts [rounds=3]
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
import * as Schedule from "effect/Schedule"
import { pathToFileURL } from "node:url"
import { Idempotent, ReconnectSchedule } from "@takumi/db"
import { PgTestServer } from "@takumi/testing"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"

const WORKERS = 4
const PASSWORD = "bench-Pa55word-failover-51c7"

interface Round {
  readonly stop: number
  readonly promote: number
  readonly outage: number
  readonly clientShare: number
  readonly failed: number
  readonly lost: number
  readonly twice: number
}

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([duration]) => Math.round(Duration.toMillis(duration)))

/** One round on fresh servers. */
const round = Effect.gen(function*() {
  const { server: primary, settings } = yield* BenchDatabase.make({
    password: PASSWORD,
    applicationName: "takumi-bench-failover",
    poolMax: WORKERS
  })
  const standby = yield* PgTestServer.makeStandby(primary)
  const hosts = [{ host: primary.host, port: primary.port }, { host: standby.host, port: standby.port }]
  const client = BenchDatabase.secureSqlClient({ ...settings, hosts, targetSessionAttrs: "read-write" }, PASSWORD).pipe(
    Layer.provide(ReconnectSchedule.layer({ budget: "60 seconds" }))
  )
  const context = yield* Layer.build(client).pipe(Effect.orDie)
  const sql = Context.get(context, SqlClient.SqlClient)
  yield* sql`CREATE TABLE ledger (id integer PRIMARY KEY, port integer NOT NULL)`.pipe(Effect.orDie)

  let next = 0
  let failed = 0
  let firstOnNew: number | undefined = undefined
  const acked: Array<number> = []
  const worker = Effect.gen(function*() {
    const id = ++next
    const rows = yield* Idempotent.retry(
      sql<{ port: number }>`INSERT INTO ledger (id, port) VALUES (${id}, inet_server_port()) RETURNING port`
    )
    acked.push(id)
    if (firstOnNew === undefined && rows[0]?.port === standby.port) firstOnNew = yield* Clock.currentTimeMillis
  }).pipe(
    Effect.catchAll(() =>
      Effect.sync(() => {
        failed++
      })
    ),
    Effect.forever
  )
  const workers = yield* Effect.forkAll(Array.from({ length: WORKERS }, () => worker))
  yield* Effect.sleep("500 millis")

  const begin = yield* Clock.currentTimeMillis
  const stop = yield* elapsed(primary.stop)
  const promote = yield* elapsed(standby.promote)
  const first = yield* Effect.suspend(() => firstOnNew === undefined ? Effect.fail("not yet") : Effect.succeed(firstOnNew)).pipe(
    Effect.retry(Schedule.spaced("1 millis"))
  )
  yield* Effect.sleep("300 millis")
  yield* Fiber.interrupt(workers)

  const rows = yield* sql<{ id: number }>`SELECT id FROM ledger`.pipe(Effect.orDie)
  const stored = new Set(rows.map((r) => r.id))
  return {
    stop,
    promote,
    outage: first - begin,
    clientShare: first - begin - stop - promote,
    failed,
    lost: acked.filter((id) => !stored.has(id)).length,
    // the primary key refuses a second row; a write run twice would have failed (counted above)
    twice: rows.length - stored.size
  } satisfies Round
}).pipe(Effect.scoped)

/** The benchmark; prints a table and returns the rounds. */
export const run = (rounds = 3) =>
  Effect.gen(function*() {
    const policy = yield* ReconnectSchedule.makePolicy()
    const results: Array<Round> = []
    for (let i = 0; i < rounds; i++) results.push(yield* round)
    console.log(
      `\nfailover: primary + streaming standby in DB_HOST (read-write), ${WORKERS} workers of Idempotent.retry(INSERT), ` +
        `pool ${WORKERS}, TLS, backoff ${Duration.format(policy.base)} x${policy.factor} cap ${Duration.format(policy.cap)} ` +
        `(node ${process.version})`
    )
    console.log("  round    stop  promote  outage seen by client  client's share  failed  lost  twice")
    results.forEach((r, i) => {
      console.log(
        `  ${String(i + 1).padStart(5)}  ${`${r.stop} ms`.padStart(6)}  ${`${r.promote} ms`.padStart(7)}  ` +
          `${`${r.outage} ms`.padStart(21)}  ${`${r.clientShare} ms`.padStart(14)}  ${String(r.failed).padStart(6)}  ` +
          `${String(r.lost).padStart(4)}  ${String(r.twice).padStart(5)}`
      )
    })
    const serverSide = median(results.map((r) => r.stop + r.promote))
    const outage = median(results.map((r) => r.outage))
    console.log(
      `  median: stop + promote ${serverSide} ms, outage seen ${outage} ms, client's share ` +
        `${median(results.map((r) => r.clientShare))} ms`
    )
    return results
  }).pipe(Logger.withMinimumLogLevel(LogLevel.Error))

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href

if (invokedDirectly) {
  const rounds = Number(process.argv[2] ?? "3")
  Effect.runPromise(run(rounds)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}

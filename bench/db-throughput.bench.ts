/**
 * Throughput of SecureSqlClient against bare `@effect/sql-pg` (PgClient.fromPool on a plain
 * `pg.Pool`), raw `pg.Pool`, and raw `pg.Pool` carrying the DbMetrics instruments (the cost of
 * monitoring alone), on the same local TLS server, in one run: 16 concurrent
 * `SELECT $1::int` for a few seconds per round, median of several rounds, rounds interleaved
 * so that machine noise hits every contender alike. Ratios are against raw `pg` of this run.
 *
 *   npx tsx bench/db-throughput.bench.ts [secondsPerRound=3] [rounds=3]
 *
 * The server is a throwaway PostgreSQL 15 from @takumi/testing with a test PKI (TLS 1.3).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Pg from "pg"
import { pathToFileURL } from "node:url"
import type { DbSettings } from "@takumi/config"
import { SecurityAlerts } from "@takumi/db"
import { PgTestServer, TestPki } from "@takumi/testing"
import * as Monitor from "../packages/db/src/internal/monitor.js"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"

const CONCURRENCY = 16
const POOL_MAX = 10
const PASSWORD = "bench-Pa55word-2b7d"

interface Contender {
  readonly name: string
  /** runs `CONCURRENCY` workers until the deadline, returns the number of completed queries */
  readonly run: (millis: number) => Effect.Effect<number>
}

const plainPool = (server: PgTestServer.PgTestServer, pki: TestPki.TestPki, Client?: typeof Pg.Client) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Pg.Pool({
        host: server.host,
        port: server.port,
        database: "app",
        user: "app",
        password: PASSWORD,
        ssl: { ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" },
        max: POOL_MAX,
        ...(Client === undefined ? {} : { Client })
      })
    ),
    (pool) => Effect.promise(() => pool.end())
  ).pipe(Effect.tap((pool) => Effect.sync(() => pool.on("error", () => undefined))))

/**
 * A raw pool with exactly the per-statement and per-connection instruments SecureSqlClient uses
 * (the monitor's client class and pool listeners): the cost of DbMetrics and the alert checks,
 * measured where it is largest relative to everything else.
 */
const instrumentedPool = (server: PgTestServer.PgTestServer, pki: TestPki.TestPki, settings: DbSettings) =>
  Effect.gen(function*() {
    const alerts = yield* SecurityAlerts.make
    const monitor = yield* Monitor.make(settings, alerts)
    const instruments = monitor.forPool({
      host: server.host,
      port: server.port,
      user: "app",
      database: "app",
      connectTimeoutMillis: 2000,
      poolMax: POOL_MAX
    })
    const pool = yield* plainPool(server, pki, instruments.Client)
    yield* instruments.watch(pool)
    return pool
  })

const rawContender = (pool: Pg.Pool, name = "raw pg.Pool"): Contender => ({
  name,
  run: (millis) =>
    Effect.promise(async () => {
      const deadline = Date.now() + millis
      let count = 0
      const worker = async (w: number) => {
        while (Date.now() < deadline) {
          await pool.query("SELECT $1::int", [w])
          count++
        }
      }
      await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
      return count
    })
})

const effectContender = (name: string, sql: SqlClient.SqlClient): Contender => ({
  name,
  run: (millis) =>
    Effect.suspend(() => {
      const deadline = Date.now() + millis
      let count = 0
      const worker = (w: number) =>
        sql`SELECT ${w}::int`.pipe(
          Effect.tap(() => {
            count++
          }),
          Effect.repeat({ while: () => Date.now() < deadline })
        )
      return Effect.forEach(Array.from({ length: CONCURRENCY }, (_, w) => w), worker, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.orDie, Effect.map(() => count))
    })
})

const build = <A>(layer: Layer.Layer<A, unknown>): Effect.Effect<Context.Context<A>, never, Scope.Scope> =>
  Effect.orDie(Layer.build(layer))

/** The benchmark; prints a table and returns the median q/s per contender. */
export const run = (secondsPerRound = 3, rounds = 3) =>
  Effect.gen(function*() {
    const { pki, server, settings } = yield* BenchDatabase.make({
      password: PASSWORD,
      applicationName: "takumi-bench",
      poolMax: POOL_MAX
    })

    const raw = rawContender(yield* plainPool(server, pki))
    const instrumented = rawContender(yield* instrumentedPool(server, pki, settings), "raw pg.Pool + DbMetrics")
    const bare = yield* build(PgClient.layerFromPool({ acquire: plainPool(server, pki) }))
    const secure = yield* build(BenchDatabase.secureSqlClient(settings, PASSWORD))
    const contenders: ReadonlyArray<Contender> = [
      raw,
      instrumented,
      effectContender("bare @effect/sql-pg", Context.get(bare, SqlClient.SqlClient)),
      effectContender("SecureSqlClient", Context.get(secure, SqlClient.SqlClient))
    ]

    // warm-up: open every pool's connections and JIT the paths
    for (const c of contenders) yield* c.run(500)

    const samples = new Map<string, Array<number>>(contenders.map((c) => [c.name, []]))
    const millis = secondsPerRound * 1000
    for (let round = 0; round < rounds; round++) {
      for (const c of contenders) {
        const count = yield* c.run(millis)
        samples.get(c.name)?.push(count / secondsPerRound)
      }
    }

    const results = contenders.map((c) => ({ name: c.name, qps: median(samples.get(c.name) ?? []) }))
    const baseline = results[0]?.qps ?? 1
    console.log(
      `\nthroughput: ${CONCURRENCY} concurrent SELECT $1::int, pool ${POOL_MAX}, TLS, ` +
        `median of ${rounds} x ${secondsPerRound}s (node ${process.version})`
    )
    for (const r of results) {
      console.log(
        `  ${r.name.padEnd(26)} ${r.qps.toFixed(0).padStart(8)} q/s   ${(r.qps / baseline).toFixed(2)}x raw pg`
      )
    }
    return results
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href

if (invokedDirectly) {
  const seconds = Number(process.argv[2] ?? "3")
  const rounds = Number(process.argv[3] ?? "3")
  Effect.runPromise(run(seconds, rounds)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}

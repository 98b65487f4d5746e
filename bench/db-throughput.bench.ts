/**
 * Throughput, latency and client CPU per query of SecureSqlClient against the baselines it must
 * be measured by, on one local TLS 1.3 PostgreSQL, pool 10, `SELECT $1::int`:
 *
 * - raw `pg.Pool` (`pool.query`): the driver alone, the reference of every ratio;
 * - bare `@effect/sql-pg` (`PgClient.fromPool` on a plain `pg.Pool`), with Effect's tracer on (the
 *   default) and off (`Effect.withTracerEnabled(false)`): what @effect/sql itself costs;
 * - SecureSqlClient (metrics, alerts, resilience hooks, statement timeouts all on);
 * - postgres.js, a fresh instance per sample (a long-lived one slows down as its queue array
 *   grows: FACTS.md), warmed before it is timed;
 * - pgbench (libpq, `min(concurrency, pool)` clients, extended and prepared): the limit.
 *
 * With `replica` as the fourth argument, two more on a streaming hot standby of the server (same
 * machine, same settings): a raw `pg.Pool` on it, and SecureSqlClient's `ReadReplica` with the
 * standby as `DB_READ_REPLICA` — reads through the replica client, whose statements take
 * `@effect/sql`'s path (per-statement failover deadline, connection acquirer), against the raw
 * pool on the same standby. Off by default (`npm run bench` times what issue 13's goals name).
 *
 * Each concurrency (1, 16, 64) runs `rounds` rounds; within a round every contender runs one
 * sample of `secondsPerRound`, one after the other, so that machine noise (the machine is shared)
 * hits every contender alike. Ratios are taken per round against the raw pg sample of the same
 * round and reported as `median [min–max]`. Latency: p50 / p99 of every query of the sample;
 * CPU: `process.cpuUsage` over the sample / queries completed.
 *
 *   npx tsx bench/db-throughput.bench.ts [secondsPerRound=3] [rounds=3] [concurrencies=1,16,64] [replica]
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
import postgres from "postgres"
import { pathToFileURL } from "node:url"
import { performance } from "node:perf_hooks"
import * as Option from "effect/Option"
import type { DbSettings } from "@takumi/config"
import { ReadReplica } from "@takumi/db"
import { PgTestServer, type TestPki } from "@takumi/testing"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"
import * as Pgbench from "./internal/pgbench.js"
import { type Sample, sampleOf, spread } from "./internal/sampleStats.js"

const POOL_MAX = 10
const PASSWORD = "bench-Pa55word-2b7d"

/** Counts and latencies of one timed run of `concurrency` workers. */
interface Tally {
  count: number
  readonly latencies: Array<number>
}

interface Contender {
  readonly name: string
  /** one timed sample: `concurrency` workers until `millis` have passed */
  readonly sample: (concurrency: number, millis: number) => Effect.Effect<Sample>
}

/** Times `run` (which fills the tally) with the process's CPU use around it. */
const timed = (millis: number, run: (deadline: number, tally: Tally) => Effect.Effect<void>) =>
  Effect.suspend(() => {
    const tally: Tally = { count: 0, latencies: [] }
    const cpu = process.cpuUsage()
    const start = performance.now()
    return Effect.map(run(start + millis, tally), () =>
      sampleOf(tally.count, performance.now() - start, tally.latencies, process.cpuUsage(cpu)))
  })

const workers = (concurrency: number, worker: (w: number) => Promise<void>) =>
  Effect.promise(() => Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w))))

const sslOf = (pki: TestPki.TestPki) => ({ ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" as const })

const plainPool = (server: { readonly host: string; readonly port: number }, pki: TestPki.TestPki) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({
        host: server.host,
        port: server.port,
        database: "app",
        user: "app",
        password: PASSWORD,
        ssl: sslOf(pki),
        max: POOL_MAX
      })
      pool.on("error", () => undefined)
      return pool
    }),
    (pool) => Effect.promise(() => pool.end())
  )

const rawContender = (pool: Pg.Pool, name = "raw pg.Pool"): Contender => ({
  name,
  sample: (concurrency, millis) =>
    timed(millis, (deadline, tally) =>
      workers(concurrency, async (w) => {
        while (performance.now() < deadline) {
          const t = performance.now()
          await pool.query("SELECT $1::int", [w])
          tally.latencies.push(performance.now() - t)
          tally.count++
        }
      }))
})

/** postgres.js: a fresh instance per sample, warmed (connections open, JIT) before it is timed. */
const postgresJsContender = (server: PgTestServer.PgTestServer, pki: TestPki.TestPki): Contender => {
  const loop = (sql: postgres.Sql, concurrency: number, deadline: number, tally: Tally | undefined) =>
    workers(concurrency, async (w) => {
      while (performance.now() < deadline) {
        const t = performance.now()
        await sql`SELECT ${w}::int`
        if (tally !== undefined) {
          tally.latencies.push(performance.now() - t)
          tally.count++
        }
      }
    })
  return {
    name: "postgres.js (fresh per sample)",
    sample: (concurrency, millis) =>
      Effect.acquireUseRelease(
        Effect.sync(() =>
          postgres({
            host: server.host,
            port: server.port,
            database: "app",
            username: "app",
            password: PASSWORD,
            ssl: sslOf(pki),
            max: POOL_MAX,
            onnotice: () => undefined
          })
        ),
        (sql) =>
          Effect.zipRight(
            loop(sql, Math.max(concurrency, POOL_MAX), performance.now() + 300, undefined),
            timed(millis, (deadline, tally) => loop(sql, concurrency, deadline, tally))
          ),
        (sql) => Effect.promise(() => sql.end({ timeout: 5 }))
      )
  }
}

const effectContender = (name: string, sql: SqlClient.SqlClient, tracer: boolean): Contender => ({
  name,
  sample: (concurrency, millis) =>
    timed(millis, (deadline, tally) => {
      const query = (w: number) =>
        Effect.suspend(() => {
          const t = performance.now()
          return Effect.map(sql`SELECT ${w}::int`, () => {
            tally.latencies.push(performance.now() - t)
            tally.count++
          })
        })
      // Effect's cheapest loop, as raw pg's is a plain `while`: `Effect.repeat` runs a schedule
      // step per iteration, which cost more per query here than everything @effect/sql does
      const worker = (w: number) =>
        Effect.whileLoop({ while: () => performance.now() < deadline, body: () => query(w), step: () => {} })
      return Effect.forEach(Array.from({ length: concurrency }, (_, w) => w), worker, {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.orDie, Effect.withTracerEnabled(tracer))
    })
})

const pgbenchContender = (
  server: PgTestServer.PgTestServer,
  pki: TestPki.TestPki,
  mode: "extended" | "prepared"
): Contender => ({
  name: `pgbench ${mode} (libpq)`,
  sample: (concurrency, millis) =>
    Effect.map(
      Pgbench.run({ server, pki, password: PASSWORD, clients: Math.min(concurrency, POOL_MAX), seconds: Math.max(1, Math.round(millis / 1000)), mode }),
      (qps): Sample => ({ qps, p50Millis: Number.NaN, p99Millis: Number.NaN, cpuMicrosPerQuery: undefined })
    )
})

const build = <A>(layer: Layer.Layer<A, unknown>): Effect.Effect<Context.Context<A>, never, Scope.Scope> =>
  Effect.orDie(Layer.build(layer))

const fmt = (x: number | undefined, digits: number) => x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits)

/** Prints one concurrency's table: medians over rounds, ratios per round against raw pg. */
const report = (concurrency: number, names: ReadonlyArray<string>, rounds: ReadonlyArray<ReadonlyMap<string, Sample>>) => {
  console.log(`\n### c${concurrency} (pool ${POOL_MAX}, ${rounds.length} rounds)\n`)
  console.log("| contender | q/s (median) | / raw pg per round: median [min–max] | p50 ms | p99 ms | client CPU µs/query |")
  console.log("|---|---|---|---|---|---|")
  for (const name of names) {
    const samples = rounds.flatMap((round) => {
      const s = round.get(name)
      return s === undefined ? [] : [s]
    })
    const ratios = rounds.flatMap((round) => {
      const s = round.get(name)
      const raw = round.get("raw pg.Pool")
      return s === undefined || raw === undefined ? [] : [s.qps / raw.qps]
    })
    const cpus = samples.flatMap((s) => (s.cpuMicrosPerQuery === undefined ? [] : [s.cpuMicrosPerQuery]))
    console.log(
      `| ${name} | ${fmt(median(samples.map((s) => s.qps)), 0)} | ${spread(ratios)} | ` +
        `${fmt(median(samples.map((s) => s.p50Millis)), 2)} | ${fmt(median(samples.map((s) => s.p99Millis)), 2)} | ` +
        `${cpus.length === 0 ? "-" : fmt(median(cpus), 1)} |`
    )
  }
}

/** The two contenders on a streaming standby of `server` (see the module comment). */
const replicaContenders = (database: BenchDatabase.BenchDatabase) =>
  Effect.gen(function*() {
    const standby = yield* PgTestServer.makeStandby(database.server)
    const settings: DbSettings = { ...database.settings, readReplica: Option.some({ host: standby.host, port: standby.port }) }
    const replica = Context.get(yield* build(BenchDatabase.secureSqlClient(settings, PASSWORD)), ReadReplica.ReadReplica)
    return [
      rawContender(yield* plainPool(standby, database.pki), "raw pg.Pool on the standby"),
      effectContender("SecureSqlClient ReadReplica (the standby)", replica, true)
    ]
  })

/** The benchmark: prints one markdown table per concurrency. */
export const run = (
  secondsPerRound = 3,
  rounds = 3,
  concurrencies: ReadonlyArray<number> = [1, 16, 64],
  withReplica = false
) =>
  Effect.gen(function*() {
    const database = yield* BenchDatabase.make({
      password: PASSWORD,
      applicationName: "takumi-bench",
      poolMax: POOL_MAX
    })
    const { pki, server, settings } = database
    const bare = Context.get(yield* build(PgClient.layerFromPool({ acquire: plainPool(server, pki) })), SqlClient.SqlClient)
    const secure = Context.get(yield* build(BenchDatabase.secureSqlClient(settings, PASSWORD)), SqlClient.SqlClient)
    // the contenders on long-lived pools, warmed up before each concurrency's rounds (postgres.js
    // warms its fresh instance in every sample; pgbench is a process of its own)
    const pooled: ReadonlyArray<Contender> = [
      rawContender(yield* plainPool(server, pki)),
      effectContender("bare @effect/sql-pg, tracer on", bare, true),
      effectContender("bare @effect/sql-pg, tracer off", bare, false),
      effectContender("SecureSqlClient", secure, true)
    ]
    const replica = withReplica ? yield* replicaContenders(database) : []
    const contenders: ReadonlyArray<Contender> = [
      ...pooled,
      postgresJsContender(server, pki),
      pgbenchContender(server, pki, "extended"),
      pgbenchContender(server, pki, "prepared"),
      ...replica
    ]
    const names = contenders.map((c) => c.name)
    console.log(
      `throughput: SELECT $1::int over TLS 1.3, pool ${POOL_MAX}, ${rounds} interleaved rounds x ${secondsPerRound} s ` +
        `per contender (node ${process.version})`
    )
    for (const concurrency of concurrencies) {
      // warm-up: open every pool's connections and JIT the paths at this concurrency
      for (const c of [...pooled, ...replica]) yield* c.sample(concurrency, 500)
      const results: Array<Map<string, Sample>> = []
      for (let round = 0; round < rounds; round++) {
        const samples = new Map<string, Sample>()
        for (const c of contenders) samples.set(c.name, yield* c.sample(concurrency, secondsPerRound * 1000))
        results.push(samples)
      }
      report(concurrency, names, results)
    }
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href

if (invokedDirectly) {
  const seconds = Number(process.argv[2] ?? "3")
  const rounds = Number(process.argv[3] ?? "3")
  const concurrencies = (process.argv[4] ?? "1,16,64").split(",").map(Number)
  Effect.runPromise(run(seconds, rounds, concurrencies, process.argv[5] === "replica")).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}

/**
 * Startup of SecureSqlClient against the least a client can do on the same server: a raw
 * `pg.Client` connecting over TLS (same CA, verify-full) and running `SELECT 1`.
 *
 * - raw pg.Client: `connect()` + `SELECT 1`;
 * - raw pg.Client + the posture query: the same, with SecureSqlClient's startup query (TLS as the
 *   server sees it, the role's privileges) sent first on the new connection, as its startup check
 *   sends it — the least a client that checks the posture can take;
 * - pg.Pool + the posture query: a plain `pg.Pool` given what SecureSqlClient gives pg (the CA
 *   file read and one `SecureContext` with its minimum version and ciphers, made per startup;
 *   SCRAM channel binding; Node's own host check, not the certificate posture's), one
 *   connection checked out, the posture query, released, then `pool.query("SELECT 1")` — the
 *   same protocol work as SecureSqlClient's startup, without its layer: what is left between it and SecureSqlClient is the layer's own machinery (alerts,
 *   metrics, client classes, resilience, the `SqlClient`);
 * - SecureSqlClient: building `SecureSqlClient.layer` (credentials from an in-memory backend, TLS
 *   options, pool, one connection checked with the posture query, metrics, alerts, health
 *   supervisor) + the first `SELECT 1` through `SqlClient`.
 *
 * Each is timed from the first call to the first row, in wall-clock time and in this process's
 * CPU time (user + system: what the client itself spent, which the machine's other load does not
 * inflate as much as the wall clock); closing them is not timed. Rounds are interleaved (raw, raw
 * with the posture query, the pool, then secure) and the ratios are taken per round, reported as
 * `median [min–max]`, after one unmeasured warm-up of each (module loading, JIT).
 *
 *   npx tsx bench/db-startup.bench.ts [rounds=25]
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { postureQuery } from "../packages/db/dist/internal/posture.js"
import { cipherList } from "../packages/db/dist/internal/tlsOptions.js"
import * as Pg from "pg"
import { readFileSync } from "node:fs"
import * as Tls from "node:tls"
import { pathToFileURL } from "node:url"
import { performance } from "node:perf_hooks"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"
import { spread } from "./internal/sampleStats.js"

const PASSWORD = "bench-Pa55word-5c1e"

/** Wall-clock and CPU milliseconds of one startup. */
interface Timing {
  readonly millis: number
  readonly cpuMillis: number
}

const cpuMillisSince = (cpu: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(cpu)
  return (used.user + used.system) / 1000
}

/** From `connect()` to the first row of a raw `pg.Client`, after the posture query when `checked`. */
const rawStartup = (database: BenchDatabase.BenchDatabase, checked = false): Effect.Effect<Timing> =>
  Effect.promise(async () => {
    const client = BenchDatabase.rawClient(database, PASSWORD)
    const cpu = process.cpuUsage()
    const start = performance.now()
    await client.connect()
    if (checked) await client.query(postureQuery)
    await client.query("SELECT 1")
    const timing = { millis: performance.now() - start, cpuMillis: cpuMillisSince(cpu) }
    await client.end()
    return timing
  })

/** From making the TLS context and the pool to the first row of `pool.query("SELECT 1")`, the posture query first. */
const poolStartup = (database: BenchDatabase.BenchDatabase): Effect.Effect<Timing> =>
  Effect.promise(async () => {
    const cpu = process.cpuUsage()
    const start = performance.now()
    const secureContext = Tls.createSecureContext({
      ca: readFileSync(database.pki.ca.certPath, "utf8"),
      ciphers: cipherList,
      minVersion: "TLSv1.2"
    })
    const pool = new Pg.Pool({
      host: database.server.host,
      port: database.server.port,
      database: "app",
      user: "app",
      password: PASSWORD,
      ssl: { secureContext, rejectUnauthorized: true },
      enableChannelBinding: true,
      max: 10,
      connectionTimeoutMillis: 2000
    })
    const client = await pool.connect()
    await client.query(postureQuery)
    client.release()
    await pool.query("SELECT 1")
    const timing = { millis: performance.now() - start, cpuMillis: cpuMillisSince(cpu) }
    await pool.end()
    return timing
  })

/** From building SecureSqlClient.layer to the first row of `SELECT 1` through it. */
const secureStartup = (database: BenchDatabase.BenchDatabase): Effect.Effect<Timing> =>
  Effect.scoped(Effect.gen(function*() {
    const cpu = process.cpuUsage()
    const start = performance.now()
    const context = yield* Effect.orDie(Layer.build(BenchDatabase.secureSqlClient(database.settings, PASSWORD)))
    const sql = Context.get(context, SqlClient.SqlClient)
    yield* Effect.orDie(sql`SELECT 1`)
    return { millis: performance.now() - start, cpuMillis: cpuMillisSince(cpu) }
  }))

/** The benchmark: prints the medians and the per-round ratio. */
export const run = (rounds = 25) =>
  Effect.gen(function*() {
    const database = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-bench-startup", poolMax: 10 })
    yield* rawStartup(database)
    yield* rawStartup(database, true)
    yield* poolStartup(database)
    yield* secureStartup(database)
    const raw: Array<Timing> = []
    const checked: Array<Timing> = []
    const pooled: Array<Timing> = []
    const secure: Array<Timing> = []
    for (let round = 0; round < rounds; round++) {
      raw.push(yield* rawStartup(database))
      checked.push(yield* rawStartup(database, true))
      pooled.push(yield* poolStartup(database))
      secure.push(yield* secureStartup(database))
    }
    const ratiosOf = (timings: ReadonlyArray<Timing>, of: (t: Timing) => number) =>
      raw.map((r, i) => of(timings[i] ?? r) / of(r))
    const ms = (timings: ReadonlyArray<Timing>, of: (t: Timing) => number) => `${median(timings.map(of)).toFixed(1)} ms`
    const wall = (t: Timing) => t.millis
    const cpu = (t: Timing) => t.cpuMillis
    console.log(`startup to the first row over TLS 1.3, ${rounds} interleaved rounds (node ${process.version}), medians:`)
    console.log("| | wall clock | client CPU |")
    console.log("|---|---|---|")
    console.log(`| raw pg.Client connect + SELECT 1 | ${ms(raw, wall)} | ${ms(raw, cpu)} |`)
    console.log(`| raw pg.Client connect + posture query + SELECT 1 | ${ms(checked, wall)} | ${ms(checked, cpu)} |`)
    console.log(`| pg.Pool, same TLS and channel binding, posture query + SELECT 1 | ${ms(pooled, wall)} | ${ms(pooled, cpu)} |`)
    console.log(`| SecureSqlClient.layer + SELECT 1 | ${ms(secure, wall)} | ${ms(secure, cpu)} |`)
    console.log(`| raw + posture query / raw per round | ${spread(ratiosOf(checked, wall))} | ${spread(ratiosOf(checked, cpu))} |`)
    console.log(`| pg.Pool + posture query / raw per round | ${spread(ratiosOf(pooled, wall))} | ${spread(ratiosOf(pooled, cpu))} |`)
    console.log(`| SecureSqlClient / raw per round | ${spread(ratiosOf(secure, wall))} | ${spread(ratiosOf(secure, cpu))} |`)
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (invokedDirectly) {
  Effect.runPromise(run(Number(process.argv[2] ?? "25"))).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    }
  )
}

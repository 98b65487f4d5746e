/**
 * One contender of `db-throughput.bench.ts` alone, for a CPU profile of where its time per query
 * goes (`raw` pg, `bare` @effect/sql-pg or `secure`, for some seconds at a concurrency, 5 s at 16 by default):
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts secure 5 64
 *
 * or many startups of SecureSqlClient (`SecureSqlClient.layer` built, `SELECT 1`, closed) in one
 * process, for where startup's client CPU goes:
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts startup 300
 *
 * (`startup-raw` does the same with the raw `pg.Client` connect + `SELECT 1` of the startup bench)
 *
 * then `npx tsx bench/profile.ts --summary /tmp/prof/<file>.cpuprofile` prints the self time per
 * function (top 25) and per package. Not a `.bench.ts`: `npm run bench` does not run it.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Pg from "pg"
import { readFileSync } from "node:fs"
import { performance } from "node:perf_hooks"
import type { PgTestServer, TestPki } from "@takumi/testing"
import * as BenchDatabase from "./internal/benchDatabase.js"

const PASSWORD = "bench-Pa55word-2b7d"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
}

const packageOf = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m?.[1] !== undefined) return m[1]
  if (url.includes("/packages/")) return `takumi:${/packages\/([^/]+)/.exec(url)?.[1] ?? "?"}`
  return url === "" ? "(native/gc/idle)" : url.startsWith("node:") ? "node" : "other"
}

const summary = (file: string) => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const fns = new Map<string, number>()
  const pkgs = new Map<string, number>()
  let total = 0
  for (const id of profile.samples) {
    const node = byId.get(id)
    if (node === undefined || node.callFrame.functionName === "(idle)") continue
    total++
    const { functionName, lineNumber, url } = node.callFrame
    const key = `${functionName || "(anonymous)"} ${url.replace(/.*node_modules\//, "").replace(/.*\/packages\//, "")}:${lineNumber}`
    fns.set(key, (fns.get(key) ?? 0) + 1)
    pkgs.set(packageOf(url), (pkgs.get(packageOf(url)) ?? 0) + 1)
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`)
  console.log(`non-idle samples: ${total}\nby package:\n${top(pkgs, 12).join("\n")}\ntop functions (self):\n${top(fns, 25).join("\n")}`)
}

/**
 * The bench's plain pool. Its `error` listener keeps the server's 57P01 to a connection that is
 * still ending when the test server stops (seen with `bare`) from crashing the process.
 */
const plainPool = (server: PgTestServer.PgTestServer, pki: TestPki.TestPki) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new Pg.Pool({ host: server.host, port: server.port, database: "app", user: "app", password: PASSWORD, ssl: { ca: pki.ca.certPem }, max: 10 })
      pool.on("error", () => undefined)
      return pool
    }),
    (pool) => Effect.promise(() => pool.end())
  )

/** `raw`: `pool.query` in plain `async` loops, as the bench's raw pg contender. */
const rawLoops = (pool: Pg.Pool, seconds: number, concurrency: number) =>
  Effect.promise(async () => {
    const deadline = performance.now() + seconds * 1000
    let count = 0
    await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < deadline) {
        await pool.query("SELECT $1::int", [w])
        count++
      }
    }))
    return count
  })

/** `bare` or `secure`: the `sql` template in `Effect.whileLoop`s, as the bench's Effect contenders. */
const effectLoops = (sql: SqlClient.SqlClient, seconds: number, concurrency: number) =>
  Effect.suspend(() => {
    const deadline = performance.now() + seconds * 1000
    let count = 0
    // the bench's loop: `Effect.repeat` would add a schedule step per query
    const worker = (w: number) =>
      Effect.whileLoop({
        while: () => performance.now() < deadline,
        body: () => Effect.map(sql`SELECT ${w}::int`, () => count++),
        step: () => {}
      })
    return Effect.forEach(Array.from({ length: concurrency }, (_, w) => w), worker, {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.orDie, Effect.map(() => count))
  })

const program = (which: string, seconds: number, concurrency: number) =>
  Effect.gen(function*() {
    const { pki, server, settings } = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-profile", poolMax: 10 })
    const layer: Layer.Layer<SqlClient.SqlClient, unknown> = which === "bare"
      ? PgClient.layerFromPool({ acquire: plainPool(server, pki) })
      : BenchDatabase.secureSqlClient(settings, PASSWORD)
    const count = which === "raw"
      ? yield* rawLoops(yield* plainPool(server, pki), seconds, concurrency)
      : yield* effectLoops(Context.get(yield* Effect.orDie(Layer.build(layer)), SqlClient.SqlClient), seconds, concurrency)
    console.log(`${which}: ${Math.round(count / seconds)} q/s`)
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

/**
 * `count` startups one after the other: build SecureSqlClient.layer, run `SELECT 1`, close it
 * (`startup`), or the raw `pg.Client` of `db-startup.bench.ts` (`startup-raw`), for comparison.
 */
const startups = (count: number, raw: boolean) =>
  Effect.gen(function*() {
    const database = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-profile", poolMax: 10 })
    const layer = BenchDatabase.secureSqlClient(database.settings, PASSWORD)
    const secure = Effect.scoped(Effect.flatMap(Layer.build(layer), (context) => Context.get(context, SqlClient.SqlClient)`SELECT 1`))
    const plain = Effect.promise(async () => {
      const client = BenchDatabase.rawClient(database, PASSWORD)
      await client.connect()
      await client.query("SELECT 1")
      await client.end()
    })
    const cpu = process.cpuUsage()
    const start = Date.now()
    for (let i = 0; i < count; i++) yield* Effect.orDie(raw ? plain : secure)
    const used = process.cpuUsage(cpu)
    console.log(`${raw ? "raw pg.Client" : "SecureSqlClient"}: ${((Date.now() - start) / count).toFixed(1)} ms wall, ${((used.user + used.system) / 1000 / count).toFixed(1)} ms CPU each`)
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

if (process.argv[2] === "--summary") summary(process.argv[3] ?? "")
else if (process.argv[2]?.startsWith("startup") === true) {
  Effect.runPromise(startups(Number(process.argv[3] ?? "300"), process.argv[2] === "startup-raw")).then(() => process.exit(0))
}
else {
  const [which = "secure", seconds = "5", concurrency = "16"] = process.argv.slice(2)
  Effect.runPromise(program(which, Number(seconds), Number(concurrency))).then(() => process.exit(0))
}

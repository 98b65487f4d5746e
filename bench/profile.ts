/**
 * One contender of `db-throughput.bench.ts` alone, for a CPU profile of where its time per query
 * goes (`bare` or `secure`, concurrency 16, a few seconds):
 *
 *   node --import tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts secure 5
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

const program = (which: string, seconds: number) =>
  Effect.gen(function*() {
    const { pki, server, settings } = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-profile", poolMax: 10 })
    const layer: Layer.Layer<SqlClient.SqlClient, unknown> = which === "bare"
      ? PgClient.layerFromPool({
        acquire: Effect.acquireRelease(
          Effect.sync(() =>
            new Pg.Pool({ host: server.host, port: server.port, database: "app", user: "app", password: PASSWORD, ssl: { ca: pki.ca.certPem }, max: 10 })
          ),
          (pool) => Effect.promise(() => pool.end())
        )
      })
      : BenchDatabase.secureSqlClient(settings, PASSWORD)
    const sql = Context.get(yield* Effect.orDie(Layer.build(layer)), SqlClient.SqlClient)
    const deadline = Date.now() + seconds * 1000
    let count = 0
    yield* Effect.forEach(Array.from({ length: 16 }, (_, w) => w), (w) =>
      Effect.repeat(Effect.map(sql`SELECT ${w}::int`, () => count++), { while: () => Date.now() < deadline }), {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.orDie)
    console.log(`${which}: ${Math.round(count / seconds)} q/s`)
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

/**
 * `count` startups one after the other: build SecureSqlClient.layer, run `SELECT 1`, close it
 * (`startup`), or the raw `pg.Client` of `db-startup.bench.ts` (`startup-raw`), for comparison.
 */
const startups = (count: number, raw: boolean) =>
  Effect.gen(function*() {
    const { pki, server, settings } = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-profile", poolMax: 10 })
    const layer = BenchDatabase.secureSqlClient(settings, PASSWORD)
    const secure = Effect.scoped(Effect.flatMap(Layer.build(layer), (context) => Context.get(context, SqlClient.SqlClient)`SELECT 1`))
    const plain = Effect.promise(async () => {
      const client = new Pg.Client({
        host: server.host,
        port: server.port,
        database: "app",
        user: "app",
        password: PASSWORD,
        ssl: { ca: pki.ca.certPem, rejectUnauthorized: true, minVersion: "TLSv1.2" }
      })
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
else Effect.runPromise(program(process.argv[2] ?? "secure", Number(process.argv[3] ?? "5"))).then(() => process.exit(0))

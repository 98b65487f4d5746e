/**
 * Where one startup's wall clock goes: the moments of a raw `pg.Client` startup (connect +
 * `SELECT 1`, as in `db-startup.bench.ts`) and of a SecureSqlClient startup (`SecureSqlClient.layer`
 * built + `SELECT 1`) on one server, each the median over `rounds` startups, in milliseconds since
 * the start: TCP connect called and connected, TLS handshake begun (`tls.connect`, after pg's
 * SSLRequest) and done, each query pg is asked to send, each ReadyForQuery, the layer built, the
 * first row. Then the Effect fibers started and the Effect operations run per SecureSqlClient
 * startup (start to close), counted by a supervisor in a separate pass (supervision slows every
 * operation, so it is not timed).
 *
 *   npx tsx bench/startup-timeline.ts [rounds=30]
 *
 * The moments are taken by wrapping `net.Socket#connect`, `tls.connect` (pg calls it through
 * `require("tls")`), `pg.Client#query` and `pg.Client#_handleReadyForQuery` in this process only.
 * Not a `.bench.ts`: `npm run bench` does not run it (a diagnostic, like `profile.ts`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import * as Supervisor from "effect/Supervisor"
import * as Pg from "pg"
import { createRequire } from "node:module"
import * as Net from "node:net"
import { performance } from "node:perf_hooks"
import type * as Tls from "node:tls"
import * as BenchDatabase from "./internal/benchDatabase.js"
import { median } from "./internal/median.js"

const PASSWORD = "bench-Pa55word-71e3"

/** The moments of the startup being timed: name (with its occurrence, `#2`) → ms since `start`. */
let moments = new Map<string, number>()
let start = 0
const mark = (name: string) => {
  let key = name
  for (let n = 2; moments.has(key); n++) key = `${name} #${n}`
  moments.set(key, performance.now() - start)
}

/** Replaces `owner[method]` with a function that runs `before` (with `this` and the arguments) first. */
const wrap = (owner: object, method: string, before: (self: never, args: Array<unknown>) => void) => {
  const original = Reflect.get(owner, method) as (...args: Array<unknown>) => unknown
  Reflect.set(owner, method, function(this: never, ...args: Array<unknown>) {
    before(this, args)
    return original.apply(this, args)
  })
}

const instrument = () => {
  wrap(Net.Socket.prototype, "connect", (socket: Net.Socket) => {
    mark("TCP connect called")
    socket.once("connect", () => mark("TCP connected"))
  })
  const tls: typeof Tls = createRequire(import.meta.url)("node:tls")
  const connect = tls.connect
  Reflect.set(tls, "connect", (...args: Parameters<typeof Tls.connect>) => {
    mark("TLS handshake begun")
    return connect(...args).once("secureConnect", () => mark("TLS handshake done"))
  })
  wrap(Pg.Client.prototype, "query", (_client, [query]) => {
    const text = typeof query === "string" ? query : (query as { text?: string } | undefined)?.text
    mark(`query sent: ${String(text).replace(/\s+/g, " ").slice(0, 20)}`)
  })
  wrap(Pg.Client.prototype, "_handleReadyForQuery", () => mark("ReadyForQuery"))
}

/** Counts the fibers started and the operations run under it (with op supervision on). */
class Counting extends Supervisor.AbstractSupervisor<void> {
  fibers = 0
  readonly ops = new Map<string, number>()
  get value() {
    return Effect.void
  }
  override onStart() {
    this.fibers++
  }
  override onEffect(_fiber: unknown, effect: unknown) {
    const op = String((effect as { _op?: unknown })._op)
    this.ops.set(op, (this.ops.get(op) ?? 0) + 1)
  }
}

const program = (rounds: number) =>
  Effect.gen(function*() {
    const database = yield* BenchDatabase.make({ password: PASSWORD, applicationName: "takumi-timeline", poolMax: 10 })
    const layer = BenchDatabase.secureSqlClient(database.settings, PASSWORD)
    const secure = Effect.scoped(Effect.gen(function*() {
      start = performance.now()
      const context = yield* Effect.orDie(Layer.build(layer))
      mark("layer built")
      yield* Effect.orDie(Context.get(context, SqlClient.SqlClient)`SELECT 1`)
      mark("first row")
    }))
    const raw = Effect.promise(async () => {
      const client = BenchDatabase.rawClient(database, PASSWORD)
      start = performance.now()
      await client.connect()
      mark("connected")
      await client.query("SELECT 1")
      mark("first row")
      await client.end()
    })
    const timeline = function*(startup: Effect.Effect<void>) {
      yield* startup
      const runs: Array<Map<string, number>> = []
      for (let round = 0; round < rounds; round++) {
        moments = new Map()
        yield* startup
        runs.push(moments)
      }
      // a moment missing from a startup is left out of its median, not counted as 0 ms
      return [...(runs[0]?.keys() ?? [])].map((key) => [key, median(runs.flatMap((run) => run.get(key) ?? []))] as const)
    }
    instrument()
    for (const [name, startup] of [["raw pg.Client", raw], ["SecureSqlClient", secure]] as const) {
      console.log(`\n${name}, ${rounds} startups, median ms since the start:`)
      for (const [key, ms] of [...(yield* timeline(startup))].sort((a, b) => a[1] - b[1])) {
        console.log(`${ms.toFixed(1).padStart(6)}  ${key}`)
      }
    }
    const counting = new Counting()
    for (let round = 0; round < rounds; round++) {
      yield* secure.pipe(
        Effect.supervised(counting),
        Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
      )
    }
    const ops = [...counting.ops].sort((a, b) => b[1] - a[1])
    const total = ops.reduce((sum, [, n]) => sum + n, 0)
    console.log(`\nEffect per SecureSqlClient startup (start to close): ${counting.fibers / rounds} fibers started, ${Math.round(total / rounds)} operations`)
    console.log(ops.slice(0, 8).map(([op, n]) => `${op} ${Math.round(n / rounds)}`).join(", "))
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

Effect.runPromise(program(Number(process.argv[2] ?? "30"))).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  }
)

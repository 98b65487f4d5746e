/**
 * `npm run example:sigterm` — a graceful shutdown under a real SIGTERM, sent to a real process.
 * The example runs twice: as the parent (the default) and, with `TAKUMI_SIGTERM_CHILD=1`, as the
 * service the parent spawns (this Node, `--conditions=@takumi/source --import tsx`, this file).
 *
 * - The child is a service under `NodeRuntime.runMain`: `HealthHttp.layerServer` on port 0,
 *   `Draining.layer` with a grace of 3 seconds, `TakumiDb.layer`. It starts one statement that takes
 *   1.5 s (`SELECT pg_sleep(1.5)`) and prints `ready <port>`.
 * - The parent waits for `ready` and for the statement in pg_stat_activity, sends SIGTERM, and checks
 *   from outside: `/readyz` answers 503 and `/livez` 200 during the grace; the child exits with 0
 *   (runMain's teardown: an interruption alone is a clean exit); the statement finished and the
 *   child printed `statement done`; `/livez` refuses connections once the server closed; and
 *   pg_stat_activity lists no session of the child.
 *
 * The database is a throwaway PostgreSQL with TLS from @takumi/testing, the password comes from
 * `SECRETS_BACKEND=env` (development).
 */
import * as Resource from "@effect/opentelemetry/Resource"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import { Draining, HealthHttp, MetricsExport } from "@takumi/observability"
import type * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { applicationName, heading, ok, runExample, sessionsOf, startDatabase } from "./internal/harness.js"

const GRACE = "3 seconds"

// ---------------------------------------------------------------------------------------------
// child mode: the service

/**
 * The unit of work in flight at the SIGTERM. It runs on its own fiber, and the layer's release
 * waits for it; built right after the database layer, that release comes after the drain (so the
 * grace and the 503s begin at once) and before the pool closes.
 */
const InFlight = Layer.scopedDiscard(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const statement = yield* Effect.forkDaemon(
      sql`SELECT pg_sleep(1.5)`.pipe(Effect.zipRight(Effect.sync(() => console.log("statement done"))))
    )
    yield* Effect.addFinalizer(() => Fiber.await(statement))
  })
)

const Service = HealthHttp.layerServer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provideMerge(Layer.mergeAll(MetricsExport.layerPrometheus(), Draining.layer({ grace: GRACE }))),
  Layer.provide(Resource.layer({ serviceName: "sigterm-example" })),
  Layer.provideMerge(InFlight),
  Layer.provideMerge(TakumiDb.layer)
)

const child = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the health server listens on TCP")
  yield* Effect.sync(() => console.log(`ready ${address.port}`))
  return yield* Effect.never
}).pipe(Effect.provide(Service))

// ---------------------------------------------------------------------------------------------
// parent mode: the orchestrator

interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** This file as a child process in child mode, with `env` added; killed when the scope closes if still running. */
const spawnChild = (env: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const port = yield* Deferred.make<number>()
    const exited = yield* Deferred.make<ChildExit>()
    let stdout = ""
    let stderr = ""
    const process_ = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--conditions=@takumi/source", "--import", "tsx", fileURLToPath(import.meta.url)], {
          // the parent's own environment (PATH, the network settings) plus the service's settings
          env: { ...process.env, ...env, TAKUMI_SIGTERM_CHILD: "1" },
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    process_.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const ready = /^ready (\d+)$/m.exec(stdout)
      if (ready?.[1] !== undefined) Deferred.unsafeDone(port, Effect.succeed(Number(ready[1])))
    })
    process_.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    process_.on("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
    return {
      pid: process_.pid,
      port: Deferred.await(port),
      exited: Deferred.await(exited),
      terminate: Effect.sync(() => process_.kill("SIGTERM")),
      output: Effect.sync(() => ({ stdout, stderr }))
    }
  })

/** What a GET on the health server got: Left when the connection is refused. */
type Answer = Either.Either<{ readonly status: number; readonly body: string }, Cause.UnknownException>

/** A GET on the child's health server. */
const get = (port: number, path: string): Effect.Effect<Answer> =>
  Effect.either(Effect.tryPromise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, body: await response.text() }
  }))

/** Whether the GET was answered with `status`. */
const isStatus = (status: number) => (answer: Answer) =>
  Either.isRight(answer) && answer.right.status === status

/** Fails the example with `message` unless `condition` holds. */
const check = (condition: boolean, message: string) => condition ? Effect.void : Effect.dieMessage(message)

const parent = Effect.gen(function*() {
  const db = yield* startDatabase()
  const service = yield* spawnChild({ ...db.env, NODE_ENV: "development", SECRETS_BACKEND: "env", DB_PASSWORD: db.password })
  const port = yield* service.port.pipe(
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => "the child did not print ready" }),
    Effect.race(Effect.flatMap(service.exited, (exit) => Effect.fail(`the child exited early (${exit.code})`))),
    Effect.tapError(() => Effect.flatMap(service.output, (output) => Effect.sync(() => console.error(output.stderr)))),
    Effect.orDieWith((message) => new Error(message))
  )
  yield* ok(`child ${service.pid} ready: health server on http://127.0.0.1:${port}`)

  // the statement must be in flight when the signal arrives: wait until PostgreSQL runs it
  const sleeping = db.server.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'",
    [applicationName]
  ).pipe(Effect.map((rows) => Number(rows[0]?.["n"] ?? 0)), Effect.orDie)
  yield* Effect.repeat(sleeping, { schedule: Schedule.spaced("10 millis"), until: (n) => n === 1 })
  const before = yield* sessionsOf(db.server)
  const ready = yield* get(port, "/readyz")
  yield* check(isStatus(200)(ready), "the service is not ready before the SIGTERM")
  yield* ok(`SELECT pg_sleep(1.5) in flight; /readyz 200; ${before} session(s) of the child in pg_stat_activity`)

  yield* heading("SIGTERM to the child:")
  yield* service.terminate
  // asked every 10 ms as a probe would, until the first 503 (the schedule's output is that answer)
  const draining = yield* get(port, "/readyz").pipe(
    Effect.repeat(Schedule.recurUntil(isStatus(503)).pipe(Schedule.addDelay(() => "10 millis"))),
    Effect.timeoutFail({ duration: GRACE, onTimeout: () => new Error(`/readyz did not answer 503 within ${GRACE}`) }),
    Effect.orDie
  )
  const live = yield* get(port, "/livez")
  yield* check(isStatus(503)(draining) && isStatus(200)(live), "the drain did not fail readiness alone")
  yield* ok(`within the grace: /readyz 503 ${Either.match(draining, { onLeft: () => "", onRight: (answer) => answer.body })}, /livez 200`)

  const exit = yield* service.exited.pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the child did not exit after SIGTERM") }),
    Effect.orDie
  )
  const { stderr, stdout } = yield* service.output
  yield* check(exit.code === 0 && exit.signal === null, `the child exited with ${exit.code} (${exit.signal}):\n${stderr}`)
  yield* ok("the child exited with code 0 (runMain: interrupted by the signal, nothing failed)")
  yield* check(/^statement done$/m.test(stdout), `the in-flight statement did not finish:\n${stdout}\n${stderr}`)
  yield* ok("the in-flight statement finished: the child printed `statement done` before it exited")
  const closed = yield* get(port, "/livez")
  yield* check(Either.isLeft(closed), "the health server still answers after the exit")
  yield* ok("/livez refuses connections: the health server closed")
  const left = yield* sessionsOf(db.server)
  yield* check(left === 0, `${left} session(s) of the child left`)
  yield* ok(`pg_stat_activity: 0 session(s) of the child left after SIGTERM (grace ${Duration.format(Duration.decode(GRACE))})`)
})

// the mode comes from the environment, read as Config like every other setting
const isChild = Effect.runSync(Config.boolean("TAKUMI_SIGTERM_CHILD").pipe(Config.withDefault(false), Effect.orDie))

if (isChild) {
  NodeRuntime.runMain(child, { disablePrettyLogger: true })
} else {
  runExample("SIGTERM to a real process: readiness fails, in-flight work finishes, the pool closes", parent)
}

/**
 * `npm run example:health-server` — what an orchestrator and a monitoring stack see of a service:
 * `@takumi/observability`'s `HealthHttp.layerServer` serves `/livez`, `/readyz` and `/metrics` on
 * its own HTTP server (port 0 here: any free port on loopback), `MetricsExport.layerPrometheus`
 * renders every Effect metric in the Prometheus text format, Takumi's under the OpenTelemetry
 * database-client names, and `Draining.layer` is the shutdown signal. The example runs a few
 * statements, then asks over HTTP, as a probe or a scrape would:
 *
 * - `/livez` and `/readyz` answer 200, `/metrics` counts exactly the statements it ran;
 * - once the drain begins (what SIGTERM does: the layer's finalizer), `/readyz` answers 503 so the
 *   balancer stops routing, while `/livez` stays 200 (the process is not to be restarted) and the
 *   pool still serves statements during the grace period.
 *
 * The database is a throwaway PostgreSQL with TLS from @takumi/testing, the password comes from
 * `SECRETS_BACKEND=env` (development).
 */
import * as Resource from "@effect/opentelemetry/Resource"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { TakumiDb } from "@takumi/db"
import { Draining, HealthHttp, MetricsExport } from "@takumi/observability"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { heading, ok, runExample, startDatabase, withEnvironment } from "./internal/harness.js"

// the service's layers as the package README composes them: the database (DbHealth comes with
// it), Prometheus export and the drain state on top, the health server last; a grace of 1 second
// instead of the default 15 so that the example does not wait for a readiness probe that never comes
const Service = HealthHttp.layerServer({ port: 0, host: "127.0.0.1" }).pipe(
  Layer.provideMerge(Layer.mergeAll(MetricsExport.layerPrometheus(), Draining.layer({ grace: "1 second" }))),
  Layer.provide(Resource.layer({ serviceName: "health-server-example" })),
  Layer.provideMerge(TakumiDb.layer)
)

/** A GET on the health server, as a probe or a Prometheus scrape makes it. */
const get = (port: number, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, body: await response.text() }
  })

/** The first sample line of the metric `name` in a Prometheus text (one pool here: one series per name and label set). */
const sampleLine = (text: string, name: string, labels = "") =>
  text.split("\n").find((line) => line.startsWith(`${name}{`) && line.includes(labels))

/** The value of a Prometheus sample line: the number after the last space. */
const sampleValue = (line: string | undefined) => Number(line?.slice(line.lastIndexOf(" ") + 1) ?? Number.NaN)

/** Fails the example with `message` unless `condition` holds. */
const check = (condition: boolean, message: string) => condition ? Effect.void : Effect.dieMessage(message)

const STATEMENTS = 3

runExample(
  "Health and metrics over HTTP: /livez, /readyz, /metrics and a draining shutdown",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const address = (yield* HttpServer.HttpServer).address
      if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the health server listens on TCP")
      yield* ok(`health server on http://127.0.0.1:${address.port} (HealthHttp.layerServer, port 0)`)
      const operations = (text: string) => sampleValue(sampleLine(text, "db_client_operation_duration_count"))

      yield* heading(`The service runs ${STATEMENTS} statements:`)
      const before = operations((yield* get(address.port, "/metrics")).body)
      yield* sql`CREATE TABLE visit (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`
      yield* sql`INSERT INTO visit DEFAULT VALUES`
      const [row] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM visit`
      yield* ok(`CREATE TABLE, INSERT, SELECT: ${row?.n} visit(s)`)

      yield* heading("Asked over HTTP, as a probe and a scrape do:")
      const live = yield* get(address.port, "/livez")
      const ready = yield* get(address.port, "/readyz")
      yield* ok(`/livez ${live.status} ${live.body}`)
      yield* ok(`/readyz ${ready.status} ${ready.body}`)
      yield* check(live.status === 200 && ready.status === 200, "the healthy service is not live and ready")
      const scrape = yield* get(address.port, "/metrics")
      const after = operations(scrape.body)
      yield* ok(
        `/metrics ${scrape.status}: db_client_operation_duration_count ${after} ` +
          `(${before} before, +${after - before} for the ${STATEMENTS} statements)`
      )
      yield* check(scrape.status === 200 && after - before === STATEMENTS, "/metrics does not count the statements")
      const connections = sampleLine(scrape.body, "db_client_connection_count", `server_port="${db.server.port}"`)
      yield* check(connections !== undefined, "/metrics has no db_client_connection_count of the pool")
      yield* ok(`/metrics: ${connections}`)

      yield* heading("Draining (what the layer's release does on SIGTERM, here started by hand):")
      const draining = yield* Effect.fork(Draining.drain)
      // the drain flips readiness first thing; wait for the flip, not for a guessed time
      yield* Effect.repeat(Draining.isDraining, { schedule: Schedule.spaced("10 millis"), until: (flipped) => flipped })
      const drainingReady = yield* get(address.port, "/readyz")
      const drainingLive = yield* get(address.port, "/livez")
      const [served] = yield* sql<{ readonly one: number }>`SELECT 1 AS one`
      yield* ok(`/readyz ${drainingReady.status} ${drainingReady.body}`)
      yield* ok(`/livez ${drainingLive.status}; the pool still serves statements during the grace (SELECT 1 -> ${served?.one})`)
      yield* check(drainingReady.status === 503 && drainingLive.status === 200, "the drain did not fail readiness alone")
      yield* Fiber.join(draining)
      yield* ok(`draining: /readyz 503, /livez 200; the grace of ${Duration.format((yield* Draining.Draining).grace)} is over`)
    }).pipe(
      Effect.provide(Service),
      withEnvironment({ ...db.env, NODE_ENV: "development", SECRETS_BACKEND: "env", DB_PASSWORD: db.password })
    )
  })
)

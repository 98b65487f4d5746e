/**
 * Health and metrics over HTTP, as an `@effect/platform` `HttpRouter` to mount in a service:
 *
 * - `GET /livez`: 200 while the health supervisors run, whatever the database's state (a database
 *   outage must not restart the process); 503 with `HealthSupervisorStopped` otherwise.
 * - `GET /readyz`: 200 when healthy; 200 with `status: "degraded"` and `detail` when the primary
 *   works but something is off (the read replica is down and reads go to the primary, a probe is
 *   on its way, every connection is stuck in a slow statement); 503 when the primary is down or
 *   the service is draining (`Draining`).
 * - `GET /metrics`: the Prometheus text of `MetricsExport.PrometheusMetrics`.
 *
 * `layerServer({ port })` serves the router on its own Node HTTP server (the optional peer
 * `@effect/platform-node`, loaded only by that layer) and drains before closing it.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { DbHealth } from "@takumi/db"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Draining } from "./Draining.js"
import { MissingPeerDependency, PrometheusMetrics } from "./MetricsExport.js"

/**
 * The JSON body of `/livez` and `/readyz`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthBody {
  /** `ok` / `degraded` (200), `draining` / `down` / `stopped` (503) */
  readonly status: "ok" | "degraded" | "draining" | "down" | "stopped"
  /** DbHealth's status */
  readonly database?: DbHealth.HealthStatus | undefined
  /** why not healthy, in words */
  readonly detail?: string | undefined
  readonly since?: string | undefined
  readonly primary?: string | undefined
  readonly replica?: string | undefined
  /** `_tag` of the last error */
  readonly lastError?: string | undefined
}

const describe = (snapshot: DbHealth.HealthSnapshot): Omit<HealthBody, "status"> => ({
  database: snapshot.status,
  since: DateTime.formatIso(snapshot.since),
  primary: snapshot.primary.status,
  ...Option.match(snapshot.detail, { onNone: () => ({}), onSome: (detail) => ({ detail }) }),
  ...Option.match(snapshot.replica, { onNone: () => ({}), onSome: (replica) => ({ replica: replica.status }) }),
  ...Option.match(snapshot.lastError, { onNone: () => ({}), onSome: (error) => ({ lastError: error._tag }) })
})

const respond = (status: number, body: HealthBody) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store" } })

/**
 * `/livez`: 200 unless the health supervisor stopped.
 *
 * @since 0.1.0
 * @category handlers
 */
export const livez: Effect.Effect<HttpServerResponse.HttpServerResponse, never, DbHealth.DbHealth> = DbHealth.liveness.pipe(
  Effect.map((snapshot) => respond(200, { status: "ok", ...describe(snapshot) })),
  Effect.catchTag("HealthSupervisorStopped", (error) => Effect.succeed(respond(503, { status: "stopped", detail: error.message })))
)

/**
 * `/readyz`: 503 while draining or while the primary is down, 200 otherwise (`degraded` with its
 * detail when the replica or a probe is off).
 *
 * @since 0.1.0
 * @category handlers
 */
export const readyz: Effect.Effect<HttpServerResponse.HttpServerResponse, never, DbHealth.DbHealth | Draining> = Effect.gen(
  function*() {
    const draining = yield* Draining
    if (yield* draining.isDraining) {
      const snapshot = yield* Effect.flatMap(DbHealth.DbHealth, (health) => health.get)
      return respond(503, { ...describe(snapshot), status: "draining", detail: "the service is shutting down" })
    }
    return yield* DbHealth.readiness.pipe(
      Effect.map((snapshot) => respond(200, { status: snapshot.status === "healthy" ? "ok" : "degraded", ...describe(snapshot) })),
      Effect.catchTag("DatabaseUnavailable", (error) =>
        Effect.succeed(respond(503, {
          status: "down",
          database: "down",
          since: error.since,
          detail: error.message,
          ...(error.lastError === undefined ? {} : { lastError: error.lastError })
        })))
    )
  }
)

/**
 * `/metrics`: the Prometheus text; 500 with the reason when the collection fails.
 *
 * @since 0.1.0
 * @category handlers
 */
export const metrics: Effect.Effect<HttpServerResponse.HttpServerResponse, never, PrometheusMetrics> = Effect.flatMap(
  PrometheusMetrics,
  (prometheus) =>
    prometheus.scrape.pipe(
      Effect.map((text) => HttpServerResponse.text(text, { contentType: prometheus.contentType })),
      Effect.catchTag("MetricsCollectionFailed", (error) =>
        Effect.as(Effect.logWarning(error.message), HttpServerResponse.text(error.message, { status: 500 })))
    )
)

/**
 * `/livez` and `/readyz` only, for a service that exports its metrics another way (OTLP).
 *
 * @since 0.1.0
 * @category routers
 */
export const healthRouter: HttpRouter.HttpRouter<never, DbHealth.DbHealth | Draining> = HttpRouter.empty.pipe(
  HttpRouter.get("/livez", livez),
  HttpRouter.get("/readyz", readyz)
)

/**
 * `/livez`, `/readyz` and `/metrics`; mount it with `HttpRouter.mount` / `HttpRouter.concat` or
 * serve it as it is.
 *
 * @since 0.1.0
 * @category routers
 */
export const router: HttpRouter.HttpRouter<never, DbHealth.DbHealth | Draining | PrometheusMetrics> = healthRouter.pipe(
  HttpRouter.get("/metrics", metrics)
)

/**
 * Options of `layerServer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  readonly port: number
  /** the address to listen on (default: every interface, as Node's `listen`) */
  readonly host?: string | undefined
}

/**
 * `router` on a standalone Node HTTP server (`NodeHttpServer` of the optional peer
 * `@effect/platform-node`). When the layer is released it first drains (`Draining.drain`: the
 * readiness flip and the grace period, with the server still answering 503), then closes the
 * server; the database layer below closes after both. It provides the `HttpServer`, e.g. to read
 * the address of a server started on port 0 (`HttpServer.addressWith`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (
  options: ServerOptions
): Layer.Layer<
  HttpServer.HttpServer,
  HttpServerError.ServeError | MissingPeerDependency,
  DbHealth.DbHealth | Draining | PrometheusMetrics
> =>
  Layer.unwrapEffect(
    Effect.tryPromise({
      try: () => Promise.all([import("@effect/platform-node/NodeHttpServer"), import("node:http")]),
      catch: () => new MissingPeerDependency({ packageName: "@effect/platform-node", feature: "HealthHttp.layerServer" })
    }).pipe(
      Effect.map(([NodeHttpServer, Http]) => {
        const serve = HttpServer.serve(router).pipe(
          Layer.provideMerge(NodeHttpServer.layerServer(() => Http.createServer(), {
            port: options.port,
            ...(options.host === undefined ? {} : { host: options.host })
          }))
        )
        // built after the server, so released before it: the 503s are served during the grace
        const drainFirst = Layer.scopedDiscard(Effect.flatMap(Draining, (draining) => Effect.addFinalizer(() => draining.drain)))
        return drainFirst.pipe(Layer.provideMerge(serve))
      })
    )
  )

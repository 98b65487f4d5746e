/**
 * MetricsExport.layerOtlp against a real HTTP listener on loopback standing in for the collector:
 * the OTLP/HTTP JSON request it receives carries Takumi's metrics under their conventional names.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Resource from "@effect/opentelemetry/Resource"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { DbMetrics } from "@takumi/db"
import * as Http from "node:http"
import { MetricsExport } from "../src/index.js"

/** A listener that hands the body of the first POST to /v1/metrics to `received`. */
const collector = Effect.gen(function*() {
  const received = yield* Deferred.make<string>()
  const server = yield* Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          if (request.method === "POST" && request.url === "/v1/metrics") {
            Deferred.unsafeDone(received, Effect.succeed(Buffer.concat(chunks).toString("utf8")))
          }
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )
  const address = server.address()
  if (address === null || typeof address === "string") return yield* Effect.dieMessage("the collector has no TCP address")
  return { received, url: `http://127.0.0.1:${address.port}/v1/metrics` }
})

describe("MetricsExport", () => {
  it.live("pushes db.client.operation.duration with the connection attributes to an OTLP/HTTP collector", () =>
    Effect.gen(function*() {
      const { received, url } = yield* collector
      yield* Metric.update(DbMetrics.forServer(DbMetrics.queryDuration, "db.example", 6543), 0.004)
      yield* Layer.build(
        MetricsExport.layerOtlp({ url, exportInterval: "100 millis", servers: [{ host: "db.example", port: 6543, namespace: "orders" }] })
          .pipe(Layer.provide(Resource.layer({ serviceName: "otlp-test" })))
      ).pipe(Effect.orDie)
      const body = yield* Deferred.await(received).pipe(Effect.timeout("10 seconds"), Effect.orDie)
      expect(body).toContain(`"name":"db.client.operation.duration"`)
      expect(body).toContain(`"unit":"s"`)
      expect(body).toContain(`{"key":"db.namespace","value":{"stringValue":"orders"}}`)
      expect(body).toContain(`{"key":"service.name","value":{"stringValue":"otlp-test"}}`)
      expect(body).not.toContain("takumi_db_query_duration_seconds")
    }).pipe(Effect.scoped))
})

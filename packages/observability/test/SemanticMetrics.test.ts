/**
 * SemanticMetrics' producer on Effect metrics updated by hand (no database): the export names,
 * units and attributes of the OpenTelemetry database-client conventions, ours where they have none.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Resource from "@effect/opentelemetry/Resource"
import { DataPointType, type MetricData } from "@opentelemetry/sdk-metrics"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { testSettings } from "@takumi/config"
import { DbMetrics } from "@takumi/db"
import { SemanticMetrics } from "../src/index.js"

const server = { host: "db.example", port: 6543 }

const collect = (options: SemanticMetrics.ProducerOptions) =>
  SemanticMetrics.makeProducer(options).pipe(
    Effect.flatMap((producer) => Effect.promise(() => producer.collect())),
    Effect.map((result) => result.resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)),
    Effect.provide(Resource.layerEmpty)
  )

const byName = (metrics: ReadonlyArray<MetricData>, name: string) => {
  const found = metrics.filter((metric) => metric.descriptor.name === name)
  assert.strictEqual(found.length, 1, `one ${name}`)
  return found[0]!
}

const pointsFor = (metric: MetricData) =>
  metric.dataPoints.filter((point) => point.attributes["server.address"] === server.host)

describe("SemanticMetrics", () => {
  it.effect("exports the statement histogram as db.client.operation.duration in seconds with the connection attributes", () =>
    Effect.gen(function*() {
      yield* Metric.update(DbMetrics.forServer(DbMetrics.queryDuration, server.host, server.port), 0.002)
      const metrics = yield* collect({ servers: [{ ...server, namespace: "orders", maxConnections: 12 }] })
      const duration = byName(metrics, "db.client.operation.duration")
      expect(duration.descriptor.unit).toBe("s")
      expect(pointsFor(duration).map((point) => point.attributes)).toEqual([{
        "db.system.name": "postgresql",
        "server.address": "db.example",
        "server.port": 6543,
        "db.namespace": "orders",
        "db.client.connection.pool.name": "db.example:6543/orders"
      }])
      expect(metrics.some((metric) => metric.descriptor.name === "takumi_db_query_duration_seconds")).toBe(false)
    }))

  it.effect("merges the active and idle gauges into db.client.connection.count by state, as an UpDownCounter, and adds the maximum", () =>
    Effect.gen(function*() {
      yield* Metric.set(DbMetrics.forServer(DbMetrics.connectionsActive, server.host, server.port), 3)
      yield* Metric.set(DbMetrics.forServer(DbMetrics.connectionsIdle, server.host, server.port), 1)
      const metrics = yield* collect({ servers: [{ ...server, maxConnections: 12 }] })
      const count = byName(metrics, "db.client.connection.count")
      assert(count.dataPointType === DataPointType.SUM, "an UpDownCounter is a non-monotonic sum")
      expect(count.isMonotonic).toBe(false)
      const byState = Object.fromEntries(pointsFor(count).map((p) => [p.attributes["db.client.connection.state"], p.value]))
      expect(byState).toEqual({ used: 3, idle: 1 })
      expect(pointsFor(byName(metrics, "db.client.connection.max")).map((p) => p.value)).toEqual([12])
    }))

  it.effect("renames the connection errors' kind to error.type and keeps our own names where the conventions have none", () =>
    Effect.gen(function*() {
      yield* Metric.increment(Metric.tagged(DbMetrics.forServer(DbMetrics.connectionErrors, server.host, server.port), DbMetrics.kindTag, "ConnectionRefused"))
      yield* Metric.increment(Metric.tagged(DbMetrics.securityAlerts, DbMetrics.kindTag, "TlsDowngrade"))
      const metrics = yield* collect({ servers: [] })
      const errors = byName(metrics, "takumi.db.client.connection.errors")
      expect(pointsFor(errors).map((p) => p.attributes["error.type"])).toEqual(["ConnectionRefused"])
      const alerts = byName(metrics, "takumi.db.security_alerts")
      expect(alerts.dataPoints.map((p) => p.attributes)).toContainEqual({ kind: "TlsDowngrade" })
    }))

  it.effect("passes the program's other Effect metrics through unchanged, or leaves them out on request", () =>
    Effect.gen(function*() {
      yield* Metric.increment(Metric.counter("orders_placed_total", { incremental: true }))
      expect((yield* collect({})).some((m) => m.descriptor.name === "orders_placed_total")).toBe(true)
      expect((yield* collect({ passthrough: false })).some((m) => m.descriptor.name === "orders_placed_total")).toBe(false)
    }))

  it("describes the primary and the read replica of the settings with the database and the pool maximum", () => {
    const settings = testSettings({
      host: "primary.db",
      port: 5432,
      database: "orders",
      pool: { min: 0, max: 8 },
      readReplica: Option.some({ host: "replica.db", port: 5433 })
    })
    expect(SemanticMetrics.serversFromSettings(settings)).toEqual([
      { host: "primary.db", port: 5432, namespace: "orders", maxConnections: 8 },
      { host: "replica.db", port: 5433, namespace: "orders", maxConnections: 8 }
    ])
  })
})

import { DbMetrics } from "@takumi/db"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"

// everything of ours, for a /metrics endpoint
export const takumiMetrics = Effect.map(Metric.snapshot, (pairs) =>
  pairs.filter((pair) => pair.metricKey.name.startsWith("takumi_")))

// one value, e.g. in a health page
export const inUse = Metric.value(DbMetrics.forServer(DbMetrics.connectionsActive, "db.internal", 5432))

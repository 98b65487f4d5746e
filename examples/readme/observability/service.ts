import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Resource from "@effect/opentelemetry/Resource"
import { DbConfig } from "@takumi/config"
import { SecureSqlClient } from "@takumi/db"
import { Draining, HealthHttp, MetricsExport } from "@takumi/observability"
import { SecretsBackend } from "@takumi/secrets"
import { Effect, Layer } from "effect"

// the database: config, secrets, the TLS pool (DbHealth comes with it)
const Database = SecureSqlClient.layer.pipe(
  Layer.provide(SecretsBackend.layerFromConfig),
  Layer.provideMerge(DbConfig.layer)
)

// Prometheus export (servers from DbConfig), the drain state, the health server on :9464
const Observability = HealthHttp.layerServer({ port: 9464 }).pipe(
  Layer.provideMerge(Layer.mergeAll(MetricsExport.layerPrometheus(), Draining.layer({ grace: "15 seconds" }))),
  Layer.provide(Resource.layer({ serviceName: "orders" })),
  Layer.provideMerge(Database)
)

const main = Effect.never // the service's own work

main.pipe(Effect.provide(Observability), NodeRuntime.runMain)

/**
 * Every Effect metric of the program — Takumi's renamed per `SemanticMetrics` — exported through
 * `@effect/opentelemetry` to Prometheus (a scrape served by our own HTTP route, see `HealthHttp`)
 * and/or OTLP over HTTP. Both layers need `@effect/opentelemetry`'s `Resource` (e.g.
 * `Resource.layer({ serviceName })`); each registers its own reader, so both may run at once.
 *
 * When `servers` is not given and a `DbConfig` is in the context, the servers come from it
 * (`SemanticMetrics.serversFromSettings`), so `db.namespace` and `db.client.connection.max` are
 * exported without further wiring.
 *
 * @since 0.1.0
 */
import type * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { type MetricProducer, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { DbConfig } from "@takumi/config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SemanticMetrics from "./SemanticMetrics.js"

/**
 * A Prometheus collection failed (an error thrown by a metric producer or the reader).
 *
 * @since 0.1.0
 * @category errors
 */
export class MetricsCollectionFailed extends Schema.TaggedError<MetricsCollectionFailed>()("MetricsCollectionFailed", {
  reason: Schema.String
}) {
  override get message(): string {
    return `Collecting the metrics for Prometheus failed: ${this.reason}. The scrape is answered with 500; ` +
      "the next scrape collects again."
  }
}

/**
 * An optional peer dependency a layer needs is not installed.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingPeerDependency extends Schema.TaggedError<MissingPeerDependency>()("MissingPeerDependency", {
  packageName: Schema.String,
  feature: Schema.String
}) {
  override get message(): string {
    return `${this.feature} needs the optional peer dependency ${this.packageName}: install it next to ` +
      `@takumi/observability (npm install ${this.packageName}).`
  }
}

/**
 * The Prometheus text exposition of the current metrics, for a `/metrics` route.
 *
 * @since 0.1.0
 * @category tags
 */
export class PrometheusMetrics extends Context.Tag("@takumi/observability/PrometheusMetrics")<PrometheusMetrics, {
  /** collects every metric now and serializes it (text format 0.0.4) */
  readonly scrape: Effect.Effect<string, MetricsCollectionFailed>
  readonly contentType: string
}>() {}

/**
 * The content type of the Prometheus text format, as `PrometheusExporter` serves it.
 *
 * @since 0.1.0
 * @category constants
 */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

/**
 * Options shared by both layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions extends SemanticMetrics.ProducerOptions {}

/**
 * Options of `layerPrometheus`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrometheusOptions extends ExportOptions {
  /** a prefix for every metric name (default none) */
  readonly prefix?: string | undefined
  /** leave out the `target_info` series carrying the resource attributes (default false) */
  readonly withoutTargetInfo?: boolean | undefined
}

/** `servers` as given, else from `DbConfig` when one is provided, else none. */
const resolveOptions = (options: SemanticMetrics.ProducerOptions) =>
  options.servers !== undefined
    ? Effect.succeed(options)
    : Effect.map(Effect.serviceOption(DbConfig), (config) => ({
      ...options,
      servers: Option.match(config, { onNone: () => [], onSome: SemanticMetrics.serversFromSettings })
    }))

/**
 * What `Metrics.registerProducer` does, written out: the exporters of 0.208 carry their own
 * sdk-metrics 2.2.0, whose `MetricReader` class is not the 2.12 one `@effect/opentelemetry` is typed
 * against (it runs: a reader only calls the producer's `collect`), so the reader is handed the
 * producer directly. Closing the layer shuts the reader down (the OTLP reader's last export),
 * bounded by 3 s as upstream does.
 */
const register = (
  reader: { setMetricProducer(producer: MetricProducer): void; shutdown(): Promise<void> },
  options: ExportOptions
) =>
  Effect.flatMap(resolveOptions(options), (resolved) =>
    Effect.flatMap(SemanticMetrics.makeProducer(resolved), (producer) =>
      Effect.acquireRelease(
        Effect.sync(() => reader.setMetricProducer(producer)),
        () =>
          Effect.tryPromise(() => reader.shutdown()).pipe(
            Effect.catchAll((error) => Effect.logWarning("Metrics reader shutdown failed", error)),
            Effect.timeoutOption("3 seconds")
          )
      )))

/**
 * A `PrometheusExporter` that starts no server of its own (`preventServerStart`): `scrape` is
 * served by `HealthHttp.router`'s `/metrics` on the service's HTTP server.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPrometheus = (
  options: PrometheusOptions = {}
): Layer.Layer<PrometheusMetrics, never, Resource.Resource> =>
  Layer.scoped(
    PrometheusMetrics,
    Effect.gen(function*() {
      const exporter = new PrometheusExporter({ preventServerStart: true })
      yield* register(exporter, options)
      const serializer = new PrometheusSerializer(options.prefix, false, undefined, options.withoutTargetInfo ?? false)
      const scrape = Effect.tryPromise({
        try: () => exporter.collect(),
        catch: (error) => new MetricsCollectionFailed({ reason: String(error) })
      }).pipe(
        Effect.flatMap(({ errors, resourceMetrics }) =>
          errors.length > 0
            ? Effect.fail(new MetricsCollectionFailed({ reason: errors.map(String).join("; ") }))
            : Effect.succeed(serializer.serialize(resourceMetrics))
        )
      )
      return { scrape, contentType: prometheusContentType }
    })
  )

/**
 * Options of `layerOtlp`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OtlpOptions extends ExportOptions {
  /** the collector's metrics endpoint (default the exporter's: `http://localhost:4318/v1/metrics` or `OTEL_EXPORTER_OTLP_*`) */
  readonly url?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** export interval (default 60 s, the SDK's default) */
  readonly exportInterval?: Duration.DurationInput | undefined
}

/**
 * Pushes the metrics to an OpenTelemetry collector over OTLP/HTTP (JSON) every `exportInterval`,
 * and once more when the layer closes. Needs the optional peer
 * `@opentelemetry/exporter-metrics-otlp-http` (0.208.x), loaded only when this layer is built.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOtlp = (
  options: OtlpOptions = {}
): Layer.Layer<never, MissingPeerDependency, Resource.Resource> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const { OTLPMetricExporter } = yield* Effect.tryPromise({
        try: () => import("@opentelemetry/exporter-metrics-otlp-http"),
        catch: () =>
          new MissingPeerDependency({
            packageName: "@opentelemetry/exporter-metrics-otlp-http",
            feature: "MetricsExport.layerOtlp"
          })
      })
      const exporter = new OTLPMetricExporter({
        ...(options.url === undefined ? {} : { url: options.url }),
        ...(options.headers === undefined ? {} : { headers: { ...options.headers } })
      })
      const reader = new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: Duration.toMillis(options.exportInterval ?? Duration.seconds(60))
      })
      yield* register(reader, options)
    })
  )

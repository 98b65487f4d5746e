/**
 * @since 0.1.0
 */

/**
 * Takumi's Effect metrics renamed to the OpenTelemetry database-client conventions at export.
 *
 * @since 0.1.0
 */
export * as SemanticMetrics from "./SemanticMetrics.js"

/**
 * Prometheus (scrape) and OTLP (push) export of every Effect metric.
 *
 * @since 0.1.0
 */
export * as MetricsExport from "./MetricsExport.js"

/**
 * The shutdown signal: readiness fails, in-flight statements get a grace period, then the pool closes.
 *
 * @since 0.1.0
 */
export * as Draining from "./Draining.js"

/**
 * `/livez`, `/readyz` and `/metrics` as an `HttpRouter`, and a standalone server layer.
 *
 * @since 0.1.0
 */
export * as HealthHttp from "./HealthHttp.js"

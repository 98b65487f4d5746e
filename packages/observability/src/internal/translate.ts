/**
 * The translation of Takumi's Effect metrics into OpenTelemetry database-client semantic
 * conventions, applied to what `@effect/opentelemetry`'s producer collects. The Effect metrics keep
 * their names (other packages' tests and dashboards read them); only the export is renamed.
 */
import { type Attributes, ValueType } from "@opentelemetry/api"
import type {
  CollectionResult,
  DataPoint,
  MetricCollectOptions,
  MetricData,
  MetricProducer
} from "@opentelemetry/sdk-metrics"
import { AggregationTemporality, DataPointType } from "@opentelemetry/sdk-metrics"

/** @internal */
export interface ServerInfo {
  readonly host: string
  readonly port: number
  readonly namespace?: string | undefined
  readonly maxConnections?: number | undefined
}

/** @internal */
export interface Rule {
  readonly source: string
  readonly name: string
  readonly unit: string
  readonly description: string
  /** sampled gauges exported as the UpDownCounter the conventions specify */
  readonly upDown?: boolean
  /** attributes added to every point, e.g. the connection state */
  readonly fixed?: Readonly<Record<string, string>>
  /** tag → attribute renames, e.g. `kind` → `error.type` */
  readonly rename?: Readonly<Record<string, string>>
}

/** @internal */
export const rules: ReadonlyArray<Rule> = [
  {
    source: "takumi_db_query_duration_seconds",
    name: "db.client.operation.duration",
    unit: "s",
    description: "Duration of database client operations (PostgreSQL statements, sent to result or error)",
    rename: { error_type: "error.type" }
  },
  {
    source: "takumi_db_connections_active",
    name: "db.client.connection.count",
    unit: "{connection}",
    description: "The number of connections that are currently in the state described by db.client.connection.state",
    upDown: true,
    fixed: { "db.client.connection.state": "used" }
  },
  {
    source: "takumi_db_connections_idle",
    name: "db.client.connection.count",
    unit: "{connection}",
    description: "The number of connections that are currently in the state described by db.client.connection.state",
    upDown: true,
    fixed: { "db.client.connection.state": "idle" }
  },
  {
    source: "takumi_db_connections_waiting",
    name: "db.client.connection.pending_requests",
    unit: "{request}",
    description: "The number of current pending requests for an open connection",
    upDown: true
  },
  {
    source: "takumi_db_connection_setup_seconds",
    name: "db.client.connection.create_time",
    unit: "s",
    description: "The time it took to create a new connection (TCP, TLS, password lookup, authentication)"
  },
  {
    source: "takumi_db_tls_handshake_seconds",
    name: "takumi.db.client.tls_handshake.duration",
    unit: "s",
    description: "TLS handshake time of a new PostgreSQL connection (SSLRequest round trip included)"
  },
  {
    source: "takumi_db_connection_errors_total",
    name: "takumi.db.client.connection.errors",
    unit: "{error}",
    description: "Failed PostgreSQL connection attempts and lost connections, by error.type",
    rename: { kind: "error.type" }
  },
  {
    source: "takumi_db_security_alerts_total",
    name: "takumi.db.security_alerts",
    unit: "{alert}",
    description: "Security alerts raised, by kind"
  },
  {
    source: "takumi_secret_fetches_total",
    name: "takumi.secret.fetches",
    unit: "{fetch}",
    description: "Secrets backend reads by backend and outcome"
  },
  {
    source: "takumi_secret_cache_hits_total",
    name: "takumi.secret.cache_hits",
    unit: "{hit}",
    description: "Secret gets served from the cache"
  },
  {
    source: "takumi_secret_invalidations_total",
    name: "takumi.secret.invalidations",
    unit: "{invalidation}",
    description: "Secret cache invalidations by backend and outcome (reread or rate-limited)"
  }
]

const rulesBySource = new Map(rules.map((rule) => [rule.source, rule]))

const serverKey = (host: string, port: number) => `${host}:${port}`

/** `host:port` (the `server` tag of DbMetrics) split at its last colon; IPv6 hosts keep theirs. */
const splitServer = (label: string): { readonly host: string; readonly port: number } | undefined => {
  const colon = label.lastIndexOf(":")
  if (colon <= 0) return undefined
  const port = Number(label.slice(colon + 1))
  return Number.isInteger(port) ? { host: label.slice(0, colon), port } : undefined
}

/** @internal the connection attributes of the conventions for one `server` tag value */
export const serverAttributes = (
  label: string,
  servers: ReadonlyMap<string, ServerInfo>
): Attributes => {
  const split = splitServer(label)
  if (split === undefined) return { "db.system.name": "postgresql", "server.address": label }
  const namespace = servers.get(serverKey(split.host, split.port))?.namespace
  return {
    "db.system.name": "postgresql",
    "server.address": split.host,
    "server.port": split.port,
    ...(namespace === undefined ? {} : { "db.namespace": namespace }),
    // the conventions require a pool name unique in the process: `address:port/namespace`
    "db.client.connection.pool.name": namespace === undefined ? label : `${label}/${namespace}`
  }
}

const translateAttributes = (rule: Rule, attributes: Attributes, servers: ReadonlyMap<string, ServerInfo>) => {
  const out: Record<string, Attributes[string]> = {}
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "server" && typeof value === "string") Object.assign(out, serverAttributes(value, servers))
    else out[rule.rename?.[key] ?? key] = value
  }
  return { ...out, ...rule.fixed }
}

const translate = (rule: Rule, data: MetricData, servers: ReadonlyMap<string, ServerInfo>): MetricData => {
  const descriptor = { ...data.descriptor, name: rule.name, unit: rule.unit, description: rule.description }
  switch (data.dataPointType) {
    case DataPointType.GAUGE: {
      const dataPoints = data.dataPoints.map((point) => ({
        ...point,
        attributes: translateAttributes(rule, point.attributes, servers)
      }))
      return rule.upDown === true
        ? { descriptor, dataPointType: DataPointType.SUM, aggregationTemporality: data.aggregationTemporality, isMonotonic: false, dataPoints }
        : { ...data, descriptor, dataPoints }
    }
    case DataPointType.SUM:
      return {
        ...data,
        descriptor,
        dataPoints: data.dataPoints.map((point) => ({ ...point, attributes: translateAttributes(rule, point.attributes, servers) }))
      }
    case DataPointType.HISTOGRAM:
      return {
        ...data,
        descriptor,
        dataPoints: data.dataPoints.map((point) => ({ ...point, attributes: translateAttributes(rule, point.attributes, servers) }))
      }
    case DataPointType.EXPONENTIAL_HISTOGRAM:
      return {
        ...data,
        descriptor,
        dataPoints: data.dataPoints.map((point) => ({ ...point, attributes: translateAttributes(rule, point.attributes, servers) }))
      }
  }
}

/**
 * Two Effect metrics can land in one OpenTelemetry metric (`takumi_db_connections_active` and
 * `_idle` are both `db.client.connection.count`): their points are concatenated.
 */
const merge = (metrics: ReadonlyArray<MetricData>): Array<MetricData> => {
  const byName = new Map<string, MetricData>()
  for (const metric of metrics) {
    const existing = byName.get(metric.descriptor.name)
    if (existing === undefined) {
      byName.set(metric.descriptor.name, metric)
    } else if (existing.dataPointType === DataPointType.SUM && metric.dataPointType === DataPointType.SUM) {
      byName.set(metric.descriptor.name, { ...existing, dataPoints: [...existing.dataPoints, ...metric.dataPoints] })
    } else {
      // different shapes under one name cannot be merged; keep the first rather than emit an invalid family
      continue
    }
  }
  return [...byName.values()]
}

/** `db.client.connection.max` from the pool settings the caller gave (no Effect metric holds it). */
const connectionMax = (servers: ReadonlyMap<string, ServerInfo>, time: DataPoint<number>["endTime"]): Array<MetricData> => {
  const dataPoints: Array<DataPoint<number>> = []
  for (const [label, server] of servers) {
    if (server.maxConnections === undefined) continue
    dataPoints.push({ startTime: time, endTime: time, attributes: serverAttributes(label, servers), value: server.maxConnections })
  }
  if (dataPoints.length === 0) return []
  return [{
    descriptor: {
      name: "db.client.connection.max",
      description: "The maximum number of open connections allowed",
      unit: "{connection}",
      // the Effect producer exports every number as a double too
      valueType: ValueType.DOUBLE
    },
    dataPointType: DataPointType.SUM,
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    isMonotonic: false,
    dataPoints
  }]
}

/** @internal */
export interface TranslateOptions {
  readonly servers: ReadonlyArray<ServerInfo>
  /** also export the program's other Effect metrics, untouched (default true) */
  readonly passthrough: boolean
}

/** @internal */
export const translatingProducer = (inner: MetricProducer, options: TranslateOptions): MetricProducer => {
  const servers = new Map(options.servers.map((server) => [serverKey(server.host, server.port), server]))
  return {
    collect: (collectOptions?: MetricCollectOptions): Promise<CollectionResult> =>
      inner.collect(collectOptions).then((result) => {
        const wall = Date.now()
        const time: DataPoint<number>["endTime"] = [Math.floor(wall / 1000), (wall % 1000) * 1_000_000]
        return {
          errors: result.errors,
          resourceMetrics: {
            resource: result.resourceMetrics.resource,
            scopeMetrics: result.resourceMetrics.scopeMetrics.map((scope, index) => {
              const translated: Array<MetricData> = []
              for (const metric of scope.metrics) {
                const rule = rulesBySource.get(metric.descriptor.name)
                if (rule !== undefined) translated.push(translate(rule, metric, servers))
                else if (options.passthrough) translated.push(metric)
              }
              return {
                scope: scope.scope,
                metrics: merge(index === 0 ? [...translated, ...connectionMax(servers, time)] : translated)
              }
            })
          }
        }
      })
  }
}

/**
 * `takumi-db pool-size --pooler pgbouncer`: the connection budget when a PgBouncer sits between
 * the instances and PostgreSQL. The two legs are sized separately, each with the requirements'
 * formula (`PoolSizing.maxPoolSize`, same headroom):
 *
 * - client leg: every instance opens up to `DB_POOL_MAX` connections to PgBouncer, so
 *   `instances x DB_POOL_MAX` must stay within PgBouncer's `max_client_conn` (less the headroom
 *   for the admin console, monitoring and migrations);
 * - server leg: PgBouncer opens up to `default_pool_size` server connections per user/database
 *   pair, so `pools x default_pool_size` must stay within the server's `max_connections` (less
 *   the headroom). The number of instances does not appear here: that is what the pooler is for.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { PoolSizing } from "@takumi/config"
import { formulaLine } from "./PoolSize.js"
import { UsageError } from "./UsageError.js"

/**
 * The inputs: the fleet, PgBouncer's limits and the server's.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolerBudgetRequest {
  readonly instances: Option.Option<number>
  /** each instance's `DB_POOL_MAX`, to check (`--pool-max`, or the `--preset`'s) */
  readonly poolMax: Option.Option<number>
  /** PgBouncer's `max_client_conn` */
  readonly maxClientConn: Option.Option<number>
  /** PgBouncer's `default_pool_size` */
  readonly defaultPoolSize: Option.Option<number>
  /** user/database pairs PgBouncer pools for (each gets `default_pool_size`); default 1 */
  readonly pools: Option.Option<number>
  /** the server's `max_connections` */
  readonly maxConnections: Option.Option<number>
  readonly headroom: Option.Option<number>
}

/**
 * What the budget allows, per leg.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolerBudget {
  readonly instances: number
  readonly maxClientConn: number
  readonly defaultPoolSize: number
  readonly pools: number
  readonly maxConnections: number
  readonly headroom: number
  /** the largest `DB_POOL_MAX` per instance PgBouncer's `max_client_conn` allows */
  readonly poolMaxAllowed: number
  /** the largest `default_pool_size` the server's `max_connections` allows */
  readonly defaultPoolSizeAllowed: number
  readonly poolMax: Option.Option<number>
}

const usage = (what: string) =>
  new UsageError({
    command: "pool-size",
    message: `pool-size --pooler pgbouncer: ${what}. Give --instances N --max-client-conn N --default-pool-size N ` +
      `--max-connections N [--pools 1] [--pool-max N | --preset ENV] [--headroom 0.8].`
  })

const required = (value: Option.Option<number>, flag: string) =>
  Option.match(value, { onNone: () => Effect.fail(usage(`${flag} is missing`)), onSome: Effect.succeed })

/**
 * Computes both legs. A missing input is a `UsageError`; out-of-range numbers are
 * `PoolSizing.InvalidPoolSizing` (never clamped).
 *
 * @since 0.1.0
 * @category constructors
 */
export const compute = (
  request: PoolerBudgetRequest
): Effect.Effect<PoolerBudget, UsageError | PoolSizing.InvalidPoolSizing> =>
  Effect.gen(function*() {
    const instances = yield* required(request.instances, "--instances")
    const maxClientConn = yield* required(request.maxClientConn, "--max-client-conn")
    const defaultPoolSize = yield* required(request.defaultPoolSize, "--default-pool-size")
    const maxConnections = yield* required(request.maxConnections, "--max-connections")
    const pools = Option.getOrElse(request.pools, () => 1)
    const headroom = Option.getOrElse(request.headroom, () => PoolSizing.defaultHeadroom)
    const poolMaxAllowed = yield* PoolSizing.maxPoolSize({ maxConnections: maxClientConn, instances, headroom })
    const defaultPoolSizeAllowed = yield* PoolSizing.maxPoolSize({ maxConnections, instances: pools, headroom })
    return {
      instances,
      maxClientConn,
      defaultPoolSize,
      pools,
      maxConnections,
      headroom,
      poolMaxAllowed,
      defaultPoolSizeAllowed,
      poolMax: request.poolMax
    }
  })

/**
 * A leg of the budget is over its limit: `pool-size --pooler pgbouncer` exits 1, as a failed
 * check does.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolerBudgetExceeded extends Schema.TaggedError<PoolerBudgetExceeded>()("PoolerBudgetExceeded", {
  leg: Schema.Literal("client", "server"),
  /** what is configured: `DB_POOL_MAX` (client leg) or `default_pool_size` (server leg) */
  configured: Schema.Number,
  /** the most the limit allows */
  allowed: Schema.Number,
  /** how to fix it, in the report's words */
  fix: Schema.String
}) {
  override get message(): string {
    return this.leg === "client"
      ? `DB_POOL_MAX=${this.configured} on every instance exceeds PgBouncer's max_client_conn: ${this.fix}`
      : `default_pool_size=${this.configured} exceeds the server's max_connections: ${this.fix}`
  }
}

/** The smallest limit that admits `demand` connections with the headroom kept free. */
const limitFor = (demand: number, headroom: number): number => Math.ceil(demand / headroom - 1e-9)

const clientFix = (b: PoolerBudget, poolMax: number): string =>
  `set DB_POOL_MAX=${b.poolMaxAllowed} or fewer on each instance, or raise max_client_conn to ` +
  `${limitFor(b.instances * poolMax, b.headroom)} (and the open-file limit of PgBouncer with it).`

const serverFix = (b: PoolerBudget): string =>
  `set default_pool_size=${b.defaultPoolSizeAllowed} or fewer in pgbouncer.ini, or raise max_connections to ` +
  `${limitFor(b.pools * b.defaultPoolSize, b.headroom)}.`

/**
 * The budget as a failure when a leg is over its limit (the client leg only when a `DB_POOL_MAX`
 * was given to check).
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireFit = (budget: PoolerBudget): Effect.Effect<PoolerBudget, PoolerBudgetExceeded> => {
  if (Option.isSome(budget.poolMax) && budget.poolMax.value > budget.poolMaxAllowed) {
    return Effect.fail(
      new PoolerBudgetExceeded({
        leg: "client",
        configured: budget.poolMax.value,
        allowed: budget.poolMaxAllowed,
        fix: clientFix(budget, budget.poolMax.value)
      })
    )
  }
  return budget.defaultPoolSize > budget.defaultPoolSizeAllowed
    ? Effect.fail(
      new PoolerBudgetExceeded({
        leg: "server",
        configured: budget.defaultPoolSize,
        allowed: budget.defaultPoolSizeAllowed,
        fix: serverFix(budget)
      })
    )
    : Effect.succeed(budget)
}

const clientLines = (b: PoolerBudget): Array<string> => {
  const lines = [
    `client leg (instances -> PgBouncer): ${
      formulaLine("DB_POOL_MAX", "max_client_conn", "instances", b.maxClientConn, b.instances, b.headroom, b.poolMaxAllowed)
    }`
  ]
  if (Option.isNone(b.poolMax)) {
    lines.push(
      `Set DB_POOL_MAX=${b.poolMaxAllowed} on each of the ${b.instances} instances: together they open at most ` +
        `${b.poolMaxAllowed * b.instances} of PgBouncer's max_client_conn ${b.maxClientConn}.`
    )
    return lines
  }
  const poolMax = b.poolMax.value
  const demand = b.instances * poolMax
  lines.push(
    poolMax <= b.poolMaxAllowed
      ? `DB_POOL_MAX=${poolMax} fits: ${b.instances} instances x ${poolMax} = ${demand} client connections <= ` +
        `${b.poolMaxAllowed * b.instances} of max_client_conn ${b.maxClientConn}.`
      : `DB_POOL_MAX=${poolMax} does NOT fit: ${b.instances} instances x ${poolMax} = ${demand} client connections; ` +
        clientFix(b, poolMax)
  )
  return lines
}

const serverLines = (b: PoolerBudget): Array<string> => {
  const used = b.pools * b.defaultPoolSize
  return [
    `server leg (PgBouncer -> PostgreSQL): ${
      formulaLine(
        "default_pool_size",
        "max_connections",
        "pools",
        b.maxConnections,
        b.pools,
        b.headroom,
        b.defaultPoolSizeAllowed
      )
    }`,
    b.defaultPoolSize <= b.defaultPoolSizeAllowed
      ? `default_pool_size=${b.defaultPoolSize} fits: ${b.pools} pool(s) x ${b.defaultPoolSize} = ${used} server ` +
        `connections of max_connections ${b.maxConnections}, whatever the number of instances.`
      : `default_pool_size=${b.defaultPoolSize} does NOT fit: ${b.pools} pool(s) x ${b.defaultPoolSize} = ${used} ` +
        `server connections; ${serverFix(b)}`
  ]
}

/**
 * The budget as lines. The first line is the largest `DB_POOL_MAX` per instance alone (for
 * scripts), then the client leg and the server leg, each with its formula and verdict.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (budget: PoolerBudget): ReadonlyArray<string> => [
  String(budget.poolMaxAllowed),
  ...clientLines(budget),
  ...serverLines(budget)
]

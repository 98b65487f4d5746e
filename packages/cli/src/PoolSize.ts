/**
 * `takumi-db pool-size`: the requirements' pool-size formula and per-environment presets, as a
 * report a person can read and a script can use (the first line is the number alone).
 *
 * The arithmetic is `PoolSizing` from `@takumi/config`; this module only chooses what to compute
 * and how to show it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type Environment, type PoolSettings, PoolSizing } from "@takumi/config"
import { UsageError } from "./UsageError.js"

/**
 * What the command was asked: the formula's inputs, a preset, or both (then the preset is
 * compared with what the server can give every instance).
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolSizeRequest {
  /** the server's `max_connections` */
  readonly maxConnections: Option.Option<number>
  /** application instances sharing the server */
  readonly instances: Option.Option<number>
  /** the fraction of `max_connections` the application may use, default 0.8 */
  readonly headroom: Option.Option<number>
  /** print the preset of this environment */
  readonly preset: Option.Option<Environment>
}

/**
 * The formula's result with its inputs.
 *
 * @since 0.1.0
 * @category models
 */
export interface FormulaResult {
  readonly maxConnections: number
  readonly instances: number
  readonly headroom: number
  /** `floor(maxConnections / instances * headroom)`, at least 1 */
  readonly poolSize: number
}

/**
 * An environment's pool preset (`PoolSizing.presets`).
 *
 * @since 0.1.0
 * @category models
 */
export interface PresetResult {
  readonly environment: Environment
  readonly pool: PoolSettings
}

/**
 * What `pool-size` found: the formula, the preset, or both.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolSizeReport {
  readonly formula: Option.Option<FormulaResult>
  readonly preset: Option.Option<PresetResult>
}

const missing = (what: string) =>
  new UsageError({
    command: "pool-size",
    message: `pool-size: ${what}. Give --max-connections N --instances N [--headroom 0.8], ` +
      `or --preset development|test|staging|production (or both, to check the preset against the server).`
  })

/**
 * Computes the report. The formula needs both `maxConnections` and `instances`; a headroom alone
 * or only one of the two counts is a `UsageError`, and out-of-range numbers are
 * `PoolSizing.InvalidPoolSizing` (never clamped).
 *
 * @since 0.1.0
 * @category constructors
 */
export const compute = (
  request: PoolSizeRequest
): Effect.Effect<PoolSizeReport, UsageError | PoolSizing.InvalidPoolSizing> =>
  Effect.gen(function*() {
    const { headroom, instances, maxConnections } = request
    const formulaAsked = Option.isSome(maxConnections) || Option.isSome(instances) || Option.isSome(headroom)
    let formula = Option.none<FormulaResult>()
    if (formulaAsked) {
      if (Option.isNone(maxConnections)) return yield* missing("--max-connections is missing")
      if (Option.isNone(instances)) return yield* missing("--instances is missing")
      const input = {
        maxConnections: maxConnections.value,
        instances: instances.value,
        headroom: Option.getOrElse(headroom, () => PoolSizing.defaultHeadroom)
      }
      const poolSize = yield* PoolSizing.maxPoolSize(input)
      formula = Option.some({ ...input, poolSize })
    } else if (Option.isNone(request.preset)) {
      return yield* missing("nothing to compute")
    }
    const preset = Option.map(request.preset, (environment) => ({ environment, pool: PoolSizing.preset(environment) }))
    return { formula, preset }
  })

/**
 * The preset asked for gives every instance more connections than the server can share out:
 * `pool-size --preset P --max-connections N --instances K` exits 1, as a failed check does.
 *
 * @since 0.1.0
 * @category errors
 */
export class PresetDoesNotFit extends Schema.TaggedError<PresetDoesNotFit>()("PresetDoesNotFit", {
  environment: Schema.Literal("development", "test", "staging", "production"),
  /** the preset's `DB_POOL_MAX` */
  presetMax: Schema.Number,
  /** what the formula allows each instance */
  poolSize: Schema.Number
}) {
  override get message(): string {
    return `The ${this.environment} preset (DB_POOL_MAX=${this.presetMax}) does not fit the server: ` +
      `set DB_POOL_MAX=${this.poolSize} or fewer on each instance.`
  }
}

/**
 * The report as a failure when a preset was checked against the server and does not fit: for
 * the command's exit code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const requireFit = (report: PoolSizeReport): Effect.Effect<PoolSizeReport, PresetDoesNotFit> => {
  if (Option.isNone(report.formula) || Option.isNone(report.preset)) return Effect.succeed(report)
  const { poolSize } = report.formula.value
  const { environment, pool } = report.preset.value
  return pool.max <= poolSize
    ? Effect.succeed(report)
    : Effect.fail(new PresetDoesNotFit({ environment, presetMax: pool.max, poolSize }))
}

const percent = (fraction: number): string => `${Math.round(fraction * 1000) / 10} %`

/**
 * The formula with its numbers, e.g. `max_pool_size = floor((max_connections / instances) *
 * headroom) = floor((200 / 4) * 0.8) = floor(40) = 40`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const formulaLine = (
  result: string,
  total: string,
  count: string,
  totalValue: number,
  countValue: number,
  headroom: number,
  value: number
): string => {
  const exact = (totalValue / countValue) * headroom
  return `${result} = floor((${total} / ${count}) * headroom) = floor((${totalValue} / ${countValue}) * ${headroom}) = floor(${
    Number(exact.toFixed(4))
  }) = ${value}`
}

/**
 * The report as lines. When the formula was computed the first line is the pool size alone
 * (`$(takumi-db pool-size ... | head -n 1)`), then the formula with the numbers; a preset is
 * shown as the variables it stands for.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (report: PoolSizeReport): ReadonlyArray<string> => {
  const lines: Array<string> = []
  if (Option.isSome(report.formula)) {
    const f = report.formula.value
    lines.push(
      String(f.poolSize),
      formulaLine("max_pool_size", "max_connections", "instances", f.maxConnections, f.instances, f.headroom, f.poolSize),
      f.poolSize * f.instances <= f.maxConnections * f.headroom
        ? `Set DB_POOL_MAX=${f.poolSize} on each of the ${f.instances} instances: together they use at most ` +
          `${f.poolSize * f.instances} of ${f.maxConnections} connections, leaving ${percent(1 - f.headroom)} ` +
          `for administration, migrations and monitoring.`
        // the formula's floor of 1 cannot make a fleet this large fit
        : `Even DB_POOL_MAX=1 does NOT fit: ${f.instances} instances would use ${f.instances} of ${f.maxConnections} ` +
          `connections. Put a connection pooler in between (DB_POOLER=pgbouncer; size it with ` +
          `takumi-db pool-size --pooler pgbouncer) or raise max_connections.`
    )
  }
  if (Option.isSome(report.preset)) {
    const { environment, pool } = report.preset.value
    lines.push(`${environment} preset: DB_POOL_MIN=${pool.min} DB_POOL_MAX=${pool.max}`)
    if (Option.isSome(report.formula)) {
      const f = report.formula.value
      lines.push(
        pool.max <= f.poolSize
          ? `The ${environment} preset fits: DB_POOL_MAX=${pool.max} <= ${f.poolSize}.`
          : `The ${environment} preset does NOT fit: ${f.instances} instances x DB_POOL_MAX=${pool.max} = ` +
            `${f.instances * pool.max} connections exceeds ${f.poolSize * f.instances} ` +
            `(${percent(f.headroom)} of max_connections ${f.maxConnections}). Set DB_POOL_MAX=${f.poolSize}` +
            (pool.min > f.poolSize ? ` and DB_POOL_MIN<=${f.poolSize}.` : ".")
      )
    }
  }
  return lines
}

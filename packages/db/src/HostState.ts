/**
 * What a listed host is — a primary or a hot standby, read-only by default or not — and which of
 * the hosts a new connection would go to under `DB_TARGET_SESSION_ATTRS`: the pool's own rules
 * (internal/hosts/), for tools that report on every host (`takumi-db doctor`).
 *
 * @since 0.1.0
 */
import type { LoadBalanceHosts, TargetSessionAttrs } from "@takumi/config"
import { fittingOf } from "./internal/hosts/chooser.js"
import type { SessionState } from "./internal/hosts/session.js"

export {
  /**
   * `pg_is_in_recovery()` and `default_transaction_read_only` in one query: the state of the
   * session that runs it (the pool reads the same from ParameterStatus on PostgreSQL 14+).
   *
   * @since 0.1.0
   * @category queries
   */
  stateQuery,
  /**
   * The state a row of `stateQuery` says.
   *
   * @since 0.1.0
   * @category constructors
   */
  stateFromRow,
  /**
   * Whether a session accepts writes: neither a hot standby nor read-only by default.
   *
   * @since 0.1.0
   * @category predicates
   */
  isWritable,
  /**
   * The attribute in words: what kind of server it looks for.
   *
   * @since 0.1.0
   * @category rendering
   */
  describeAttrs
} from "./internal/hosts/session.js"

export type {
  /**
   * @since 0.1.0
   * @category models
   */
  SessionState,
  /**
   * @since 0.1.0
   * @category models
   */
  StateRow
} from "./internal/hosts/session.js"

/**
 * The hosts a new connection would go to, given what each listed host is (`undefined`: it could
 * not be reached or verified), in the listed order: as the pool's chooser picks, the first of them
 * with `DB_LOAD_BALANCE_HOSTS=disable`, any of them at random with `random`; empty when none fits.
 *
 * @since 0.1.0
 * @category choosing
 */
export const wouldUse = <R>(
  attrs: TargetSessionAttrs,
  loadBalance: LoadBalanceHosts,
  hosts: ReadonlyArray<{ readonly route: R; readonly state: SessionState | undefined }>
): ReadonlyArray<R> => {
  const fitting = fittingOf(
    attrs,
    hosts.map(({ route, state }) => state === undefined ? { route, error: undefined } : { route, state })
  )
  return loadBalance === "disable" ? fitting.slice(0, 1) : fitting
}

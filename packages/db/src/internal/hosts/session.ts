/**
 * What a session is: a hot standby or not, read-only by default or not — and whether that fits
 * `DB_TARGET_SESSION_ATTRS` (libpq's `target_session_attrs` meanings).
 *
 * PostgreSQL 14+ reports `in_hot_standby` and `default_transaction_read_only` in ParameterStatus
 * messages at startup (and again when they change, e.g. when the server is promoted), so a new
 * connection usually knows what it is without a round trip. An older server reports neither; one
 * query then asks (`pg_is_in_recovery()` and `default_transaction_read_only` together).
 *
 * @internal
 */
import type { TargetSessionAttrs } from "@takumi/config"
import type * as Pg from "pg"

/** What a server's session is. */
export interface SessionState {
  /** `in_hot_standby`: the server is a standby in recovery (every transaction read-only) */
  readonly hotStandby: boolean
  /** `default_transaction_read_only`: new transactions are read-only (a standby, or a server made read-only) */
  readonly readOnly: boolean
}

const on = (value: string | undefined): boolean | undefined => value === undefined ? undefined : value === "on"

/** The state as the server reported it in ParameterStatus messages; `undefined` when it did not (PostgreSQL < 14). */
export const stateFromParameters = (parameters: ReadonlyMap<string, string>): SessionState | undefined => {
  const hotStandby = on(parameters.get("in_hot_standby"))
  const readOnly = on(parameters.get("default_transaction_read_only"))
  return hotStandby === undefined || readOnly === undefined ? undefined : { hotStandby, readOnly }
}

/** The fallback for a server that reports neither parameter: one query. */
export const stateQuery = "SELECT pg_catalog.pg_is_in_recovery() AS hot_standby, " +
  "pg_catalog.current_setting('default_transaction_read_only') AS read_only"

/** A row of {@link stateQuery}. */
export interface StateRow {
  readonly hot_standby: boolean
  readonly read_only: string
}

/** The state a row of {@link stateQuery} says. */
export const stateFromRow = (row: StateRow | undefined): SessionState => ({
  hotStandby: row?.hot_standby === true,
  readOnly: row?.read_only === "on"
})

/** The state of a connected client: from its ParameterStatus messages, or one query. */
export const sessionState = async (
  client: Pg.Client,
  parameters: ReadonlyMap<string, string>
): Promise<SessionState> => {
  const reported = stateFromParameters(parameters)
  if (reported !== undefined) return reported
  const result = await client.query<StateRow>(stateQuery)
  return stateFromRow(result.rows[0])
}

/** Whether a session accepts writes: neither a hot standby nor read-only by default. */
export const isWritable = (state: SessionState): boolean => !state.hotStandby && !state.readOnly

/**
 * Whether a session fits the attribute on its own. `prefer-standby` accepts any session here; the
 * preference for a standby is the chooser's (it takes a standby when one answered).
 */
export const fits = (attrs: TargetSessionAttrs, state: SessionState): boolean => {
  switch (attrs) {
    case "any":
    case "prefer-standby":
      return true
    case "read-write":
      return isWritable(state)
    case "primary":
      return !state.hotStandby
    case "standby":
      return state.hotStandby
  }
}

/** The attribute in words, for errors: what kind of server was looked for. */
export const describeAttrs = (attrs: TargetSessionAttrs): string => {
  switch (attrs) {
    case "any":
    case "prefer-standby":
      return "a server that accepts connections"
    case "read-write":
      return "a server that accepts writes (not a hot standby, default_transaction_read_only off)"
    case "primary":
      return "a primary (not a hot standby)"
    case "standby":
      return "a hot standby"
  }
}

/**
 * Every listed host answered or failed, and none fits the attribute: during a failover, only
 * standbys answer until one is promoted. Classified as `NoSuitableHost` (retried on the reconnect
 * backoff like a refused connection).
 */
export class NoSuitableHostCause extends Error {
  readonly code = "TAKUMI_NO_SUITABLE_HOST"
  constructor(
    readonly attrs: TargetSessionAttrs,
    readonly seen: ReadonlyArray<string>
  ) {
    super(`none of the listed hosts is ${describeAttrs(attrs)}: ${seen.join("; ")}`)
    this.name = "NoSuitableHostCause"
  }
}

/**
 * Least privilege: what the application role can do that an application rarely needs —
 * `CREATEROLE`, `CREATEDB`, `BYPASSRLS`, `REPLICATION`, membership in `pg_read_all_data`,
 * `pg_write_all_data` or `pg_execute_server_program`, ownership of the database, `CREATE` on
 * schema `public`. The startup check reads the same columns in its one posture query: production
 * refuses `BYPASSRLS` and `pg_execute_server_program` (`InsecureServer`) and warns about the rest;
 * `takumi-db doctor` lists them all in every environment (with `read`).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as internal from "./internal/rolePrivileges.js"

/**
 * The role's privileges as read from the catalog.
 *
 * @since 0.1.0
 * @category models
 */
export type RolePrivileges = internal.RolePrivileges

/**
 * One privilege found: its posture rule (`BypassRlsRole`, `DatabaseOwner`, ...), what was seen,
 * and whether production refuses it.
 *
 * @since 0.1.0
 * @category models
 */
export type PrivilegeFinding = internal.PrivilegeFinding

/**
 * The privileges of `current_user`, one catalog query.
 *
 * @since 0.1.0
 * @category constructors
 */
export const read: Effect.Effect<RolePrivileges, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql.unsafe<internal.PrivilegeRow>(
    `SELECT ${internal.columns} FROM pg_roles r WHERE r.rolname = current_user`
  )
  return internal.decode(rows[0])
})

/**
 * Every privilege found, refusals first (a superuser holds them all; it is judged as a superuser).
 *
 * @since 0.1.0
 * @category models
 */
export const findings: (privileges: RolePrivileges) => Array<PrivilegeFinding> = internal.findings

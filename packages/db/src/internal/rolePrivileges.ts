/**
 * What the application role can do beyond reading and writing its own tables, read in the same
 * catalog query as the rest of the startup posture (no extra round trip): role attributes, the
 * predefined roles that reach every table or the server's shell, ownership of the database and
 * `CREATE` on schema `public`.
 *
 * @internal
 */
import type { PostureRule } from "../DbError.js"

/**
 * The predefined roles checked for membership (PostgreSQL 14+; on an older server they do not
 * exist and are simply never found).
 */
export const predefinedRoles = ["pg_read_all_data", "pg_write_all_data", "pg_execute_server_program"] as const

/** @internal */
export type PredefinedRole = typeof predefinedRoles[number]

/** @internal */
export interface RolePrivileges {
  readonly createRole: boolean
  readonly createDatabase: boolean
  readonly bypassRls: boolean
  readonly replication: boolean
  /** membership, direct or through other roles (`pg_has_role ... MEMBER`) */
  readonly memberOf: ReadonlyArray<PredefinedRole>
  /** owns the current database, or is a member of its owner */
  readonly ownsDatabase: boolean
  readonly createOnPublic: boolean
}

/**
 * The select-list columns, over `pg_roles r` restricted to `current_user`. Each stays safe when
 * its object is missing (no `public` schema, a server without the predefined roles): `to_regrole` /
 * `to_regnamespace` give NULL and the strict `pg_has_role` / `has_schema_privilege` then do too.
 * Function calls rather than subqueries over `pg_roles`, `pg_database` and `pg_namespace`: on the
 * backend a connection has just started every catalog a statement reads is loaded and planned cold,
 * which made this part of the startup query 1 ms of server time (BENCHMARKS.md, startup).
 * Ownership is membership in `pg_database_owner` (PostgreSQL 14+: the current database's owner
 * and every member of it); older servers fall back to comparing `pg_database.datdba`.
 */
export const columns = `r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
  array_remove(ARRAY[${
  predefinedRoles.map((role) => `CASE WHEN pg_has_role(r.oid, to_regrole('${role}'), 'MEMBER') THEN '${role}' END`).join(", ")
}]::text[], NULL) AS member_of,
  COALESCE(pg_has_role(r.oid, to_regrole('pg_database_owner'), 'MEMBER'),
    (SELECT pg_has_role(r.oid, d.datdba, 'MEMBER') FROM pg_database d WHERE d.datname = current_database()),
    false) AS owns_database,
  COALESCE(has_schema_privilege(r.oid, to_regnamespace('public'), 'CREATE'), false) AS create_on_public`

/** The row `columns` produce. */
export interface PrivilegeRow {
  readonly rolcreaterole: boolean | null
  readonly rolcreatedb: boolean | null
  readonly rolbypassrls: boolean | null
  readonly rolreplication: boolean | null
  readonly member_of: ReadonlyArray<string> | null
  readonly owns_database: boolean | null
  readonly create_on_public: boolean | null
}

const isPredefined = (name: string): name is PredefinedRole => predefinedRoles.some((role) => role === name)

/** A missing row (no such role) reads as no privilege at all. */
export const decode = (row: Partial<PrivilegeRow> | undefined): RolePrivileges => ({
  createRole: row?.rolcreaterole === true,
  createDatabase: row?.rolcreatedb === true,
  bypassRls: row?.rolbypassrls === true,
  replication: row?.rolreplication === true,
  memberOf: (row?.member_of ?? []).filter(isPredefined),
  ownsDatabase: row?.owns_database === true,
  createOnPublic: row?.create_on_public === true
})

/** A privilege the posture reports: its rule, what was seen, and whether production refuses it. */
export interface PrivilegeFinding {
  readonly rule: PostureRule
  readonly detail: string
  /**
   * Refused in production: BYPASSRLS defeats row-level security, the one control that holds when
   * the application's own checks fail; pg_execute_server_program runs shell commands on the
   * database host as the server's OS user (COPY ... PROGRAM). The rest are warned about.
   */
  readonly refused: boolean
}

/** Every privilege found, refusals first, in a stable order. */
export const findings = (p: RolePrivileges): Array<PrivilegeFinding> => {
  const out: Array<PrivilegeFinding> = []
  const add = (when: boolean, rule: PrivilegeFinding["rule"], detail: string, refused = false) => {
    if (when) out.push({ rule, detail, refused })
  }
  add(p.bypassRls, "BypassRlsRole", "the database role bypasses row-level security (BYPASSRLS)", true)
  add(
    p.memberOf.includes("pg_execute_server_program"),
    "ServerProgramExecution",
    "the database role is a member of pg_execute_server_program (runs programs on the database host)",
    true
  )
  add(p.createRole, "CreateRolePrivilege", "the database role can create and alter roles (CREATEROLE)")
  add(p.createDatabase, "CreateDatabasePrivilege", "the database role can create databases (CREATEDB)")
  add(p.replication, "ReplicationPrivilege", "the database role can start replication (REPLICATION)")
  add(p.memberOf.includes("pg_read_all_data"), "ReadAllDataRole", "the database role is a member of pg_read_all_data")
  add(p.memberOf.includes("pg_write_all_data"), "WriteAllDataRole", "the database role is a member of pg_write_all_data")
  add(p.ownsDatabase, "DatabaseOwner", "the database role owns the database (or is a member of its owner)")
  add(p.createOnPublic, "CreateOnPublicSchema", "the database role can create objects in schema public (CREATE)")
  return out
}

/**
 * `npm run example:dotenv` — local development: `NODE_ENV=development`, `SECRETS_BACKEND=env`,
 * and the connection settings and password in a `.env` file, loaded with
 * `DbConfig.layerFromEnvironment({ dotEnv })`. The database is a throwaway PostgreSQL with TLS
 * from @takumi/testing; the `.env` file is written to a temporary folder and removed at the end.
 * A `.env` file is read in development and test only (and refused in production when it holds
 * `DB_PASSWORD`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { DbConfig } from "@takumi/config"
import { SecureSqlClient } from "@takumi/db"
import { SecretsBackend } from "@takumi/secrets"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { describeTls, heading, ok, runExample, type Session, sessionQuery, startDatabase, withEnvironment } from "./internal/harness.js"

/** A temporary folder, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => FsP.mkdtemp(Path.join(Os.tmpdir(), "takumi-dotenv-"))),
  (dir) => Effect.promise(() => FsP.rm(dir, { recursive: true, force: true }))
)

/** The development stack: settings from the environment and `dotEnv`, the password from them (env backend). */
const developmentLayer = (dotEnv: string) =>
  SecureSqlClient.layer.pipe(
    Layer.provideMerge(SecretsBackend.layerFromConfig),
    Layer.provideMerge(DbConfig.layerFromEnvironment({ dotEnv }))
  )

runExample(
  "Development with SECRETS_BACKEND=env and a .env file",
  Effect.gen(function*() {
    const db = yield* startDatabase()
    const dir = yield* tempDir
    const dotEnv = Path.join(dir, ".env")
    const lines = { ...db.env, SECRETS_BACKEND: "env", DB_PASSWORD: db.password }
    yield* Effect.promise(() =>
      FsP.writeFile(dotEnv, Object.entries(lines).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 })
    )
    yield* ok(`.env written to a temporary folder: ${Object.keys(lines).join(", ")}`)

    yield* heading("DbConfig.layerFromEnvironment({ dotEnv }) with NODE_ENV=development in the environment:")
    yield* Effect.gen(function*() {
      const settings = yield* DbConfig
      yield* ok(`settings loaded from .env: ${settings.user}@${settings.host}:${settings.port}/${settings.database}, ${describeTls(settings)}`)
      const sql = yield* SqlClient.SqlClient
      const [session] = yield* sql.unsafe<Session>(sessionQuery)
      yield* ok(`connected as ${session?.user} with the password from .env; pg_stat_ssl: ssl=${session?.ssl} ${session?.version}`)
    }).pipe(Effect.provide(developmentLayer(dotEnv)), withEnvironment({ NODE_ENV: "development" }))
  })
)

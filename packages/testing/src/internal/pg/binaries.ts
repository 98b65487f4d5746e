/**
 * Finding the PostgreSQL server binaries: `PG_BIN`, `pg_config --bindir`, `PATH`, then the
 * highest version under `/usr/lib/postgresql/<version>/bin`.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { failure, type PgTestServerError } from "./testServerError.js"

const REQUIRED = ["initdb", "postgres", "pg_basebackup"] as const

const isExecutable = (file: string): Promise<boolean> =>
  Fs.access(file, Fs.constants.X_OK).then(() => true, () => false)

const hasServerBinaries = async (dir: string): Promise<boolean> =>
  (await Promise.all(REQUIRED.map((name) => isExecutable(Path.join(dir, name))))).every(Boolean)

/**
 * Harness variables come from the real environment even when a test installs its own
 * ConfigProvider for the code under test.
 *
 * @internal
 */
export const environment = <A>(config: Config.Config<A>): Effect.Effect<Option.Option<A>> =>
  Config.option(config).pipe(
    Effect.withConfigProvider(ConfigProvider.fromEnv()),
    Effect.orElseSucceed(() => Option.none())
  )

const pgConfigBinDir = (): Promise<string | undefined> =>
  new Promise((resolve) => {
    ChildProcess.execFile("pg_config", ["--bindir"], { timeout: 5_000 }, (error, stdout) => {
      resolve(error === null ? stdout.trim() : undefined)
    })
  })

const fromPath = async (path: string | undefined): Promise<string | undefined> => {
  for (const dir of (path ?? "").split(Path.delimiter).filter((entry) => entry.length > 0)) {
    const initdb = Path.join(dir, "initdb")
    if (await isExecutable(initdb)) {
      // Debian links /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb; the real folder
      // holds the other binaries too.
      const real = await Fs.realpath(initdb).catch(() => initdb)
      return Path.dirname(real)
    }
  }
  return undefined
}

const versionFolders = async (): Promise<ReadonlyArray<string>> => {
  const root = "/usr/lib/postgresql"
  const entries = await Fs.readdir(root).catch((): Array<string> => [])
  return entries
    .filter((entry) => /^\d+(\.\d+)?$/.test(entry))
    .sort((a, b) => Number(b) - Number(a))
    .map((entry) => Path.join(root, entry, "bin"))
}

const INSTALL_HINT = "Install PostgreSQL with `apt-get install postgresql` (Debian/Ubuntu; `brew install postgresql` " +
  "on macOS), or point PG_BIN at the folder that holds initdb, postgres and pg_basebackup."

/** Locates the folder with initdb, postgres and pg_basebackup. @internal */
export const findBinDir: Effect.Effect<string, PgTestServerError> = Effect.gen(function*() {
  const pgBin = yield* environment(Config.string("PG_BIN"))
  if (Option.isSome(pgBin)) {
    const ok = yield* Effect.promise(() => hasServerBinaries(pgBin.value))
    if (ok) return pgBin.value
    return yield* Effect.fail(
      failure("findBinaries", `PG_BIN=${pgBin.value} does not contain ${REQUIRED.join(", ")}. ${INSTALL_HINT}`)
    )
  }
  const path = yield* environment(Config.string("PATH"))
  const candidates = yield* Effect.promise(async () => [
    await pgConfigBinDir(),
    await fromPath(Option.getOrUndefined(path)),
    ...(await versionFolders())
  ])
  for (const candidate of candidates) {
    if (candidate !== undefined && (yield* Effect.promise(() => hasServerBinaries(candidate)))) {
      return candidate
    }
  }
  return yield* Effect.fail(
    failure(
      "findBinaries",
      `no PostgreSQL server binaries found (looked at PG_BIN, pg_config --bindir, PATH and /usr/lib/postgresql/*/bin). ${INSTALL_HINT}`
    )
  )
})

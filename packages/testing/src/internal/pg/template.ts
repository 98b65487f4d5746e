/**
 * The initdb template: one `initdb` per test run (made by the vitest global setup and announced
 * through `TAKUMI_PG_TEMPLATE`), or lazily once per process when that variable is absent.
 * Servers copy it with `cp -a`, which is several times faster than initdb.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { environment, findBinDir } from "./binaries.js"
import { chownToServer, run, serverUser } from "./process.js"
import * as Sweep from "./sweep.js"
import { describeCause, failure, type PgTestServerError } from "./testServerError.js"

/** The variable through which the global setup hands the template's data folder to workers. @internal */
export const TEMPLATE_ENV = "TAKUMI_PG_TEMPLATE"

/**
 * Settings every server shares. Durability is off on purpose: these servers are throwaway, and
 * fsync dominates their start and checkpoint time. Logging goes to stderr, which the harness
 * redirects to a file in the data folder so that even a FATAL before the logger starts is kept.
 * Per-server settings live in `takumi.conf`, rewritten on every start and reload.
 */
const TEMPLATE_CONF = `
# --- @takumi/testing template ---
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
shared_buffers = '32MB'
max_wal_size = '256MB'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = 'warning'
include_if_exists = 'takumi.conf'
`

/** A template on disk: `base` is the folder to delete, `dataDir` the folder to copy. @internal */
export interface Template {
  readonly base: string
  readonly dataDir: string
}

/** Runs initdb into a fresh temp folder. @internal */
export const createTemplate: Effect.Effect<Template, PgTestServerError> = Effect.gen(function*() {
  const binDir = yield* findBinDir
  const user = yield* serverUser
  const base = yield* Effect.tryPromise({
    try: async () => {
      const base = await FsP.mkdtemp(Path.join(Os.tmpdir(), `${Sweep.PREFIX}template-`))
      await Sweep.writeOwner(base)
      return base
    },
    catch: (cause) => failure("createTemplate", `cannot create a temp folder: ${describeCause(cause)}`)
  })
  const dataDir = Path.join(base, "data")
  yield* Effect.gen(function*() {
    yield* chownToServer(user, base)
    yield* run("createTemplate", user, Path.join(binDir, "initdb"), [
      "-D",
      dataDir,
      "-U",
      "postgres",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions"
    ])
    yield* Effect.tryPromise({
      try: () => FsP.appendFile(Path.join(dataDir, "postgresql.conf"), TEMPLATE_CONF),
      catch: (cause) => failure("createTemplate", `cannot write postgresql.conf: ${describeCause(cause)}`)
    })
  }).pipe(Effect.tapError(() => removeTemplate({ base, dataDir })))
  return { base, dataDir }
})

/** @internal */
export const removeTemplate = (template: Template): Effect.Effect<void> =>
  Effect.promise(() => FsP.rm(template.base, { recursive: true, force: true }))

const lazyTemplate = Effect.runSync(Effect.cached(
  Effect.tap(createTemplate, (template) =>
    Effect.sync(() => {
      // A per-process template lives as long as the process; nothing else will delete it.
      process.once("exit", () => Fs.rmSync(template.base, { recursive: true, force: true }))
    }))
))

/** The template's data folder: the run-wide one when announced, else a per-process one. @internal */
export const templateDataDir: Effect.Effect<string, PgTestServerError> = Effect.gen(function*() {
  const announced = yield* environment(Config.string(TEMPLATE_ENV))
  if (Option.isSome(announced) && Fs.existsSync(Path.join(announced.value, "PG_VERSION"))) {
    return announced.value
  }
  return (yield* lazyTemplate).dataDir
})

/**
 * Loads the configuration from this process's environment (no .env) with the file system `DbConfig.layer` uses, and prints the outcome as one
 * line of JSON: `{ "ok": true }` or the error's tag, message and variables. Run by tests in a child
 * process, e.g. as an unprivileged user (DbConfig.test.ts: a certificate file that user may not read).
 */
import * as Effect from "effect/Effect"
import { DbConfig } from "../../src/index.js"
import * as NodeFileSystem from "../../src/internal/nodeFileSystem.js"

const outcome = await Effect.runPromise(
  DbConfig.make({ dotEnv: false }).pipe(
    Effect.provide(NodeFileSystem.layer),
    Effect.as({ ok: true }),
    Effect.catchAll((error) =>
      Effect.succeed({
        ok: false,
        tag: error._tag,
        message: error.message,
        variables: error._tag === "ConfigError" ? error.issues.map((issue) => issue.variable) : [error.variable]
      })
    )
  )
)
process.stdout.write(`${JSON.stringify(outcome)}\n`)

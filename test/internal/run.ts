/**
 * Child processes for the root tests (the consumer test, the examples' smoke test): a command run
 * with an environment that does not depend on the workspace or on this machine's database and
 * secrets settings.
 */
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as Path from "node:path"

/** How a child process ended. */
export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * The environment of this process without what would make the consumer's runs depend on the
 * workspace: `npm_*` variables from `npm test`, `PG*` (pg's fallbacks), `NODE_ENV`, `DB_*`,
 * `DATABASE_URL`, `SECRETS_*`, `VAULT_*`, `AWS_*`. The network settings stay (proxy variables,
 * `NODE_EXTRA_CA_CERTS`: a Node from the npm registry does not read the system CA store, and npm
 * without them retries the registry for minutes before falling back to its cache).
 */
export const inherited = Object.fromEntries(
  Object.entries(process.env).filter(([name, value]) =>
    value !== undefined && !/^(npm_|PG|NODE_ENV$|DB_|DATABASE_URL$|SECRETS_|VAULT_|AWS_)/i.test(name)
  )
)

/**
 * A child process with that environment, the running Node first on `PATH` so that `npm`, `npx`
 * and `#!/usr/bin/env node` scripts use it.
 */
export const run = (command: string, args: ReadonlyArray<string>, options: { cwd: string; env?: Record<string, string> }) =>
  Effect.async<Run>((resume) => {
    const child = execFile(command, [...args], {
      cwd: options.cwd,
      env: { ...inherited, PATH: `${Path.dirname(process.execPath)}:${process.env["PATH"] ?? ""}`, ...options.env },
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    child.stdin?.end()
    return Effect.sync(() => child.kill())
  })

/**
 * Test helpers for @takumi/db-cli: run the command line as the executable does (same argument
 * parsing, same error mapping), with standard output and error captured and the configuration
 * read from a map instead of the process environment.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Cause from "effect/Cause"
import { Cli } from "../src/index.js"

export interface CliRun {
  readonly stdout: string
  readonly stderr: string
  /** the process exit code `Cli.teardown` would choose */
  readonly exitCode: number
  /** the typed failure, if the command failed */
  readonly error: Option.Option<unknown>
}

/** Production with three refusals: no TLS, the env secrets backend, a password in the environment. */
export const productionRefused = (password: string): Record<string, string> => ({
  NODE_ENV: "production",
  DB_HOST: "db.internal.example.com",
  DB_USER: "app",
  DB_SSL: "false",
  SECRETS_BACKEND: "env",
  DB_PASSWORD: password
})

/** The `_tag` of the command's failure, if it failed with a tagged error. */
export const errorTag = (run: CliRun): Option.Option<string> =>
  Option.flatMap(run.error, (error) =>
    typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
      ? Option.some(error._tag)
      : Option.none())

/** Runs `takumi-db <args>` with `variables` as the environment (by default, not on a terminal). */
export const runCli = (
  args: ReadonlyArray<string>,
  variables: Record<string, string> = {},
  terminal: Cli.Terminal = { stdoutIsTerminal: false, stderrIsTerminal: false }
) =>
  Console.consoleWith((base) => {
    const stdout: Array<string> = []
    const stderr: Array<string> = []
    const line = (parts: ReadonlyArray<unknown>) => parts.map((part) => String(part)).join(" ")
    const console: Console.Console = {
      ...base,
      log: (...parts) => Effect.sync(() => void stdout.push(line(parts))),
      error: (...parts) => Effect.sync(() => void stderr.push(line(parts))),
      unsafe: {
        ...base.unsafe,
        log: (...parts) => void stdout.push(line(parts)),
        error: (...parts) => void stderr.push(line(parts))
      }
    }
    return Cli.main(["node", "takumi-db", ...args], terminal).pipe(
      Effect.provide(NodeContext.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables)))),
      Effect.withConsole(console),
      Effect.exit,
      Effect.map((exit): CliRun => {
        let exitCode = -1
        Cli.teardown(exit, (code) => {
          exitCode = code
        })
        return {
          stdout: stdout.join("\n"),
          stderr: stderr.join("\n"),
          exitCode,
          error: Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        }
      })
    )
  })

/**
 * Runs once per `vitest run`: one initdb template for the whole run, announced to the forked
 * test workers through TAKUMI_PG_TEMPLATE (workers inherit the environment of the main process,
 * which this setup runs in before they are forked). Each PgTestServer then copies the template
 * instead of running initdb. It also sweeps temp folders left by killed workers of earlier runs.
 * Without PostgreSQL binaries the setup only warns: tests that need a
 * server then fail with PgTestServerError's installation hint, the others still run.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { PgTestServer } from "@takumi/testing"

export default async function setup(): Promise<() => Promise<void>> {
  // Folders left by workers that were killed in an earlier run (their servers died with them).
  await Effect.runPromise(PgTestServer.sweepStale)
  const scope = Effect.runSync(Scope.make())
  const created = await Effect.runPromiseExit(Scope.extend(PgTestServer.makeTemplate, scope))
  if (Exit.isSuccess(created)) {
    process.env[PgTestServer.TEMPLATE_ENV] = created.value
  } else {
    process.stderr.write(`[takumi] no PostgreSQL template for this run:\n${String(created.cause)}\n`)
  }
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

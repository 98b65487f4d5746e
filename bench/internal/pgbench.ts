/**
 * pgbench (libpq, the reference limit of what a client can get out of the server) against the
 * bench server: `SELECT 1::int` for a few seconds with `clients` connections, in extended or
 * prepared protocol mode. It is a separate process, so its client CPU is not measured here.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import type { PgTestServer, TestPki } from "@takumi/testing"

/** Where the harness's PostgreSQL binaries are (FACTS.md). */
const binDir = process.env.TAKUMI_PG_BIN ?? "/usr/lib/postgresql/15/bin"

const script = (() => {
  const dir = mkdtempSync(join(tmpdir(), "takumi-pgbench-"))
  const file = join(dir, "select.sql")
  writeFileSync(file, "SELECT 1::int;\n")
  return file
})()

/** Transactions per second reported by pgbench (excluding connection time); dies if it fails. */
export const run = (options: {
  readonly server: PgTestServer.PgTestServer
  readonly pki: TestPki.TestPki
  readonly password: string
  readonly clients: number
  readonly seconds: number
  readonly mode: "extended" | "prepared"
}): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const child = spawn(join(binDir, "pgbench"), [
      "-n", "-c", String(options.clients), "-j", String(Math.min(options.clients, 2)),
      "-T", String(options.seconds), "-M", options.mode, "-f", script,
      "-h", options.server.host, "-p", String(options.server.port), "-U", "app", "app"
    ], {
      env: {
        ...process.env,
        PGPASSWORD: options.password,
        PGSSLMODE: "verify-ca",
        PGSSLROOTCERT: options.pki.ca.certPath
      }
    })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.on("close", (code) => {
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]
      if (code === 0 && tps !== undefined) resume(Effect.succeed(Number(tps)))
      else resume(Effect.dieMessage(`pgbench failed (exit ${code}): ${out}`))
    })
  })

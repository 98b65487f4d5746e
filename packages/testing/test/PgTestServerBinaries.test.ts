import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { findBinDir } from "../src/internal/pg/binaries.js"

// The machine's real server binaries (the test suite needs them anyway).
const realBinDir = findBinDir

/** Runs `effect` with the given environment variables (undefined = unset), restoring them after. */
const withEnv = <A, E>(vars: Record<string, string | undefined>, effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]))
      for (const [key, value] of Object.entries(vars)) {
        if (value === undefined) delete process.env[key]
        else process.env[key] = value
      }
      return saved
    }),
    () => effect,
    (saved) =>
      Effect.sync(() => {
        for (const [key, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[key]
          else process.env[key] = value
        }
      })
  )

describe("PgTestServer binaries", () => {
  it.effect("uses PG_BIN when it holds initdb, postgres and pg_basebackup", () =>
    Effect.gen(function*() {
      const bin = yield* realBinDir
      expect(yield* withEnv({ PG_BIN: bin }, findBinDir)).toBe(bin)
    }))

  it.effect("finds initdb on PATH when pg_config is absent, following its symlink to the real folder", () =>
    Effect.gen(function*() {
      const bin = yield* realBinDir
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "takumi-path-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      Fs.symlinkSync(Path.join(bin, "initdb"), Path.join(dir, "initdb"))
      expect(yield* withEnv({ PG_BIN: undefined, PATH: dir }, findBinDir)).toBe(bin)
    }).pipe(Effect.scoped))

  it.effect("falls back to the highest /usr/lib/postgresql/<version>/bin", () =>
    Effect.gen(function*() {
      const versions = Fs.existsSync("/usr/lib/postgresql")
        ? Fs.readdirSync("/usr/lib/postgresql").filter((entry) => /^\d+$/.test(entry)).map(Number)
        : []
      const found = yield* Effect.either(withEnv({ PG_BIN: undefined, PATH: "/nonexistent" }, findBinDir))
      if (versions.length === 0) {
        expect(found._tag).toBe("Left")
      } else {
        expect(found).toMatchObject({ _tag: "Right", right: `/usr/lib/postgresql/${Math.max(...versions)}/bin` })
      }
    }))

  it.effect("fails with an installation hint when PG_BIN points at the wrong folder", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(withEnv({ PG_BIN: Os.tmpdir() }, findBinDir))
      expect(error._tag).toBe("PgTestServerError")
      expect(error.message).toContain(`PG_BIN=${Os.tmpdir()}`)
      expect(error.message).toContain("apt-get install postgresql")
    }))
})

/**
 * A Secrets Manager rotation while queries run: SecureSqlClient against a real PostgreSQL 15
 * server, its password read through the real AWS SDK client from the Secrets Manager double (a
 * local server speaking the AWS JSON 1.1 protocol; it is not AWS). The double runs the four
 * rotation steps; `setSecret` is a real `ALTER ROLE` on the server and `testSecret` a real login
 * with the pending password. Between `setSecret` and `finishSecret` the server accepts only the
 * AWSPENDING value while AWSCURRENT still holds the old one.
 */
import { assert, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { testSettings } from "@takumi/config"
import { SecretsBackend } from "@takumi/secrets"
import { SecretsManagerDouble, TestDatabase } from "@takumi/testing"
import * as Pg from "pg"
import { afterAll, beforeAll, vi } from "vitest"
import { SecureSqlClient } from "../src/index.js"
import { configLayer, makeLogCapture, makeSettings } from "./fixtures.js"

const OLD_PASSWORD = "aws-old-Pa55word-rot-3e91"
const NEW_PASSWORD = "aws-new-Pa55word-rot-c07d"
const SECRET_ID = "takumi/test/DB_PASSWORD"
/** short, so that the workload reads the secret again many times during the rotation */
const CACHE_TTL = Duration.millis(250)
/** how long the workload runs in each phase of the rotation */
const PHASE = Duration.millis(1500)
const WORKERS = 4

beforeAll(() => {
  // the SDK's default credential chain; the double does not check SigV4
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDROTATIONDOUBLE")
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "rotation-double-secret")
})
afterAll(() => {
  vi.unstubAllEnvs()
})

const database = TestDatabase.layer({ roles: [{ name: "app", password: OLD_PASSWORD }], database: "app" })

type Phase = "before" | SecretsManagerDouble.RotationStep

interface Outcome {
  readonly phase: Phase
  readonly pid: number | undefined
  readonly failure: string | undefined
}

/** `testSecret`: a real login as the application role with the pending password. */
const login = (env: Context.Tag.Service<TestDatabase.TestDatabase>, password: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(async () => {
      const client = new Pg.Client({
        host: env.server.host,
        port: env.server.port,
        user: "app",
        database: "app",
        password,
        ssl: { ca: env.pki.ca.certPem, rejectUnauthorized: true }
      })
      await client.connect()
      return client
    }),
    (client) => Effect.tryPromise(() => client.query("SELECT 1")),
    (client) => Effect.promise(() => client.end())
  ).pipe(Effect.orDie)

layer(database, { timeout: 120_000, excludeTestServices: true })("SecureSqlClient over AWS Secrets Manager (rotation window)", (it) => {
  it.scoped("a four-step rotation under a steady query stream fails no query; new connections in the window use AWSPENDING", () =>
    Effect.gen(function*() {
      const env = yield* TestDatabase.TestDatabase
      const double = yield* SecretsManagerDouble.make()
      yield* double.putSecretString(SECRET_ID, OLD_PASSWORD)
      const settings = makeSettings(env.server, env.pki, {
        // connections close when idle or 300 ms old: the stream keeps opening new ones
        idleTimeout: Duration.millis(20),
        maxLifetime: Duration.millis(300),
        secrets: {
          ...testSettings().secrets,
          backend: "aws-secrets-manager",
          prefix: "takumi/test/",
          cacheTtl: CACHE_TTL,
          requestTimeout: Duration.seconds(5),
          aws: Option.some({ region: double.region, endpoint: Option.some(double.endpoint), maxAttempts: 1, caBundle: Option.none() })
        }
      })
      const logs = yield* makeLogCapture
      const secrets = Layer.scoped(SecretsBackend, SecretsBackend.makeAwsSecretsManager(settings))
      const context = yield* Layer.build(
        SecureSqlClient.layer.pipe(Layer.provide(Layer.merge(configLayer(settings), secrets)))
      ).pipe(Effect.provide(logs.layer))
      const sql = Context.get(context, SqlClient.SqlClient)

      const phase = yield* Ref.make<Phase>("before")
      const outcomes = yield* Ref.make<ReadonlyArray<Outcome>>([])
      const one = Effect.gen(function*() {
        const result = yield* Effect.either(sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
        const at = yield* Ref.get(phase)
        const outcome: Outcome = Either.match(result, {
          onLeft: (error) => ({ phase: at, pid: undefined, failure: error.message }),
          onRight: (rows) => ({ phase: at, pid: rows[0]?.pid, failure: undefined })
        })
        yield* Ref.update(outcomes, (all) => [...all, outcome])
        // a pause longer than the idle timeout: the next query of this worker needs a new connection
        yield* Effect.sleep("30 millis")
      })
      const workers = yield* Effect.fork(
        Effect.all(Array.from({ length: WORKERS }, () => Effect.forever(one)), { concurrency: "unbounded" })
      )
      yield* Effect.sleep(PHASE)
      yield* double.rotate(SECRET_ID, {
        value: NEW_PASSWORD,
        setSecret: (pending) => Effect.orDie(env.server.query(`ALTER ROLE app PASSWORD '${pending}'`)),
        testSecret: (pending) => login(env, pending),
        afterStep: (step) => Effect.zipRight(Ref.set(phase, step), Effect.sleep(PHASE))
      })
      yield* Fiber.interrupt(workers)

      const all = yield* Ref.get(outcomes)
      const failures = all.filter((outcome) => outcome.failure !== undefined)
      assert.deepStrictEqual(failures, [])
      // and none waited through a phase: queries completed in every phase of the rotation
      for (const step of ["createSecret", "setSecret", "testSecret", "finishSecret"] as const) {
        assert.isAtLeast(all.filter((outcome) => outcome.phase === step).length, WORKERS, step)
      }
      const seenBefore = new Set<number>()
      const newInWindow = new Set<number>()
      for (const outcome of all) {
        if (outcome.pid === undefined) continue
        const window = outcome.phase === "setSecret" || outcome.phase === "testSecret"
        if (window && !seenBefore.has(outcome.pid)) newInWindow.add(outcome.pid)
        seenBefore.add(outcome.pid)
      }
      // the stream did authenticate new connections while only AWSPENDING worked
      assert.isAtLeast(newInWindow.size, 3)

      const requests = (yield* double.requests).filter((request) => request.secretId === SECRET_ID)
      const gets = requests.filter((request) => request.target === "secretsmanager.GetSecretValue")
      const pendingReads = gets.filter((request) => request.versionStage === "AWSPENDING")
      const describes = requests.filter((request) => request.target === "secretsmanager.DescribeSecret")
      // AWSPENDING is read when the window opens, not for each new connection in it
      assert.isAtLeast(pendingReads.length, 1)
      assert.isBelow(pendingReads.length, newInWindow.size)
      // the value is fetched at startup and once for the new AWSCURRENT version; every other
      // expiry (about one per 250 ms for 6 s) is a DescribeSecret that finds the same version
      assert.strictEqual(gets.length - pendingReads.length, 2)
      assert.isAtLeast(describes.length, 10)
      for (const line of yield* logs.lines) {
        assert.notInclude(line.text, OLD_PASSWORD)
        assert.notInclude(line.text, NEW_PASSWORD)
      }
    }))
})

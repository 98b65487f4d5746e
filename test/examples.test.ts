/**
 * The examples in `examples/` as a reader runs them: each is a child process (this Node,
 * `--conditions=@takumi/source --import tsx`, an environment without `DB_*`, `PG*`, `SECRETS_*`,
 * `VAULT_*`, `AWS_*` or `NODE_ENV`) that starts its own PostgreSQL and protocol doubles, must exit
 * with 0 and print the line that says what it verified. Each has its `example:<name>` npm script.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { run } from "./internal/run.js"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

/** Each example, and a line of its output that only a successful run prints. */
const examples: ReadonlyArray<readonly [name: string, verified: RegExp]> = [
  ["dotenv", /✓ connected as app with the password from \.env; pg_stat_ssl: ssl=true TLSv1\.[23]/],
  ["vault", /✓ connected as app; pg_stat_ssl: ssl=true TLSv1\.[23]/],
  ["aws-secrets-manager", /✓ connected as app \(DB_USER, not the secret's rds_admin\); pg_stat_ssl: ssl=true/],
  ["mutual-tls", /✓ connected as app over TLSv1\.[23]; pg_stat_ssl\.client_dn=.*CN=app/],
  ["read-replica", /✓ ReadReplica -> port \d+ \(in recovery: true, ssl: true\)/],
  ["migrations", /✓ second run applied 0 /],
  ["graceful-shutdown", /✓ pg_stat_activity: 0 session\(s\) of the service left/],
  ["kysely", /✓ Kysely's connection is TLS: pg_stat_ssl ssl=true/],
  ["health-server", /✓ draining: \/readyz 503, \/livez 200; the grace of 1s is over/],
  ["sigterm", /✓ pg_stat_activity: 0 session\(s\) of the child left after SIGTERM \(grace 3s\)/]
]

const scripts: Record<string, string> = JSON.parse(Fs.readFileSync(Path.join(repoRoot, "package.json"), "utf8")).scripts

// each example starts its own servers: they run side by side
describe.concurrent("examples", () => {
  it("has, for each example, its file and one npm script running it with tsx on the sources", () => {
    for (const [name] of examples) {
      assert.isTrue(Fs.existsSync(Path.join(repoRoot, "examples", `${name}.ts`)), `examples/${name}.ts`)
      assert.strictEqual(scripts[`example:${name}`], `tsx --conditions=@takumi/source examples/${name}.ts`)
    }
  })

  for (const [name, verified] of examples) {
    it.effect(`${name}: exits 0 and prints what it verified`, () =>
      Effect.gen(function*() {
        const result = yield* run(
          process.execPath,
          ["--conditions=@takumi/source", "--import", "tsx", `examples/${name}.ts`],
          { cwd: repoRoot }
        )
        const output = `exit ${result.code}\n${result.stdout}\n${result.stderr}`
        assert.strictEqual(result.code, 0, output)
        assert.match(result.stdout, verified, output)
        assert.match(result.stdout, /Done: servers stopped, temporary files removed\./, output)
      }), 120_000)
  }
})

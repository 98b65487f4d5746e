/**
 * The security policy: what each environment refuses and what it merely warns about.
 *
 * | rule | production | staging | development / test |
 * |---|---|---|---|
 * | `tls-required` | refuse | refuse | warn |
 * | `certificate-validation` | refuse | refuse | warn |
 * | `tls-min-version` | refuse | refuse | warn |
 * | `secrets-backend-env` | refuse | warn | warn |
 * | `password-in-environment` | refuse | warn when the backend ignores it | warn when the backend ignores it |
 * | `dotenv-credentials` | refuse | warn | allowed (the file is loaded) |
 * | `dotenv-version-control` | refuse | refuse | warn |
 * | `secret-path-environment` | refuse | refuse | refuse |
 * | `secrets-transport-tls` | refuse | refuse | warn |
 * | `tls-verification-override` | refuse | refuse | warn |
 * | `password-auth-method` | refuse | refuse | allowed (a server asking for md5 / cleartext warns once) |
 * | `channel-binding` | refuse | refuse | allowed |
 * | `public-ca-trust` | warn | warn | allowed |
 * | `rds-iam-tls` | refuse | refuse | refuse |
 * | `vault-secret-id-inline` | warn | warn | allowed |
 *
 * Staging is production's rehearsal: the wire is held to production's standard (TLS, certificate
 * validation, TLS version, secrets over TLS) so that what passes staging passes production, while
 * credential handling only warns so a staging stack can still run from environment variables.
 * Reading another environment's secrets is refused everywhere: the requirements never allow
 * sharing credentials across environments, and a laptop holding production credentials is worse
 * than a production host holding test ones.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { DbSettings, Environment } from "./DbSettings.js"
import { InsecureConfiguration, type Rule } from "./InsecureConfiguration.js"

/**
 * What the settings value alone cannot tell: where the password came from and what was seen of a
 * `.env` file. `DbConfig.layer` fills this in; `DbConfig.layerFrom(settings)` has none.
 *
 * @since 0.1.0
 * @category models
 */
export interface EnvironmentFacts {
  /** the variable the password was read from, when one was set */
  readonly passwordVariable?: "DB_PASSWORD" | "DATABASE_URL"
  /** the `.env` file found in the working directory, if any */
  readonly dotEnv?: {
    readonly path: string
    /** whether it was loaded (development and test only) */
    readonly loaded: boolean
    /**
     * the credential-bearing variables it sets (names only): `DB_PASSWORD`, `DATABASE_URL` with a
     * password, `VAULT_TOKEN`, `DB_SSL_KEY`, `DB_SSL_KEY_PASSPHRASE`, `AWS_SECRET_ACCESS_KEY`,
     * `AWS_SESSION_TOKEN`
     */
    readonly credentials: ReadonlyArray<string>
    /**
     * what git says of the file, when it is inside a git work tree: `tracked` (committed or
     * staged) or `not-ignored` (one `git add .` away); absent when git is missing, the directory
     * is not a work tree, or the file is ignored
     */
    readonly versionControl?: "tracked" | "not-ignored"
  }
  /**
   * process-wide switches that turn TLS verification off whatever the settings say:
   * `NODE_TLS_REJECT_UNAUTHORIZED=0` and a non-empty `VAULT_SKIP_VERIFY`
   */
  readonly verificationOverrides?: ReadonlyArray<"NODE_TLS_REJECT_UNAUTHORIZED" | "VAULT_SKIP_VERIFY">
  /** `NODE_EXTRA_CA_CERTS`, when set: Node trusts its certificates in addition to the public CA store */
  readonly extraCaCerts?: string
}

/**
 * One result of the policy: a refusal (the program must not start) or a warning (a relaxation
 * the environment allows, logged once at startup).
 *
 * @since 0.1.0
 * @category models
 */
export interface Finding {
  readonly rule: Rule
  readonly severity: "refuse" | "warn"
  readonly variable: string
  readonly message: string
}

/**
 * The names each environment goes by in secret paths, Vault namespaces and prefixes. The first is
 * the canonical name; a word that starts with it also counts (`productionold`, `staging2`), and so
 * does an alias followed only by digits (`prod2`, `stg01`). `qa` and `uat` are test and staging
 * environments as most teams use them; `live` is production.
 */
const environmentNames: { readonly [E in Environment]: ReadonlyArray<string> } = {
  development: ["development", "dev", "devel"],
  test: ["testing", "test", "qa"],
  staging: ["staging", "stage", "stg", "uat", "preprod"],
  production: ["production", "prod", "prd", "live"]
}

const environments: ReadonlyArray<Environment> = ["development", "test", "staging", "production"]

/** The path as Vault or AWS will read it: percent-decoded (repeatedly: `%2570` is `%70` is `p`). */
const decoded = (path: string): string => {
  let current = path
  for (let round = 0; round < 3; round++) {
    let next: string
    try {
      next = decodeURIComponent(current)
    } catch {
      return current
    }
    if (next === current) return current
    current = next
  }
  return current
}

const names = (word: string, environment: Environment): boolean => {
  const [canonical = environment, ...aliases] = environmentNames[environment]
  return word.startsWith(canonical) ||
    [canonical, ...aliases].some((alias) => word === alias || (word.startsWith(alias) && /^\d+$/.test(word.slice(alias.length))))
}

/**
 * The environment a secret path, prefix or Vault namespace names, other than `own`, if any. The
 * value is percent-decoded first, then split into segments at `/` and `:` (Vault paths and
 * namespaces, Secrets Manager names and ARNs) and each segment into words at `-`, `_` and `.`, so
 * `takumi/staging/`, `secret/takumi-dev`, `admin/prod` and `arn:...:secret:prod2/db` all count.
 *
 * @since 0.1.0
 * @category utils
 */
export const foreignEnvironmentIn = (path: string, own: Environment): Option.Option<Environment> => {
  const words = decoded(path).toLowerCase().split(/[/:]/).flatMap((segment) => segment.split(/[-_.\s]/))
  const ownWords = new Set(words.filter((word) => names(word, own)))
  for (const environment of environments) {
    if (environment === own) continue
    // a word that names our own environment too (`development` starts with `dev`) is ours
    if (words.some((word) => !ownWords.has(word) && names(word, environment))) return Option.some(environment)
  }
  return Option.none()
}

/** "Rotate credentials regularly (every 90 days minimum)": the longest `DB_CREDENTIAL_MAX_AGE` production accepts. */
const requiredRotationDays = 90

const hardensWire = (environment: Environment): boolean => environment === "production" || environment === "staging"

const tlsVersionRank = { "TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3 } as const

/**
 * Every finding for the settings, refusals and warnings alike, in a fixed order. Pure: the CLI's
 * `doctor` prints them all; {@link check} logs the warnings and fails on the first refusal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const evaluate = (settings: DbSettings, facts: EnvironmentFacts = {}): ReadonlyArray<Finding> => {
  const env = settings.environment
  const findings: Array<Finding> = []
  const add = (rule: Rule, severity: Finding["severity"], variable: string, message: string) =>
    findings.push({ rule, severity, variable, message })
  const tls = settings.tls

  // first: where it applies it says more than the general TLS rules below
  const rdsIam = settings.secrets.backend === "rds-iam"
  if (rdsIam && (!tls.enabled || !tls.rejectUnauthorized)) {
    // refused everywhere: unlike a password a developer chose, the token is a credential AWS
    // accepts for the real database, and the server asks for it in cleartext
    add(
      "rds-iam-tls",
      "refuse",
      tls.enabled ? "DB_SSL_REJECT_UNAUTHORIZED" : "DB_SSL",
      `SECRETS_BACKEND=rds-iam sends an IAM authentication token as the password, in cleartext inside TLS, so it ` +
        `needs TLS with full verification (sslmode=verify-full) in every environment, but ${
          tls.enabled ? "DB_SSL_REJECT_UNAUTHORIZED=false" : "DB_SSL=false"
        }. Fix: set DB_SSL=true and DB_SSL_REJECT_UNAUTHORIZED=true, and DB_SSL_CA to the RDS CA bundle ` +
        "(https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)."
    )
  }
  if (!tls.enabled) {
    if (hardensWire(env)) {
      add(
        "tls-required",
        "refuse",
        "DB_SSL",
        `CRITICAL SECURITY ERROR: Database SSL/TLS is REQUIRED in ${env}. Set DB_SSL=true ` +
          `(and remove sslmode=disable from DATABASE_URL if it is set).`
      )
    } else {
      add(
        "tls-required",
        "warn",
        "DB_SSL",
        `Database TLS is off (DB_SSL=false): connections to ${settings.host} are unencrypted. ` +
          `Allowed in ${env} only; staging and production refuse it.`
      )
    }
  } else {
    if (!tls.rejectUnauthorized) {
      add(
        "certificate-validation",
        hardensWire(env) ? "refuse" : "warn",
        "DB_SSL_REJECT_UNAUTHORIZED",
        hardensWire(env)
          ? `Database certificate validation is REQUIRED in ${env}. Set DB_SSL_REJECT_UNAUTHORIZED=true ` +
            `(or use sslmode=verify-full in DATABASE_URL) and give the server's CA in DB_SSL_CA if it is not a public CA.`
          : `Database server certificate is not verified (DB_SSL_REJECT_UNAUTHORIZED=false or sslmode=require): ` +
            `anyone on the path can impersonate ${settings.host}. Allowed in ${env} only.`
      )
    }
    if (tlsVersionRank[tls.minVersion] < tlsVersionRank["TLSv1.2"]) {
      add(
        "tls-min-version",
        hardensWire(env) ? "refuse" : "warn",
        "DB_SSL_MIN_VERSION",
        hardensWire(env)
          ? `TLS 1.2 or higher is REQUIRED in ${env}, but DB_SSL_MIN_VERSION=${tls.minVersion}. ` +
            `Set DB_SSL_MIN_VERSION=TLSv1.2 (or TLSv1.3) and upgrade the server if it cannot negotiate it.`
          : `DB_SSL_MIN_VERSION=${tls.minVersion} allows TLS versions below 1.2. Allowed in ${env} only.`
      )
    }
  }

  if (tls.enabled && Option.isNone(tls.ca) && hardensWire(env)) {
    add(
      "public-ca-trust",
      "warn",
      "DB_SSL_CA",
      `DB_SSL_CA is not set: the database server is trusted through the public CA store${
        facts.extraCaCerts === undefined ? "" : ` and NODE_EXTRA_CA_CERTS=${facts.extraCaCerts}`
      }, so any publicly trusted certificate for ${settings.host} is accepted. Set DB_SSL_CA to the CA that ` +
        "issues your database certificates (e.g. the RDS or Cloud SQL CA bundle) to trust that CA only."
    )
  }
  // with rds-iam cleartext is how RDS asks for the token, and rds-iam-tls holds it to verified TLS
  const weakMethods = settings.auth.requireAuth.filter((method) =>
    method === "md5" || (method === "password" && !rdsIam)
  )
  if (weakMethods.length > 0 && hardensWire(env)) {
    add(
      "password-auth-method",
      "refuse",
      "DB_REQUIRE_AUTH",
      `DB_REQUIRE_AUTH accepts ${weakMethods.join(" and ")} in ${env}: the password (or its MD5 hash) would go to ` +
        "any server that asks for it. Set DB_REQUIRE_AUTH=scram-sha-256,none (the default), set " +
        "password_encryption = scram-sha-256 on the server and re-set the role's password."
    )
  }
  if (settings.auth.channelBinding === "disable" && hardensWire(env)) {
    add(
      "channel-binding",
      "refuse",
      "DB_CHANNEL_BINDING",
      `DB_CHANNEL_BINDING=disable is not allowed in ${env}: SCRAM would not be bound to the TLS channel. ` +
        "Use prefer (the default) or require."
    )
  }

  const backend = settings.secrets.backend
  if (backend === "env") {
    add(
      "secrets-backend-env",
      env === "production" ? "refuse" : "warn",
      "SECRETS_BACKEND",
      env === "production"
        ? `Database credentials MUST come from a secrets manager in production, but SECRETS_BACKEND=env. ` +
          `Set SECRETS_BACKEND=aws-secrets-manager (with AWS_REGION), SECRETS_BACKEND=vault ` +
          `(with VAULT_ADDR, VAULT_TOKEN, VAULT_PATH) or SECRETS_BACKEND=rds-iam (with AWS_REGION) and remove DB_PASSWORD.`
        : `The database password is read from environment variables (SECRETS_BACKEND=env). ` +
          `Allowed in ${env}; production refuses it.`
    )
  }

  if (Option.isSome(settings.password)) {
    const variable = facts.passwordVariable ?? "DB_PASSWORD"
    const where = variable === "DATABASE_URL" ? "the password part of DATABASE_URL" : "DB_PASSWORD"
    if (env === "production") {
      add(
        "password-in-environment",
        "refuse",
        variable,
        `Plaintext database credentials are PROHIBITED in production, but ${where} is set. ` +
          `Remove it and store the password in the secrets manager (SECRETS_BACKEND=aws-secrets-manager or vault).`
      )
    } else if (backend !== "env") {
      add(
        "password-in-environment",
        "warn",
        variable,
        `${where} is set but SECRETS_BACKEND=${backend} does not read it; remove it.`
      )
    }
  }

  const vaultAuth = Option.map(settings.secrets.vault, (vault) => vault.auth)
  if (
    Option.exists(vaultAuth, (auth) => auth.method === "approle" && auth.secretId._tag === "Inline") &&
    hardensWire(env)
  ) {
    add(
      "vault-secret-id-inline",
      "warn",
      "VAULT_SECRET_ID",
      `VAULT_SECRET_ID is given as a variable in ${env}: the AppRole secret_id then sits in the process environment, ` +
        "which child processes inherit and /proc/<pid>/environ shows. Mount it as a file (a Kubernetes or Docker " +
        "secret, a response-wrapped delivery) and set VAULT_SECRET_ID_FILE instead."
    )
  }

  const [firstCredential] = facts.dotEnv?.credentials ?? []
  if (facts.dotEnv !== undefined && firstCredential !== undefined && !facts.dotEnv.loaded) {
    add(
      "dotenv-credentials",
      env === "production" ? "refuse" : "warn",
      firstCredential,
      `${facts.dotEnv.path} holds ${facts.dotEnv.credentials.join(", ")}: raw .env files with credentials are ` +
        `PROHIBITED in ${env === "production" ? "production" : "deployed environments"}. Delete the file from the ` +
        "deployment and keep passwords, tokens and keys in the secrets manager."
    )
  }

  const versionControl = facts.dotEnv?.versionControl
  if (facts.dotEnv !== undefined && versionControl !== undefined) {
    // Staging refuses too: the file is in the repository whatever the environment, so every
    // clone carries whatever it holds; only a developer's own checkout is let off with a warning.
    const refused = env === "production" || env === "staging"
    const path = facts.dotEnv.path
    const file = path.split("/").pop() ?? path
    add(
      "dotenv-version-control",
      refused ? "refuse" : "warn",
      path,
      `${path} is ${versionControl === "tracked" ? "tracked by git" : "in a git work tree and not ignored"}: ` +
        ".env files must NEVER be committed to version control" + (refused ? `, and ${env} refuses to start with one` : "") +
        `. Fix: ${versionControl === "tracked" ? `git rm --cached ${file}, ` : ""}add ${file} to .gitignore` +
        (versionControl === "tracked" ? ", commit, and rotate every credential the file ever held" : "") + "."
    )
  }

  const paths: Array<readonly [string, string]> = [["SECRETS_PREFIX", settings.secrets.prefix]]
  if (Option.isSome(settings.secrets.vault)) {
    paths.push(["VAULT_PATH", settings.secrets.vault.value.path])
    if (Option.isSome(settings.secrets.vault.value.namespace)) {
      paths.push(["VAULT_NAMESPACE", settings.secrets.vault.value.namespace.value])
    }
  }
  for (const [variable, path] of paths) {
    const foreign = foreignEnvironmentIn(path, env)
    if (Option.isSome(foreign)) {
      add(
        "secret-path-environment",
        "refuse",
        variable,
        `${variable}=${path} names the ${foreign.value} environment but NODE_ENV=${env}: credentials are never ` +
          `shared across environments. Point ${variable} at this environment's secrets (e.g. takumi/${env}/).`
      )
    }
  }

  const endpoints: Array<readonly [string, string]> = []
  if (Option.isSome(settings.secrets.vault)) endpoints.push(["VAULT_ADDR", settings.secrets.vault.value.address])
  if (Option.isSome(settings.secrets.aws) && Option.isSome(settings.secrets.aws.value.endpoint)) {
    endpoints.push(["AWS_ENDPOINT_URL_SECRETS_MANAGER", settings.secrets.aws.value.endpoint.value])
  }
  for (const [variable, address] of endpoints) {
    if (address.toLowerCase().startsWith("http://")) {
      add(
        "secrets-transport-tls",
        hardensWire(env) ? "refuse" : "warn",
        variable,
        hardensWire(env)
          ? `${variable} uses plain http:// in ${env}: the secrets backend's token and the database password ` +
            `would cross the network unencrypted. Use an https:// address.`
          : `${variable} uses plain http://; secrets cross the network unencrypted. Allowed in ${env} only.`
      )
    }
  }
  for (const variable of facts.verificationOverrides ?? []) {
    const what = variable === "NODE_TLS_REJECT_UNAUTHORIZED"
      ? "NODE_TLS_REJECT_UNAUTHORIZED=0 turns certificate verification off for every TLS client in the process"
      : "VAULT_SKIP_VERIFY is set: node-vault turns certificate verification off for any non-empty value, even \"false\""
    add(
      "tls-verification-override",
      hardensWire(env) ? "refuse" : "warn",
      variable,
      hardensWire(env)
        ? `${what}. Unset ${variable} in ${env}; give a private CA with DB_SSL_CA or VAULT_CACERT instead.`
        : `${what}. Allowed in ${env} only; unset it to test what production will do.`
    )
  }
  const maxAgeDays = Math.round(Duration.toHours(settings.alerts.credentialMaxAge) / 24)
  if (maxAgeDays > requiredRotationDays) {
    add(
      "credential-max-age",
      env === "production" ? "refuse" : "warn",
      "DB_CREDENTIAL_MAX_AGE",
      `DB_CREDENTIAL_MAX_AGE=${maxAgeDays} lets a database credential go ${maxAgeDays} days without rotation; ` +
        `the requirements say every ${requiredRotationDays} days at most. ` +
        (env === "production" ? `Set DB_CREDENTIAL_MAX_AGE to ${requiredRotationDays} or less.` : `Allowed in ${env} only.`)
    )
  }
  return findings
}

/**
 * Enforces the policy: logs one warning per relaxation the environment allows and fails with an
 * `InsecureConfiguration` naming the first refused rule (the message counts any further ones;
 * `evaluate` lists them all).
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (
  settings: DbSettings,
  facts: EnvironmentFacts = {}
): Effect.Effect<void, InsecureConfiguration> =>
  Effect.gen(function*() {
    const findings = evaluate(settings, facts)
    for (const finding of findings) {
      if (finding.severity === "warn") {
        yield* Effect.logWarning(finding.message).pipe(
          Effect.annotateLogs({ rule: finding.rule, variable: finding.variable, environment: settings.environment })
        )
      }
    }
    const refusals = findings.filter((finding) => finding.severity === "refuse")
    const [first, ...more] = refusals
    if (first !== undefined) {
      const others = more.length === 0
        ? ""
        : ` (${more.length} more refused: ${more.map((finding) => `${finding.rule} on ${finding.variable}`).join(", ")})`
      return yield* new InsecureConfiguration({
        rule: first.rule,
        variable: first.variable,
        environment: settings.environment,
        message: first.message + others
      })
    }
  })

/**
 * The error every invalid configuration variable ends in.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * One invalid variable: its name, the form it must take and a message a person can act on.
 * The message never contains the value of a secret variable (`DB_PASSWORD`, `VAULT_TOKEN`,
 * `DB_SSL_KEY`, `DB_SSL_KEY_PASSPHRASE`, `DATABASE_URL`).
 *
 * @since 0.1.0
 * @category models
 */
export const ConfigIssue = Schema.Struct({
  variable: Schema.String,
  expected: Schema.String,
  message: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type ConfigIssue = typeof ConfigIssue.Type

/**
 * The configuration could not be decoded. Every invalid variable is reported at once in
 * `issues` (fixing one at a time and restarting is tedious); `variable`, `expected` and the first
 * line of `message` describe the first of them, so a caller that only cares about one variable
 * can branch on `variable` directly.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  variable: Schema.String,
  expected: Schema.String,
  message: Schema.String,
  issues: Schema.Array(ConfigIssue)
}) {
  /**
   * Builds the error from one or more issues (the first one names the error).
   *
   * @since 0.1.0
   */
  static fromIssues(first: ConfigIssue, ...rest: ReadonlyArray<ConfigIssue>): ConfigError {
    const issues = [first, ...rest]
    const message = issues.length === 1
      ? first.message
      : `${issues.length} configuration variables are invalid:\n${issues.map((issue) => `  - ${issue.message}`).join("\n")}`
    return new ConfigError({ variable: first.variable, expected: first.expected, message, issues })
  }

  /**
   * Builds the error for a single variable.
   *
   * @since 0.1.0
   */
  static single(variable: string, expected: string, message: string): ConfigError {
    return ConfigError.fromIssues({ variable, expected, message })
  }
}

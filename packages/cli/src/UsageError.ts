/**
 * The command line asks for something that cannot be done as given.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * Arguments that parse but do not make sense together (e.g. `--instances` without
 * `--max-connections`). The message says which arguments to give. The command exits with 2, as
 * for arguments that do not parse.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  /** the subcommand, e.g. `pool-size` */
  command: Schema.String,
  message: Schema.String
}) {}

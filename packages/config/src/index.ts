/**
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * from "./ConfigError.js"

/**
 * @since 0.1.0
 */
export * from "./DbConfig.js"

/**
 * @since 0.1.0
 */
export * from "./DbSettings.js"

/**
 * Defaults applied when a variable is unset.
 *
 * @since 0.1.0
 */
export * as Defaults from "./Defaults.js"

/**
 * @since 0.1.0
 */
export * from "./InsecureConfiguration.js"

/**
 * Pool presets per environment and `maxPoolSize`.
 *
 * @since 0.1.0
 */
export * as PoolSizing from "./PoolSizing.js"

/**
 * The production security rules.
 *
 * @since 0.1.0
 */
export * as SecurityPolicy from "./SecurityPolicy.js"

/**
 * @since 0.1.0
 */
export * from "./TestSettings.js"

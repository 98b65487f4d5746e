/**
 * @since 0.1.0
 */
export * from "./DbConfig.js"
export * from "./DbSettings.js"

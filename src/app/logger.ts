import { pino, type Logger } from "pino";

/**
 * Paths pino censors in every log line: tokens, keys and auth headers, wherever they nest.
 * (pino's `redact`; wildcards cover one level of nesting each.)
 */
const REDACT_PATHS = [
  "token",
  "*.token",
  "*.*.token",
  "privateKey",
  "*.privateKey",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "*.headers.authorization",
  "*.*.headers.authorization",
  "headers.authorization",
  "*.headers['x-api-key']",
  "ANTHROPIC_API_KEY",
  "*.ANTHROPIC_API_KEY",
  "PRIVATE_KEY",
  "*.PRIVATE_KEY",
  "WEBHOOK_SECRET",
  "*.WEBHOOK_SECRET",
  // Connection URLs may carry a password (`redis://:pass@host`, `postgres://user:pass@host/db`).
  "REDIS_URL",
  "*.REDIS_URL",
  "DATABASE_URL",
  "*.DATABASE_URL",
  "redisConfig",
  "*.redisConfig",
  "connectionString",
  "*.connectionString",
  // ioredis puts the failed command on its errors: for AUTH, the user name and the password.
  "command.args",
  "*.command.args",
];

/**
 * The app's logger: JSON lines on stdout, secrets redacted.
 *
 * @param level - pino level name (LOG_LEVEL)
 */
export function createLogger(level: string = "info", destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { name: "mission-control" },
    redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * groom's logging (section 10): log targets such as `console(output=stdout)` parsed with their
 * problems, a non-blocking JSON-lines logger writing to console, files and syslog exactly as the
 * original does, and typed builders for the system events (LOG-10) and the access record
 * (SRV-20). A leaf: it imports nothing else from `src/`.
 *
 * @example
 * ```ts
 * const { target, problems } = parseLogTarget("console(output=stdout) option(level=debug)");
 * await using logger = openLogger(target);
 * for (const problem of problems) console.error(problem.message);
 * logger.emit(startEvent({ config: "server.conf", mode: "server", pid: Deno.pid, version: "2.0.0" }));
 * ```
 *
 * @module
 */

export {
  accessEvent,
  accessPath,
  accessRange,
  accessRecord,
  type AccessRecordInput,
  domainEvent,
  type DomainEventInput,
  errorEvent,
  errorText,
  listenEvent,
  listenFailedEvent,
  type LogEvent,
  type Mode,
  type ProcessInfo,
  reloadEvent,
  reloadFailedEvent,
  startEvent,
  stopEvent,
  streamEvent,
} from "./events.ts";
export {
  encodeJson,
  fixedZone,
  localZone,
  LOG_LEVELS,
  type LogLevel,
  strftime,
  type TimeFormat,
  type TimeZone,
  UTC_ZONE,
} from "./format.ts";
export {
  Logger,
  type LoggerDeps,
  MAX_BATCH_BYTES,
  MAX_QUEUED_BYTES,
  MAX_QUEUED_LINES,
  openLogger,
} from "./logger.ts";
export { SYSLOG_SOCKET_PATHS, type WritableLike } from "./sinks.ts";
export {
  type ConsoleOutput,
  EMPTY_LOG_TARGET,
  type FileOutput,
  type LogTarget,
  type LogTargetProblem,
  type LogTargetProblemCode,
  type ParsedLogTarget,
  parseLogTarget,
  type SyslogOutput,
} from "./target.ts";

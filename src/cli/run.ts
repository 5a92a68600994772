/**
 * `groom <configuration>`: the start-up order of CLI-9, then the running mode until a signal.
 * SIGHUP reloads (CLI-10): the file is parsed again, a failure is logged and changes nothing, a
 * success re-opens both loggers and hands the new settings to the mode. SIGINT and SIGTERM stop
 * gracefully (ODD-33): listeners close, tunnels close with a status code, in-flight work gets a
 * bounded time to finish, a `stop` event is logged, and the exit status is 0.
 * @module
 */

import {
  type AgentConfig,
  ConfFileError,
  ConfSyntaxError,
  formatProblem,
  loadMainConfig,
  type LoadOptions,
  type MainConfigResult,
  type ServerConfig,
} from "../config/mod.ts";
import {
  type Logger,
  openLogger,
  reloadEvent,
  reloadFailedEvent,
  startEvent,
  stopEvent,
} from "../log/mod.ts";
import { VERSION } from "./version.ts";

/** Exit status for a configuration that cannot be read or parsed (CLI-8). */
export const EXIT_CONFIG = 2;
/** Exit status when the mode is neither server nor agent (CLI-9). */
export const EXIT_MODE = 3;
/** Longest graceful stop before the process exits anyway. */
export const STOP_GRACE_MS = 10_000;

/** A running mode, as the CLI drives it. */
export interface RunningMode {
  /** Applies reloadable settings (CLI-10). */
  reload(config: ServerConfig | AgentConfig): void | Promise<void>;
  /** Stops gracefully. */
  close(): Promise<void>;
}

/** How the CLI starts each mode (injected so the CLI is tested without the network). */
export interface ModeStarters {
  server(config: ServerConfig, deps: ModeDeps): Promise<RunningMode>;
  agent(config: AgentConfig, deps: ModeDeps): Promise<RunningMode>;
}

/** What a mode receives from the CLI. */
export interface ModeDeps {
  readonly logger: Logger;
  readonly accessLogger: Logger;
  readonly loadOptions: LoadOptions;
}

/** Process facilities the run loop uses. */
export interface RunIo {
  stderr(line: string): void;
  /** Registers a signal handler; returns its remover. */
  onSignal(signal: "SIGHUP" | "SIGINT" | "SIGTERM", handler: () => void): () => void;
  /** Program name for log tags and the `{{-}}` macro. */
  readonly programName: string;
  readonly pid: number;
}

/** Reads the main file, reporting syntax and file errors the CLI-8 way. */
async function load(
  path: string,
  options: LoadOptions,
): Promise<MainConfigResult | { error: string }> {
  try {
    return await loadMainConfig(path, options);
  } catch (error) {
    if (error instanceof ConfSyntaxError) {
      return { error: `configuration syntax error: ${error.message}` };
    }
    if (error instanceof ConfFileError) return { error: `configuration error: ${error.message}` };
    throw error;
  }
}

/** Runs groom with a configuration until it is stopped; returns the exit status. */
export async function runConfiguration(
  path: string,
  options: LoadOptions,
  io: RunIo,
  starters: ModeStarters,
): Promise<number> {
  const loaded = await load(path, options);
  if ("error" in loaded) {
    io.stderr(loaded.error);
    return EXIT_CONFIG;
  }
  const config = loaded.server ?? loaded.agent;
  const deps = { programName: io.programName, pid: io.pid };
  // CLI-9 order: access logger, mode, system logger, start event, then the mode.
  const accessLogger = openLogger(config?.logAccess ?? "", deps);
  const logger = openLogger(config?.logSystem ?? "console(output=stdout)", deps);
  const info = { config: path, mode: loaded.mode, pid: io.pid, version: VERSION };
  logger.emit(startEvent(info));
  const closeLoggers = async () => {
    await logger.close();
    await accessLogger.close();
  };
  for (const problem of loaded.problems) {
    logger.warn({ event: "config", mode: loaded.mode, problem: formatProblem(problem) });
  }

  let running: RunningMode;
  const modeDeps: ModeDeps = { logger, accessLogger, loadOptions: options };
  try {
    if (loaded.server) running = await starters.server(loaded.server, modeDeps);
    else if (loaded.agent) running = await starters.agent(loaded.agent, modeDeps);
    else {
      await closeLoggers();
      io.stderr("neither in server nor agent mode");
      return EXIT_MODE;
    }
  } catch (error) {
    logger.error({ event: "error", mode: loaded.mode, error: (error as Error).message });
    await closeLoggers();
    io.stderr(`groom: cannot start: ${(error as Error).message}`);
    return 1;
  }

  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const next = await load(path, options);
      if ("error" in next) {
        logger.emit(reloadFailedEvent({ config: path, mode: loaded.mode, error: next.error }));
        return;
      }
      const nextConfig = loaded.mode === "server" ? next.server : next.agent;
      if (nextConfig === undefined) {
        logger.emit(
          reloadFailedEvent({ config: path, mode: loaded.mode, error: "mode cannot change" }),
        );
        return;
      }
      accessLogger.reload(nextConfig.logAccess);
      logger.reload(nextConfig.logSystem);
      for (const problem of next.problems) {
        logger.warn({ event: "config", mode: loaded.mode, problem: formatProblem(problem) });
      }
      await running.reload(nextConfig);
      logger.emit(reloadEvent(info));
    }).catch((error) => {
      logger.emit(reloadFailedEvent({ config: path, mode: loaded.mode, error }));
    });
  };
  const removers = [
    io.onSignal("SIGHUP", reload),
    io.onSignal("SIGINT", () => stop("SIGINT")),
    io.onSignal("SIGTERM", () => stop("SIGTERM")),
  ];
  const signal = await stopped;
  for (const remove of removers) remove();
  await reloading;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    running.close(),
    new Promise((resolve) => timer = setTimeout(resolve, STOP_GRACE_MS)),
  ]);
  clearTimeout(timer);
  logger.emit(stopEvent({ ...info, signal }));
  await closeLoggers();
  return 0;
}

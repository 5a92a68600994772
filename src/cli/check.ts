/**
 * `groom check <configuration>` (like `nginx -t`): parses the main file and every domain file of
 * its domains folder, prints each one's effective settings with secrets masked, and every problem
 * found with its file:line:column. The exit status is non-zero when any problem is an error.
 * @module
 */

import { join } from "node:path";
import {
  AGENT_DOMAIN_SETTINGS,
  AGENT_SETTINGS,
  ConfFileError,
  ConfSyntaxError,
  domainDefaults,
  formatProblem,
  loadDomainConfig,
  loadMainConfig,
  type LoadOptions,
  type Problem,
  renderSettings,
  SERVER_DOMAIN_SETTINGS,
  SERVER_SETTINGS,
} from "../config/mod.ts";
import { classifyEntry } from "../domains/mod.ts";
import { parseLogTarget } from "../log/mod.ts";

/** Exit status of `check` when the configuration has errors (the same as CLI-8's syntax error). */
export const CHECK_FAILED = 2;

/** Where `check` writes. */
export interface CheckOutput {
  out(line: string): void;
}

/** Runs the check and returns the exit status. */
export async function checkConfiguration(
  path: string,
  options: LoadOptions,
  output: CheckOutput,
): Promise<number> {
  let errors = 0;
  let warnings = 0;
  const report = (problems: readonly Problem[]) => {
    for (const problem of problems) {
      if (problem.severity === "error") errors++;
      else warnings++;
      output.out(`  ${formatProblem(problem)}`);
    }
  };
  let main;
  try {
    main = await loadMainConfig(path, options);
  } catch (error) {
    if (error instanceof ConfSyntaxError || error instanceof ConfFileError) {
      output.out(`${path}: ${error.message}`);
      output.out("1 error, 0 warnings");
      return CHECK_FAILED;
    }
    throw error;
  }
  output.out(`${path}: mode ${main.mode}`);
  const config = main.server ?? main.agent;
  if (config === undefined) {
    output.out(`  error: groom.mode: must be "server" or "agent", not "${main.mode}"`);
    output.out(`1 error, ${main.problems.length} warnings`);
    return CHECK_FAILED;
  }
  const lines = main.server
    ? renderSettings(SERVER_SETTINGS, main.server)
    : renderSettings(AGENT_SETTINGS, main.agent ?? config as never);
  for (const line of lines) output.out(`  ${line}`);
  const logProblems: Problem[] = [];
  for (const [key, spec] of [["log.system", config.logSystem], ["log.access", config.logAccess]]) {
    for (const problem of parseLogTarget(spec ?? "").problems) {
      const position = main.document.positions.get(`groom.${key}`);
      logProblems.push({
        severity: "warning",
        message: problem.message,
        key: `groom.${key}`,
        ...(position ? { position } : {}),
      });
    }
  }
  report([...main.problems, ...logProblems]);

  const folder = config.domains;
  let entries: string[] = [];
  try {
    for await (const entry of Deno.readDir(folder)) {
      if (entry.isFile || entry.isSymlink) entries.push(entry.name);
    }
  } catch (error) {
    warnings++;
    output.out(`  warning: groom.domains: cannot list "${folder}": ${(error as Error).message}`);
  }
  entries = entries.sort();
  for (const entry of entries) {
    const verdict = classifyEntry(entry);
    if (verdict.kind === "skipped") continue;
    const file = join(folder, entry);
    if (verdict.kind === "invalid") {
      warnings++;
      output.out(`${file}: warning: ignored, not a domain name: ${verdict.reason}`);
      continue;
    }
    try {
      const loadOptions = { ...options, missingIsEmpty: false };
      if (main.server) {
        const result = await loadDomainConfig(file, "server", {
          ...loadOptions,
          defaults: domainDefaults(main.server),
        });
        output.out(`${file}: domain ${verdict.name}`);
        for (const line of renderSettings(SERVER_DOMAIN_SETTINGS, result.config)) {
          output.out(`  ${line}`);
        }
        report(result.problems);
      } else {
        const result = await loadDomainConfig(file, "agent", loadOptions);
        output.out(`${file}: domain ${verdict.name}`);
        for (const line of renderSettings(AGENT_DOMAIN_SETTINGS, result.config)) {
          output.out(`  ${line}`);
        }
        report(result.problems);
      }
    } catch (error) {
      if (!(error instanceof ConfSyntaxError || error instanceof ConfFileError)) throw error;
      errors++;
      output.out(`${file}: error: ${error.message}`);
    }
  }
  output.out(
    `${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}`,
  );
  return errors > 0 ? CHECK_FAILED : 0;
}

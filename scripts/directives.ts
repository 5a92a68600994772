/**
 * Prints the directive reference of README.md from THE settings table (src/config/settings.ts),
 * so the documentation cannot drift: `tests/e2e/readme_test.ts` checks README holds this output.
 * Usage: `deno run scripts/directives.ts` prints the markdown; `--write` puts it into README.md
 * between the `directives:begin` and `directives:end` markers.
 * @module
 */

import { directives, type FileKind } from "../src/config/mod.ts";

const TITLES: Record<FileKind, string> = {
  server: "Server main file (`mode = server`)",
  "server-domain": "Server domain file (one per domain, in `domains`)",
  agent: "Agent main file (`mode = agent`)",
  "agent-domain": "Agent domain file (one per tunnel, in `domains`)",
};

/** The markdown reference of every directive, by file kind. */
export function directiveReference(): string {
  const out: string[] = [];
  for (const kind of ["server", "server-domain", "agent", "agent-domain"] as const) {
    out.push(`#### ${TITLES[kind]}`, "");
    out.push("| directive | type | default | range | takes effect | meaning |");
    out.push("|---|---|---|---|---|---|");
    for (const { key, setting } of directives(kind)) {
      const range = setting.min !== undefined || setting.max !== undefined
        ? `${setting.min ?? ""} – ${setting.max ?? ""}`
        : "";
      const cells = [
        `\`${key}\``,
        setting.type,
        setting.defaultText === "" ? "(empty)" : `\`${setting.defaultText}\``,
        range,
        setting.when,
        setting.doc.replaceAll("|", "\\|"),
      ];
      out.push(`| ${cells.join(" | ")} |`);
    }
    out.push("");
  }
  return out.join("\n").trimEnd() + "\n";
}

/** Marker lines around the generated reference in README.md. */
export const BEGIN_MARKER = "<!-- directives:begin -->";
/** End marker. */
export const END_MARKER = "<!-- directives:end -->";

/** README text with the reference between the markers replaced by `reference`. */
export function withReference(readme: string, reference: string): string {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error("README.md has no directives markers");
  return `${readme.slice(0, begin + BEGIN_MARKER.length)}\n\n${reference}\n${readme.slice(end)}`;
}

if (import.meta.main) {
  if (Deno.args.includes("--write")) {
    const path = new URL("../README.md", import.meta.url);
    const readme = await Deno.readTextFile(path);
    await Deno.writeTextFile(path, withReference(readme, directiveReference()));
  } else {
    console.log(directiveReference());
  }
}

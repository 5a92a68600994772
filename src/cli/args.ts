/**
 * Command-line grammar of groom (CLI-1…CLI-7): `groom <configuration>`, `groom password [<secret>
 * [<salt>]]`, plus our `groom check <configuration>`, `--version`, `--help` and the opt-ins for
 * the configuration macros that run programs or fetch URLs (ODD-22). Pure: argv in, a command out.
 * @module
 */

/** The exact usage line of groom 1.3 (CLI-2); further lines describe our additions. */
export const USAGE_LINE = "usage: groom <configuration> | password [<secret> [<salt>]]";

/** Full usage text printed for `--help` and after a usage error. */
export const USAGE = `${USAGE_LINE}
       groom [--allow-exec] [--allow-fetch] <configuration> [<macro options>…]
       groom check [--allow-exec] [--allow-fetch] <configuration>
       groom --version | --help

  <configuration>  main configuration file; its "mode" selects server or agent
  password         print a SHA-512-crypt ($6$) hash of <secret> (random when omitted)
  check            parse the configuration and every domain file, print the effective
                   settings (secrets masked) and every problem; exit 2 on any error
  --allow-exec     let {{| …}} configuration macros run programs (main file only)
  --allow-fetch    let {{@ …}} configuration macros fetch URLs (main file only)
`;

/** Options shared by the commands that read a configuration. */
export interface ConfigCommandOptions {
  /** Path of the main configuration file, as given. */
  readonly path: string;
  /** `--allow-exec` was given. */
  readonly allowExec: boolean;
  /** `--allow-fetch` was given. */
  readonly allowFetch: boolean;
}

/** What the command line asks for. */
export type Command =
  | { readonly kind: "usage"; readonly message?: string }
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "password"; readonly secret?: string; readonly salt?: string }
  | ({ readonly kind: "check" } & ConfigCommandOptions)
  | ({ readonly kind: "run" } & ConfigCommandOptions);

/**
 * Turns argv (without the program name) into a command. Options before the configuration path
 * are ours; everything after the path is left to the `{{!…}}` macro (CLI-1).
 */
export function parseArgs(argv: readonly string[]): Command {
  const first = argv[0];
  if (first === undefined) return { kind: "usage" };
  if (first === "password") {
    const [, secret, salt] = argv;
    return {
      kind: "password",
      ...(secret !== undefined ? { secret } : {}),
      ...(salt !== undefined ? { salt } : {}),
    };
  }
  if (first === "--help" || first === "-h") return { kind: "help" };
  if (first === "--version" || first === "-V") return { kind: "version" };
  const check = first === "check";
  let allowExec = false;
  let allowFetch = false;
  let index = check ? 1 : 0;
  for (; index < argv.length; index++) {
    const arg = argv[index] ?? "";
    if (arg === "--allow-exec") allowExec = true;
    else if (arg === "--allow-fetch") allowFetch = true;
    else if (arg === "--") {
      index++;
      break;
    } else if (arg.startsWith("-") && arg.length > 1) {
      return { kind: "usage", message: `unknown option ${arg}` };
    } else break;
  }
  const path = argv[index];
  if (path === undefined || path === "") {
    return { kind: "usage", message: "missing <configuration>" };
  }
  return { kind: check ? "check" : "run", path, allowExec, allowFetch };
}

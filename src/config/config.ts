/**
 * cdn.toml: one file configures the edges and the DNS nodes. Parsing is pure (text in, typed config out), so the
 * workers, the Node hosts and the tests share it; a bad file fails with every field and reason at once.
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { z } from "zod";
import { EdgeSchema, RuleSchema } from "./edge-schema.ts";
import { DnsSchema, EdgeNodeSchema, GeoipSchema } from "./dns-schema.ts";
import { AdminSchema } from "./admin-schema.ts";
import { AnycastSchema } from "./anycast-schema.ts";
import { ControlSchema } from "./control-schema.ts";
import { FrontDoorTables } from "./sites-schema.ts";
import { MirrorListSchema, RedirectorSchema } from "./redirector-schema.ts";
import { FunctionsTables } from "./functions-schema.ts";
import { PrivacySchema } from "./privacy-schema.ts";

export const CdnConfigSchema = z
  .object({
    edge: EdgeSchema.optional(),
    rules: z.array(RuleSchema).default([]),
    dns: DnsSchema.optional(),
    geoip: GeoipSchema.prefault({}),
    edges: z.array(EdgeNodeSchema).default([]),
    admin: AdminSchema.prefault({}),
    anycast: AnycastSchema.optional(),
    control: ControlSchema.optional(),
    mirrors: MirrorListSchema,
    redirector: RedirectorSchema.optional(),
    privacy: PrivacySchema.prefault({}),
    ...FrontDoorTables,
    ...FunctionsTables,
  })
  .strict();

export type CdnConfig = z.infer<typeof CdnConfigSchema>;

/** A config file that cannot be used: `problems` name each field and why. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`${source}: invalid CDN config\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Parses and validates cdn.toml text. `source` names the file in error messages. */
export function parseConfig(text: string, source = "cdn.toml"): CdnConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : "";
    throw new ConfigError(source, [`TOML syntax${where}: ${(err as Error).message.split("\n")[0]}`]);
  }
  const result = CdnConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => `${formatPath(issue.path) || "(top level)"}: ${issue.message}`),
    );
  }
  return result.data;
}

/** `rules[2].ttl.200` style, as an operator would look for it in the file. */
function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

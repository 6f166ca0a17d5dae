/** The embedded default cdn.toml, bundled as text (wrangler `[[rules]]`, esbuild's text loader, the vitest plugin). */
import text from "../../cdn.toml";

export const embeddedConfigText: string = text;

/** npm run demo-origin -- [--port 8080]: the demo site alone (for `npm run dev`, which runs only the edge worker). */
import { parseArgs } from "node:util";
import { demoOrigin } from "../src/demo-origin/origin.ts";
import { serveFetch } from "../src/node/serve-fetch.ts";

const { values } = parseArgs({ options: { port: { type: "string", default: "8080" }, host: { type: "string", default: "127.0.0.1" } } });
const served = await serveFetch(demoOrigin, { port: Number(values.port), host: values.host });
console.log(`demo origin ready: ${served.url}`);

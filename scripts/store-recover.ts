/**
 * node scripts/store-recover.ts RUN_DIR — recovers an edge box's store directory before its workerd starts again
 * (the shell loop of a one-process box runs it; see src/node/workerd-host.ts).
 */
import { recoverStore } from "../src/node/workerd-host.ts";

const runDir = process.argv[2];
if (!runDir) {
  console.error("usage: node scripts/store-recover.ts RUN_DIR");
  process.exit(2);
}
const r = await recoverStore(runDir);
console.error(`parrot: store recovered: ${r.entries} entries, ${r.removed} files removed`);

/**
 * npm run world: builds the world in network namespaces (test/world/world.ts; root or CAP_NET_ADMIN needed), measures
 * the CDN's promises across its long links (test/world/measure.ts), prints the report and tears the world down.
 * Ctrl-C tears it down too.
 */
import { buildWorld, REGIONS, worldUnavailable, type World } from "../test/world/world.ts";
import { measureFailover, measureHealthUnderLoss, measureNearest, measurePartition, measurePurge, report, settle } from "../test/world/measure.ts";

const why = await worldUnavailable();
if (why) {
  console.error(`world: cannot build the world here: ${why}`);
  process.exit(2);
}
let world: World | undefined;
const stop = async (code: number) => {
  await world?.destroy();
  process.exit(code);
};
process.once("SIGINT", () => void stop(130));
process.once("SIGTERM", () => void stop(143));
try {
  const t0 = performance.now();
  world = await buildWorld({ log: (s) => console.log(`${s} (${Math.round((performance.now() - t0) / 1000)} s)`) });
  await settle(world);
  const nearest = await measureNearest();
  console.log(report({ nearest }));
  const purge = await measurePurge(REGIONS[0]!, 10);
  console.log(report({ purge }));
  const loss = await measureHealthUnderLoss(world, 0.1, 20);
  console.log(report({ loss }));
  const partition = await measurePartition(world, REGIONS[2]!, 10);
  console.log(report({ partition }));
  await settle(world);
  // Two regions, so neither waits for the other's edge to come back.
  const failover = [await measureFailover(world, REGIONS[2]!, "cut"), await measureFailover(world, REGIONS[0]!, "killed")];
  console.log(report({ failover }));
  await stop(0);
} catch (err) {
  console.error(`world: ${(err as Error).stack ?? err}`);
  await stop(1);
}

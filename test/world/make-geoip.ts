/**
 * node test/world/make-geoip.ts: writes the world's GeoIP database (test/fixtures/world-geoip.mmdb) from REGIONS with
 * MaxMind's writer (test/world/geoip.pl; Debian libmaxmind-db-writer-perl). Run it after changing REGIONS.
 */
import { GEOIP_FIXTURE, writeWorldGeoip } from "./world.ts";

await writeWorldGeoip(GEOIP_FIXTURE);
console.log(`wrote ${GEOIP_FIXTURE}`);

/** GeoIP files bundled as wrangler Data modules (see worker-embedded.ts): the module's default export is the bytes. */
declare module "*.mmdb" {
  const bytes: ArrayBuffer;
  export default bytes;
}
declare module "*.csv" {
  const bytes: ArrayBuffer;
  export default bytes;
}

-- wrk script of scripts/bench/mix.sh: each request drawn at random (seeded, so every server gets the same sequence)
-- from the path lists in $MIX_DIR (written by mix.sh): the site by Zipf rank (site.txt, most popular first), the apt
-- pool uniformly (apt.txt), a Range segment of $SEGMENT bytes at a random offset of an ISO (iso.txt); $MISS_PCT % of
-- requests are new site objects (unique paths, tagged $TAG: a MISS on any server). $MIX: site,apt,iso percentages.
-- done() prints one MIXRESULT line for mix.sh.
local dir = os.getenv("MIX_DIR")
local function lines(name)
  local t = {}
  for l in io.lines(dir .. "/" .. name) do t[#t + 1] = l end
  return t
end
local site, apt, iso = lines("site.txt"), lines("apt.txt"), lines("iso.txt")
local segment = tonumber(os.getenv("SEGMENT"))
local missPct = tonumber(os.getenv("MISS_PCT")) / 100
local tag = os.getenv("TAG")
local pSite, pApt = string.match(os.getenv("MIX"), "^(%d+),(%d+),%d+$")
pSite, pApt = tonumber(pSite) / 100, tonumber(pApt) / 100
local isoSize = {}
for i, p in ipairs(iso) do isoSize[i] = tonumber(string.match(p, "-(%d+)%.iso$")) end

-- Zipf over the site's ranks: cdf[r] = sum of k^-s for k <= r, over the whole sum.
local s = tonumber(os.getenv("ZIPF_S"))
local cdf, total = {}, 0
for r = 1, #site do total = total + r ^ -s; cdf[r] = total end
for r = 1, #site do cdf[r] = cdf[r] / total end
local function zipf()
  local u, lo, hi = math.random(), 1, #site
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return site[lo]
end

local n = 0
init = function() math.randomseed(tonumber(os.getenv("SEED")) or 1) end
request = function()
  n = n + 1
  local u = math.random()
  if u < missPct then
    return wrk.format("GET", "/site/new/" .. tag .. "-" .. n .. "-" .. math.random(4096, 65536) .. ".html")
  end
  u = math.random()
  if u < pSite then return wrk.format("GET", zipf()) end
  if u < pSite + pApt then return wrk.format("GET", apt[math.random(#apt)]) end
  local i = math.random(#iso)
  local a = math.random(0, isoSize[i] - segment)
  return wrk.format("GET", iso[i], { Range = "bytes=" .. a .. "-" .. (a + segment - 1) })
end

done = function(summary, latency)
  local e = summary.errors
  io.write(string.format("MIXRESULT requests=%d bytes=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

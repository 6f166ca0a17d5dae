/**
 * Conformance checks for a shared HTTP cache, modelled on the public HTTP caching test suite (cache-tests.fyi,
 * github.com/http-tests/cache-tests): the same ids, groups, request sequences and required/optional/check kinds,
 * written here in our own form. Browser-only tests of that suite are left out; `cdn` and `auth` are extra groups
 * that the suite keeps outside its default list.
 *
 * A check is a sequence of steps. Each step is one client request to the edge plus the origin's scripted answer
 * should the request reach it, and what the client then expects.
 */

export type Kind = "required" | "optional" | "check";
export type ExpectType = "cached" | "not_cached" | "etag_validated" | "lm_validated";

/** [name, value, passThrough?]: a number in a date field is seconds from the origin's now; passThrough=false means
 * the cache may change it (otherwise the client expects to receive it unchanged when the origin answered). */
export type HeaderSpec = [string, string | number] | [string, string | number, boolean];
/** A header the client expects: present (name), equal ([name, value]) or numerically greater ([name, ">", n]). */
export type ExpectedHeader = string | [string, string | number] | [string, ">", number];

export interface Step {
  /** Failures in this step mean the check could not be set up (not counted as a pass). */
  setup?: boolean;
  /** Only these expectations are setup ones. */
  setupFor?: ("type" | "status" | "headers" | "text" | "reqHeaders")[];
  /** Wait 3 s after this step. */
  pause?: boolean;
  method?: string;
  reqBody?: string;
  reqHeaders?: [string, string][];
  file?: string;
  query?: string;
  magicLocations?: boolean;
  status?: number;
  resHeaders?: HeaderSpec[];
  resBody?: string;
  /** Seconds the origin waits before answering. */
  originDelay?: number;
  expect?: ExpectType;
  expectStatus?: number | null;
  expectText?: string | null;
  expectHeaders?: ExpectedHeader[];
  expectMissing?: string[];
  expectReqHeaders?: (string | [string, string])[];
  checkBody?: boolean;
}

export interface Check {
  id: string;
  group: string;
  kind: Kind;
  desc: string;
  deps?: string[];
  steps: Step[];
  /** Groups outside the suite's default list (counted separately). */
  extra?: boolean;
}

/** A short deterministic value for a name (the suite uses generated content for header values and bodies). */
export function content(key: string): string {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  let s = "";
  for (let i = 0; i < 15; i++) {
    s += String.fromCharCode(65 + (h % 26));
    h = Math.imul(h ^ (i + 7), 2654435761) >>> 0;
  }
  return s;
}

const checks: Check[] = [];
let group = "";
const add = (c: Omit<Check, "group">) => checks.push({ group, ...c });

/** Store then look again: the common two-request shape. */
function pair(
  id: string,
  kind: Kind,
  desc: string,
  deps: string[] | undefined,
  resHeaders: HeaderSpec[],
  expect: ExpectType,
  opts: { pause?: boolean; first?: Partial<Step>; second?: Partial<Step> } = {},
) {
  add({
    id,
    kind,
    desc,
    deps,
    steps: [
      { resHeaders, setup: true, pause: opts.pause ?? true, ...opts.first },
      { expect, ...opts.second },
    ],
  });
}

// Templates (the suite merges arrays by concatenation).
const FRESH: HeaderSpec[] = [
  ["Cache-Control", "max-age=100000"],
  ["Date", 0],
];
const STALE: HeaderSpec[] = [
  ["Expires", -5000],
  ["Last-Modified", -100000],
  ["Date", 0],
];
const fresh = (extra: Partial<Step> = {}): Step => ({
  setup: true,
  pause: true,
  ...extra,
  resHeaders: [...FRESH, ...(extra.resHeaders ?? [])],
});

// ---------------------------------------------------------------- freshness (Cache-Control)
group = "freshness";
pair("freshness-none", "check", "no freshness, no validator: not reused", undefined, [], "not_cached", {
  first: { resHeaders: undefined },
});
pair("freshness-max-age", "optional", "reuse with positive max-age", ["freshness-none"], [["Cache-Control", "max-age=3600"]], "cached");
add({
  id: "freshness-max-age-stale",
  kind: "required",
  desc: "max-age response must not be reused once stale",
  deps: ["freshness-max-age"],
  steps: [
    {
      resHeaders: [
        ["Cache-Control", "max-age=2"],
        ["Date", 0],
        ["Template-A", "1"],
      ],
      setup: true,
      pause: true,
    },
    { expect: "not_cached" },
  ],
});
pair("freshness-max-age-0", "required", "max-age=0 must not be reused", ["freshness-none"], [["Cache-Control", "max-age=0"]], "not_cached");
for (const [id, v] of [
  ["freshness-max-age-max-minus-1", "2147483647"],
  ["freshness-max-age-max", "2147483648"],
  ["freshness-max-age-max-plus-1", "2147483649"],
  ["freshness-max-age-max-plus", "99999999999"],
] as const)
  pair(id, "optional", `reuse with max-age=${v}`, ["freshness-none"], [["Cache-Control", `max-age=${v}`]], "cached");
pair("freshness-max-age-age", "required", "Age above max-age: not reused", ["freshness-max-age"], [
  ["Date", 0],
  ["Cache-Control", "max-age=3600"],
  ["Age", "7200"],
], "not_cached");
pair("freshness-max-age-date", "check", "apparent age from an old Date is used", ["freshness-max-age"], [
  ["Date", -7200],
  ["Cache-Control", "max-age=3600"],
], "not_cached");
pair("freshness-max-age-expires", "optional", "max-age beats a past Expires", ["freshness-max-age"], [
  ["Cache-Control", "max-age=3600"],
  ["Expires", -7200],
  ["Date", 0],
], "cached");
pair("freshness-max-age-expires-invalid", "optional", "max-age beats an invalid Expires", ["freshness-max-age"], [
  ["Cache-Control", "max-age=3600"],
  ["Expires", "0", false],
  ["Date", 0],
], "cached");
pair("freshness-max-age-0-expires", "required", "max-age=0 beats a future Expires", ["freshness-none"], [
  ["Expires", 3600],
  ["Cache-Control", "max-age=0"],
  ["Date", 0],
], "not_cached");
pair("freshness-max-age-extension", "optional", "unknown directive next to max-age", ["freshness-max-age"], [["Cache-Control", "foobar, max-age=3600"]], "cached");
pair("freshness-max-age-case-insenstive", "optional", "MaX-aGe is max-age", ["freshness-max-age"], [["Cache-Control", "MaX-aGe=3600"]], "cached");
pair("freshness-max-age-negative", "required", "negative max-age: not reused", ["freshness-none"], [["Cache-Control", "max-age=-3600"]], "not_cached");
pair("freshness-s-maxage-shared", "required", "shared cache reuses with s-maxage", ["freshness-none"], [["Cache-Control", "s-maxage=3600"]], "cached");
pair("freshness-max-age-s-maxage-shared-longer", "required", "short s-maxage beats long max-age", ["freshness-s-maxage-shared"], [["Cache-Control", "max-age=3600, s-maxage=1"]], "not_cached");
pair("freshness-max-age-s-maxage-shared-longer-reversed", "required", "short s-maxage beats long max-age (reversed)", ["freshness-s-maxage-shared"], [["Cache-Control", "s-maxage=1, max-age=3600"]], "not_cached");
pair("freshness-max-age-s-maxage-shared-longer-multiple", "required", "short s-maxage beats long max-age (two lines)", ["freshness-s-maxage-shared"], [
  ["Cache-Control", "max-age=3600"],
  ["Cache-Control", "s-maxage=1"],
], "not_cached");
pair("freshness-max-age-s-maxage-shared-shorter", "optional", "long s-maxage beats short max-age", ["freshness-s-maxage-shared"], [["Cache-Control", "max-age=1, s-maxage=3600"]], "cached");
pair("freshness-max-age-s-maxage-shared-shorter-expires", "optional", "long s-maxage beats max-age=0 and past Expires", ["freshness-s-maxage-shared"], [
  ["Expires", -10],
  ["Cache-Control", "max-age=0, s-maxage=3600"],
], "cached");

// ---------------------------------------------------------------- cc-parse
group = "cc-parse";
const ccParse: [string, Kind, string[], string[], ExpectType][] = [
  ["freshness-max-age-two-fresh-stale-sameline", "check", ["freshness-none"], ["max-age=1800, max-age=1"], "cached"],
  ["freshness-max-age-two-fresh-stale-sepline", "check", ["freshness-none"], ["max-age=1800", "max-age=1"], "cached"],
  ["freshness-max-age-two-stale-fresh-sameline", "check", ["freshness-none"], ["max-age=1, max-age=1800"], "cached"],
  ["freshness-max-age-two-stale-fresh-sepline", "check", ["freshness-none"], ["max-age=1", "max-age=1800"], "cached"],
  ["freshness-max-age-quoted", "check", ["freshness-max-age"], ['max-age="3600"'], "cached"],
  ["freshness-max-age-ignore-quoted", "required", ["freshness-max-age"], ['extension="max-age=3600", max-age=1'], "not_cached"],
  ["freshness-max-age-ignore-quoted-rev", "required", ["freshness-max-age"], ['max-age=1, extension="max-age=3600"'], "not_cached"],
  ["freshness-max-age-space-before-equals", "check", ["freshness-none"], ["max-age =3600"], "not_cached"],
  ["freshness-max-age-space-after-equals", "check", ["freshness-none"], ["max-age= 3600"], "not_cached"],
  ["freshness-max-age-leading-zero", "required", ["freshness-none"], ["max-age=003600"], "cached"],
  ["freshness-max-age-single-quoted", "required", ["freshness-none"], ["max-age='3600'"], "not_cached"],
  ["freshness-max-age-decimal-zero", "check", ["freshness-none"], ["max-age=3600.0"], "cached"],
  ["freshness-max-age-decimal-five", "check", ["freshness-none"], ["max-age=3600.5"], "cached"],
  ["freshness-max-age-a100", "check", ["freshness-none"], ["max-age=a3600"], "cached"],
  ["freshness-max-age-100a", "check", ["freshness-none"], ["max-age=3600a"], "cached"],
];
for (const [id, kind, deps, lines, expect] of ccParse)
  pair(id, kind, `Cache-Control: ${lines.join(" | ")}`, deps, lines.map((l): HeaderSpec => ["Cache-Control", l, false]), expect);

// ---------------------------------------------------------------- age-parse
group = "age-parse";
const ageParse: [string, string[]][] = [
  ["age-parse-nonnumeric", ["abc"]],
  ["age-parse-negative", ["-7200"]],
  ["age-parse-float", ["7200.0"]],
  ["age-parse-suffix", ["7200,0"]],
  ["age-parse-suffix-twoline", ["7200", "0"]],
  ["age-parse-prefix", ["0,7200"]],
  ["age-parse-prefix-twoline", ["0", "7200"]],
  ["age-parse-dup-0", ["0, 0"]],
  ["age-parse-dup-0-twoline", ["0", "0"]],
  ["age-parse-dup-old", ["7200, 7200"]],
  ["age-parse-dup-old-twoline", ["7200", "7200"]],
];
for (const [id, ages] of ageParse)
  pair(id, "check", `Age: ${ages.join(" | ")} with max-age=3600`, ["freshness-max-age-age"], [
    ["Date", 0],
    ["Cache-Control", "max-age=3600"],
    ...ages.map((a): HeaderSpec => ["Age", a]),
  ], "cached");

// ---------------------------------------------------------------- expires
group = "expires";
pair("freshness-expires-future", "optional", "reuse with a future Expires", ["freshness-none"], [
  ["Expires", 30 * 24 * 3600],
  ["Date", 0],
], "cached");
pair("freshness-expires-past", "required", "past Expires: not reused", ["freshness-expires-future"], [
  ["Expires", -30 * 24 * 3600],
  ["Date", 0],
], "not_cached");
pair("freshness-expires-present", "required", "Expires equal to Date: not reused", ["freshness-none"], [
  ["Expires", 0],
  ["Date", 0],
], "not_cached", { pause: false });
pair("freshness-expires-old-date", "required", "Expires before Date: not reused", ["freshness-expires-future"], [
  ["Expires", 300],
  ["Date", 400],
], "not_cached");
pair("freshness-expires-invalid", "required", "Expires: 0 is invalid: not reused", ["freshness-expires-future"], [
  ["Expires", "0", false],
  ["Date", 0],
], "not_cached");
pair("freshness-expires-invalid-date", "optional", "reuse with Expires even if Date is invalid", ["freshness-expires-future"], [
  ["Date", "foo", false],
  ["Expires", 10],
], "cached", { pause: false });
pair("freshness-expires-age-slow-date", "required", "Age above Expires-Date (slow Date): not reused", ["freshness-expires-future"], [
  ["Date", -10],
  ["Expires", 10],
  ["Age", "25"],
], "not_cached", { pause: false });
pair("freshness-expires-age-fast-date", "required", "Age above Expires-Date (fast Date): not reused", ["freshness-expires-future"], [
  ["Date", 10],
  ["Expires", 20],
  ["Age", "15"],
], "not_cached", { pause: false });

// ---------------------------------------------------------------- expires-parse
group = "expires-parse";
const expiresParse: [string, Kind, string[], ExpectType, boolean][] = [
  ["freshness-expires-32bit", "optional", ["Tue, 19 Jan 2038 14:14:08 GMT"], "cached", true],
  ["freshness-expires-far-future", "optional", ["Sun, 21 Nov 2286 04:46:39 GMT"], "cached", true],
  ["freshness-expires-rfc850", "optional", ["Thursday, 18-Aug-50 02:01:18 GMT"], "cached", true],
  ["freshness-expires-ansi-c", "optional", ["Thu Aug  8 02:01:18 2050"], "cached", true],
  ["freshness-expires-wrong-case-weekday", "optional", ["THU, 18 Aug 2050 02:01:18 GMT"], "cached", true],
  ["freshness-expires-wrong-case-month", "optional", ["Thu, 18 AUG 2050 02:01:18 GMT"], "cached", true],
  ["freshness-expires-wrong-case-tz", "optional", ["Thu, 18 Aug 2050 02:01:18 gMT"], "cached", true],
  ["freshness-expires-invalid-utc", "required", ["Thu, 18 Aug 2050 02:01:18 UTC"], "not_cached", true],
  ["freshness-expires-invalid-aest", "required", ["Thu, 18 Aug 2050 02:01:18 AEST"], "not_cached", true],
  ["freshness-expires-invalid-2-digit-year", "required", ["Thu, 18 Aug 50 02:01:18 GMT"], "not_cached", true],
  ["freshness-expires-invalid-no-comma", "required", ["Thu 18 Aug 2050 02:01:18 GMT"], "not_cached", true],
  ["freshness-expires-invalid-multiple-spaces", "required", ["Thu, 18  Aug  2050 02:01:18 GMT"], "not_cached", false],
  ["freshness-expires-invalid-date-dashes", "required", ["Thu, 18-Aug-2050 02:01:18 GMT"], "not_cached", false],
  ["freshness-expires-invalid-time-periods", "required", ["Thu, 18 Aug 2050 02.01.18 GMT"], "not_cached", false],
  ["freshness-expires-invalid-1-digit-hour", "required", ["Thu, 18 Aug 2050 2:01:18 GMT"], "not_cached", false],
  ["freshness-expires-invalid-multiple-lines", "required", ["Thu, 18 Aug 2050 2:01:18 GMT", "Thu, 18 Aug 2050 2:01:19 GMT"], "not_cached", false],
];
for (const [id, kind, values, expect, pause] of expiresParse)
  pair(id, kind, `Expires: ${values.join(" | ")}`, ["freshness-expires-future"], [
    ...values.map((v): HeaderSpec => ["Expires", v, false]),
    ["Date", 0],
  ], expect, { pause });

// ---------------------------------------------------------------- cc-response
group = "cc-response";
pair("cc-resp-private-shared", "required", "shared cache must not store private", undefined, [["Cache-Control", "private, max-age=3600"]], "not_cached", { pause: false });
pair("cc-resp-no-store", "required", "must not store no-store", undefined, [["Cache-Control", "no-store"]], "not_cached", { pause: false });
pair("cc-resp-no-store-case-insensitive", "required", "must not store No-StOrE", ["cc-resp-no-store"], [["Cache-Control", "No-StOrE"]], "not_cached", { pause: false });
pair("cc-resp-no-store-fresh", "required", "no-store wins over max-age and Expires", ["cc-resp-no-store"], [
  ["Cache-Control", "max-age=10000, no-store"],
  ["Expires", 10000],
  ["Date", 0],
], "not_cached", { pause: false });
for (const [id, cc] of [
  ["cc-resp-no-store-old-new", "no-store"],
  ["cc-resp-no-store-old-max-age", "no-store, max-age=0"],
] as const)
  add({
    id,
    kind: "required",
    desc: `older stored response used after a newer one came with ${cc}`,
    deps: ["cc-resp-no-store"],
    steps: [
      {
        resHeaders: [
          ["Cache-Control", "max-age=10000"],
          ["Expires", 10000],
          ["Date", 0],
          ["A", "1"],
        ],
        setup: true,
        pause: true,
      },
      {
        resHeaders: [
          ["Cache-Control", cc],
          ["Date", 0],
          ["A", "2"],
        ],
        setup: true,
        pause: true,
      },
      { expect: "cached", expectHeaders: [["a", "1"]] },
    ],
  });
pair("cc-resp-no-cache", "required", "no-cache response not reused without validation", undefined, [
  ["Cache-Control", "max-age=10000, no-cache"],
  ["Expires", 10000],
  ["Date", 0],
], "not_cached", { pause: false });
pair("cc-resp-no-cache-case-insensitive", "required", "No-CaChE response not reused without validation", ["cc-resp-no-cache"], [
  ["Cache-Control", "max-age=10000, No-CaChE"],
  ["Expires", 10000],
  ["Date", 0],
], "not_cached", { pause: false });
pair("cc-resp-no-cache-revalidate", "optional", "no-cache response stored and revalidated", ["cc-resp-no-cache"], [
  ["Cache-Control", "no-cache"],
  ["ETag", '"abcd"'],
], "etag_validated", { pause: false });
pair("cc-resp-no-cache-revalidate-fresh", "optional", "no-cache response stored and revalidated, even with max-age", ["cc-resp-no-cache"], [
  ["Cache-Control", "max-age=10000, no-cache"],
  ["Expires", 10000],
  ["Date", 0],
  ["ETag", '"abcd"'],
], "etag_validated", { pause: false });
pair("headers-omit-headers-listed-in-Cache-Control-no-cache-single", "check", 'no-cache="a" keeps a out of reuse', ["cc-resp-no-cache-revalidate"], [
  ["Cache-Control", 'no-cache="a"'],
  ["a", "1"],
  ["b", "2"],
  ["Cache-Control", "max-age=3600"],
  ["Date", 0],
], "cached", { second: { expectHeaders: [["b", "2"]], expectMissing: ["a"], setupFor: ["type"] } });
pair("headers-omit-headers-listed-in-Cache-Control-no-cache", "check", 'no-cache="a, b" keeps a and b out of reuse', ["cc-resp-no-cache-revalidate"], [
  ["Cache-Control", 'no-cache="a, b"'],
  ["a", "1"],
  ["b", "2"],
  ["c", "3"],
  ["Cache-Control", "max-age=3600"],
  ["Date", 0],
], "cached", { second: { expectHeaders: [["c", "3"]], expectMissing: ["a", "b"], setupFor: ["type"] } });
pair("cc-resp-must-revalidate-fresh", "optional", "fresh must-revalidate response reused", ["freshness-none"], [
  ["Cache-Control", "max-age=10000, must-revalidate"],
  ["ETag", '"abcd"'],
], "cached", { pause: false });
add({
  id: "cc-resp-must-revalidate-stale",
  kind: "required",
  desc: "stale must-revalidate response must be revalidated",
  deps: ["freshness-none"],
  steps: [
    { resHeaders: [["Cache-Control", "max-age=2, must-revalidate"], ["ETag", '"abcd"']], setup: true },
    { expect: "cached", setup: true, pause: true, resHeaders: [["Cache-Control", "max-age=2, must-revalidate"], ["ETag", '"abcd"']] },
    { expect: "etag_validated" },
  ],
});

// ---------------------------------------------------------------- heuristic
group = "heuristic";
const heuristic: [boolean, number, string | null, HeaderSpec?][] = [
  [true, 200, ""],
  [false, 201, ""],
  [false, 202, ""],
  [true, 203, ""],
  [true, 204, null],
  [false, 403, ""],
  [true, 404, ""],
  [true, 405, ""],
  [true, 410, ""],
  [true, 414, ""],
  [true, 501, ""],
  [false, 502, ""],
  [false, 503, ""],
  [false, 504, ""],
  [false, 599, ""],
  [true, 599, "", ["Cache-Control", "public"]],
];
for (const [reuse, code, body, extra] of heuristic) {
  const resBody = body === null ? undefined : content(`status-${code}`);
  const expect: ExpectType = reuse ? "cached" : "not_cached";
  add({
    id: `heuristic-${code}-${expect}`,
    kind: reuse ? "optional" : "required",
    desc: `${code} with Last-Modified 1 day old${extra ? " and CC: public" : ""}: ${reuse ? "reuse heuristically" : "must not reuse"}`,
    steps: [
      {
        status: code,
        resHeaders: [["Last-Modified", -86400], ["Date", 0], ...(extra ? [extra] : [])],
        resBody,
        setup: true,
      },
      { expect, status: code, resBody },
    ],
  });
}
for (const delta of [5, 10, 30, 60, 300, 600, 1200, 1800, 3600, 3600 * 12, 3600 * 24])
  pair(`heuristic-delta-${delta}`, "check", `Last-Modified ${delta}s ago heuristically fresh (after 3 s)`, undefined, [
    ["Last-Modified", -delta],
    ["Date", 0],
  ], "cached");

// ---------------------------------------------------------------- status
group = "status";
for (const code of [200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599]) {
  const resBody = code === 204 ? undefined : content(`status-${code}`);
  add({
    id: `status-${code}-fresh`,
    kind: "optional",
    desc: `fresh ${code} with explicit freshness is reused`,
    deps: ["freshness-max-age"],
    steps: [fresh({ status: code, resBody }), { expect: "cached", status: code, resBody }],
  });
  add({
    id: `status-${code}-stale`,
    kind: "required",
    desc: `stale ${code} with explicit freshness must not be reused`,
    deps: [`status-${code}-fresh`],
    steps: [
      { status: code, resBody, setup: true, pause: true, resHeaders: [...STALE] },
      { expect: "not_cached", resBody },
    ],
  });
}
add({
  id: "status-599-must-understand",
  kind: "required",
  desc: "unknown status with no-store, must-understand must not be reused",
  deps: ["status-599-fresh"],
  steps: [
    { status: 599, resHeaders: [["Cache-Control", "max-age=3600, no-store, must-understand"]], setup: true },
    { expect: "not_cached" },
  ],
});
add({
  id: "status-200-must-understand",
  kind: "optional",
  desc: "known status with no-store, must-understand is reused",
  deps: ["status-200-fresh", "cc-resp-no-store-fresh"],
  steps: [
    { status: 200, resHeaders: [["Cache-Control", "max-age=3600, no-store, must-understand"]], setup: true },
    { expect: "cached" },
  ],
});

// ---------------------------------------------------------------- cc-request (all informational)
group = "cc-request";
const FRESH_TEMPLATE_OLD: HeaderSpec[] = [
  ["Cache-Control", "max-age=100000"],
  ["Date", 0],
];
const ccreq = (id: string, desc: string, res: HeaderSpec[], req: string, expect: ExpectType, pause = false) =>
  add({
    id,
    kind: "check",
    desc,
    steps: [
      { resHeaders: res, setup: true, pause },
      { reqHeaders: [["Cache-Control", req]], expect },
    ],
  });
ccreq("ccreq-ma0", "request max-age=0 with a fresh response", FRESH_TEMPLATE_OLD, "max-age=0", "not_cached", true);
ccreq("ccreq-ma1", "request max-age=1 with a 3 s old response", FRESH_TEMPLATE_OLD, "max-age=1", "not_cached", true);
ccreq("ccreq-magreaterage", "request max-age=600, response Age 1800", [["Cache-Control", "max-age=3600"], ["Age", "1800"]], "max-age=600", "not_cached");
ccreq("ccreq-max-stale", "request max-stale=1000 on a stale response", [["Cache-Control", "max-age=1"]], "max-stale=1000", "cached", true);
ccreq("ccreq-max-stale-age", "request max-stale=1000 on a stale Age'd response", [["Cache-Control", "max-age=1500"], ["Age", "2000"]], "max-stale=1000", "cached");
ccreq("ccreq-min-fresh", "request min-fresh=2000 on max-age=1500", [["Cache-Control", "max-age=1500"]], "min-fresh=2000", "not_cached");
ccreq("ccreq-min-fresh-age", "request min-fresh=1000 on max-age=1500 with Age 1000", [["Cache-Control", "max-age=1500"], ["Age", "1000"]], "min-fresh=1000", "not_cached");
ccreq("ccreq-no-cache", "request no-cache with a fresh response", [["Cache-Control", "max-age=3600"]], "no-cache", "not_cached");
ccreq("ccreq-no-cache-lm", "request no-cache validates with Last-Modified", [["Cache-Control", "max-age=3600"], ["Last-Modified", -10000], ["Date", 0]], "no-cache", "lm_validated");
ccreq("ccreq-no-cache-etag", "request no-cache validates with ETag", [["Cache-Control", "max-age=3600"], ["ETag", content("abc")]], "no-cache", "etag_validated");
ccreq("ccreq-no-store", "request no-store with a fresh response", [["Cache-Control", "max-age=3600"]], "no-store", "not_cached");
add({
  id: "ccreq-oic",
  kind: "check",
  desc: "request only-if-cached with nothing stored gives 504",
  steps: [{ reqHeaders: [["Cache-Control", "only-if-cached"]], expectStatus: 504, expectText: null }],
});

// ---------------------------------------------------------------- pragma (all informational)
group = "pragma";
add({ id: "pragma-request-no-cache", kind: "check", desc: "stored fresh response used despite request Pragma: no-cache", steps: [{ resHeaders: [["Cache-Control", "max-age=3600"]], setup: true }, { reqHeaders: [["Pragma", "no-cache"]], expect: "cached" }] });
add({ id: "pragma-request-extension", kind: "check", desc: "request Pragma extension ignored", steps: [{ resHeaders: [["Cache-Control", "max-age=3600"]], setup: true }, { reqHeaders: [["Pragma", "unrecognised-extension"]], expect: "cached" }] });
pair("pragma-response-no-cache", "check", "response Pragma: no-cache ignored when max-age present", undefined, [["Cache-Control", "max-age=3600"], ["Pragma", "no-cache"]], "cached", { pause: false });
pair("pragma-response-no-cache-heuristic", "check", "response Pragma: no-cache with heuristic freshness", ["heuristic-200-cached"], [["Date", 0], ["Last-Modified", -10000], ["Pragma", "no-cache"]], "cached", { pause: false });
pair("pragma-response-extension", "check", "response Pragma extension ignored", undefined, [["Cache-Control", "max-age=3600"], ["Pragma", "unrecognised-extension"]], "cached", { pause: false });

// ---------------------------------------------------------------- vary
group = "vary";
const VARY_RES = (vary: string, passThrough = true): HeaderSpec[] => [
  ["Cache-Control", "max-age=5000"],
  ["Last-Modified", -3000],
  ["Date", 0],
  passThrough ? ["Vary", vary] : ["Vary", vary, false],
];
const varyCheck = (id: string, kind: Kind, desc: string, deps: string[] | undefined, first: [string, string][], vary: string, second: [string, string][], expect: ExpectType, passThrough = true, extraFirst: HeaderSpec[] = []) =>
  add({
    id,
    kind,
    desc,
    deps,
    steps: [
      { reqHeaders: first, resHeaders: [...VARY_RES(vary, passThrough), ...extraFirst], setup: true },
      { reqHeaders: second, expect },
    ],
  });
varyCheck("vary-match", "optional", "Vary response reused when the request matches", ["freshness-max-age"], [["Foo", "1"]], "Foo", [["Foo", "1"]], "cached");
varyCheck("vary-no-match", "required", "Vary response not reused when the request differs", ["vary-match"], [["Foo", "1"]], "Foo", [["Foo", "2"]], "not_cached");
varyCheck("vary-omit-stored", "required", "Vary response not reused when the stored request lacked the header", ["vary-match"], [], "Foo", [["Foo", "1"]], "not_cached");
varyCheck("vary-omit", "required", "Vary response not reused when the new request lacks the header", ["vary-match"], [["Foo", "1"]], "Foo", [], "not_cached");
add({
  id: "vary-invalidate",
  kind: "optional",
  desc: "two variants stored side by side",
  deps: ["vary-match"],
  steps: [
    { reqHeaders: [["Foo", "1"]], resHeaders: VARY_RES("Foo"), resBody: content("foo_1"), setup: true },
    { reqHeaders: [["Foo", "2"]], resHeaders: VARY_RES("Foo"), resBody: content("foo_2"), expect: "not_cached", setup: true },
    { reqHeaders: [["Foo", "1"]], resBody: content("foo_1"), expect: "cached" },
  ],
});
varyCheck("vary-cache-key", "optional", "headers not named by Vary stay out of the key", ["vary-match"], [["Foo", "1"], ["Other", "2"]], "Foo", [["Foo", "1"], ["Other", "3"]], "cached");
varyCheck("vary-2-match", "optional", "two-field Vary reused on match", ["vary-match"], [["Foo", "1"], ["Bar", "abc"]], "Foo, Bar", [["Foo", "1"], ["Bar", "abc"]], "cached", false);
varyCheck("vary-2-no-match", "required", "two-field Vary not reused on mismatch", ["vary-2-match"], [["Foo", "1"], ["Bar", "abc"]], "Foo, Bar", [["Foo", "2"], ["Bar", "abc"]], "not_cached", false);
varyCheck("vary-2-match-omit", "required", "two-field Vary not reused when the request omits them", ["vary-2-match"], [["Foo", "1"], ["Bar", "abc"]], "Foo, Bar", [], "not_cached", false);
const V3: [string, string][] = [["Foo", "1"], ["Bar", "abc"], ["Baz", "789"]];
varyCheck("vary-3-match", "optional", "three-field Vary reused on match", ["vary-2-match"], V3, "Foo, Bar, Baz", V3, "cached", false);
varyCheck("vary-3-no-match", "required", "three-field Vary not reused on mismatch", ["vary-3-match"], V3, "Foo, Bar, Baz", [["Foo", "2"], ["Bar", "abc"], ["Baz", "789"]], "not_cached", false);
varyCheck("vary-3-order", "required", "three-field Vary mismatch regardless of order", ["vary-3-match"], V3, "Foo, Bar, Baz", [["Foo", "1"], ["Baz", "789"], ["Bar", "abcde"]], "not_cached", false);
varyCheck("vary-3-omit", "optional", "three-field Vary reused when both requests omit one field", ["vary-3-match"], [["Foo", "1"], ["Baz", "789"]], "Foo, Bar, Baz", [["Foo", "1"], ["Baz", "789"]], "cached", false);
varyCheck("vary-star", "required", "Vary: * never reused", undefined, [["Foo", "1"], ["Baz", "789"]], "*", [["Foo", "1"], ["Baz", "789"]], "not_cached");
varyCheck("vary-normalise-combine", "optional", "Foo: 1, 2 matches two Foo lines", ["vary-match"], [["Foo", "1, 2"]], "Foo", [["Foo", "1"], ["Foo", "2"]], "cached");
varyCheck("vary-normalise-lang-order", "optional", "Accept-Language order ignored", ["vary-match"], [["Accept-Language", "en, de"]], "Accept-Language", [["Accept-Language", "de, en"]], "cached");
varyCheck("vary-normalise-lang-case", "optional", "Accept-Language case ignored", ["vary-match"], [["Accept-Language", "en, de"]], "Accept-Language", [["Accept-Language", "eN, De"]], "cached");
varyCheck("vary-normalise-lang-space", "optional", "Accept-Language whitespace ignored", ["vary-match"], [["Accept-Language", "en, de"]], "Accept-Language", [["Accept-Language", " en ,   de"]], "cached");
varyCheck("vary-normalise-lang-select", "optional", "Content-Language selected by Accept-Language qvalues", ["vary-match"], [["Accept-Language", "en, de"]], "Accept-Language", [["Accept-Language", "fr;q=0.5, de;q=1.0"]], "cached", true, [["Content-Language", "de"]]);
varyCheck("vary-normalise-space", "optional", "whitespace in an unknown selecting header ignored", ["vary-match"], [["Foo", "1,2"]], "Foo", [["Foo", " 1, 2 "]], "cached");

// ---------------------------------------------------------------- vary-parse
group = "vary-parse";
for (const [id, lines] of [
  ["vary-syntax-star", ["*"]],
  ["vary-syntax-star-star", ["*, *"]],
  ["vary-syntax-star-star-lines", ["*", "*"]],
  ["vary-syntax-empty-star", [", *"]],
  ["vary-syntax-empty-star-lines", ["", "*"]],
  ["vary-syntax-star-foo", ["*, Foo"]],
  ["vary-syntax-foo-star", ["Foo, *"]],
] as [string, string[]][])
  add({
    id,
    kind: "required",
    desc: `Vary: ${lines.join(" | ")} never reused`,
    deps: ["vary-match"],
    steps: [
      {
        reqHeaders: [["Foo", "1"], ["Baz", "789"]],
        resHeaders: [
          ["Cache-Control", "max-age=5000"],
          ["Last-Modified", -3000],
          ["Date", 0],
          ...lines.map((l): HeaderSpec => ["Vary", l, false]),
        ],
        setup: true,
      },
      { reqHeaders: [["Foo", "1"], ["Baz", "789"]], expect: "not_cached" },
    ],
  });

// ---------------------------------------------------------------- conditional
group = "conditional";
const condRespond = (id: string, kind: Kind, etag: string, inm: string, expectEtag = false) =>
  add({
    id,
    kind,
    desc: `fresh response with ETag ${etag}; request If-None-Match: ${inm} → 304 from cache`,
    steps: [
      { resHeaders: [["Expires", 100000], ["ETag", etag], ["Date", 0]], setup: true },
      { reqHeaders: [["If-None-Match", inm]], expect: "cached", expectStatus: 304, ...(expectEtag ? { expectHeaders: [["ETag", etag]] } : {}) },
    ],
  });
condRespond("conditional-etag-strong-respond", "optional", '"abcdef"', '"abcdef"', true);
condRespond("conditional-etag-strong-respond-obs-text", "optional", '"abcdef\u00fc"', '"abcdef\u00fc"');
condRespond("conditional-etag-strong-respond-unquote", "optional", "abcdef", "abcdef");
condRespond("conditional-etag-weak-respond", "optional", 'W/"abcdef"', 'W/"abcdef"');
condRespond("conditional-etag-weak-respond-lowercase", "check", 'w/"abcdef"', 'w/"abcdef"');
condRespond("conditional-etag-weak-respond-backslash", "check", 'W\\"abcdef"', 'W\\"abcdef"');
condRespond("conditional-etag-weak-respond-omit-slash", "check", 'W"abcdef"', 'W"abcdef"');
condRespond("conditional-etag-strong-quote-mismatch", "check", '"abcdef"', "abcdef");
condRespond("conditional-etag-strong-respond-multiple-first", "optional", '"abcdef"', '"abcdef", "1234", "5678"');
condRespond("conditional-etag-strong-respond-multiple-second", "optional", '"abcdef"', '"1234", "abcdef", "5678"');
condRespond("conditional-etag-strong-respond-multiple-last", "optional", '"abcdef"', '"1234", "5678", "abcdef"');
const condGenerate = (id: string, kind: Kind, etag: string, inm: string) =>
  add({
    id,
    kind,
    desc: `stale response with ETag ${etag} revalidated with If-None-Match: ${inm}`,
    steps: [
      { resHeaders: [["Expires", 0], ["ETag", etag], ["Date", 0]], setup: true },
      { expectReqHeaders: [["If-None-Match", inm]], expect: "etag_validated" },
    ],
  });
condGenerate("conditional-etag-strong-generate", "optional", '"abcdef"', '"abcdef"');
condGenerate("conditional-etag-weak-generate-weak", "optional", 'W/"abcdef"', 'W/"abcdef"');
condGenerate("conditional-etag-strong-generate-unquoted", "check", "abcdef", '"abcdef"');

// ---------------------------------------------------------------- headers (storing fields)
interface FieldSpec {
  name: string;
  valA?: string;
  valB?: string;
  noStore?: boolean;
  noUpdate?: boolean;
  reqUpdate?: boolean;
  checkBody?: boolean;
}
const FIELDS: FieldSpec[] = [
  { name: "Test-Header", reqUpdate: true },
  { name: "X-Test-Header", reqUpdate: true },
  { name: "Content-Foo", reqUpdate: true },
  { name: "X-Content-Foo", reqUpdate: true },
  { name: "Cache-Control", valA: "max-age=1", valB: "max-age=3600", reqUpdate: true },
  { name: "Connection", noStore: true },
  { name: "Content-Encoding" },
  { name: "Content-Length", valA: "5", valB: "10", noUpdate: true, checkBody: false },
  { name: "Content-Location", valA: "/foo", valB: "/bar" },
  { name: "Content-MD5", valA: "rL0Y20zC+Fzt72VPzMSk2A==", valB: "N7UdGUp1E+RbVvZSTy1R8g==" },
  { name: "Content-Range" },
  { name: "Content-Security-Policy", valA: "default-src 'self'", valB: "default-src 'self' cdn.example.com" },
  { name: "Content-Type", valA: "text/plain", valB: "text/plain;charset=utf-8" },
  { name: "Clear-Site-Data", valA: "cache", valB: "cookies" },
  { name: "ETag", valA: '"abcdef"', valB: '"ghijkl"' },
  { name: "Expires", valA: "Fri, 01 Jan 2038 01:01:01 GMT", valB: "Mon, 11 Jan 2038 11:11:11 GMT" },
  { name: "Keep-Alive", noStore: true },
  { name: "Proxy-Authenticate", noStore: true },
  { name: "Proxy-Authentication-Info", noStore: true },
  { name: "Proxy-Authorization", noStore: true },
  { name: "Proxy-Connection", noStore: true },
  { name: "Public-Key-Pins" },
  { name: "Set-Cookie", valA: "a=b", valB: "a=c" },
  { name: "Set-Cookie2", valA: "a=b", valB: "a=c" },
  { name: "TE", noStore: true },
  { name: "Transfer-Encoding", noStore: true },
  { name: "Upgrade", noStore: true },
  { name: "X-Frame-Options", valA: "deny", valB: "sameorigin" },
  { name: "X-XSS-Protection", valA: "1", valB: "1; mode=block" },
];

group = "headers";
add({
  id: "headers-omit-headers-listed-in-Connection",
  kind: "required",
  desc: "fields named by Connection are not stored",
  deps: ["freshness-max-age"],
  steps: [
    fresh({ resHeaders: [["Connection", "a, b", false], ["a", "1", false], ["b", "2", false], ["c", "3", false]] }),
    { expect: "cached", expectHeaders: [["c", "3"]], expectMissing: ["a", "b"], setupFor: ["type", "headers"] },
  ],
});
for (const f of FIELDS) {
  const value = f.valB ?? content(`${f.name}-store-value`);
  const store = !f.noStore;
  const res: HeaderSpec[] = [["Date", 0], [f.name, value, store]];
  if (f.name !== "Cache-Control") res.push(["Cache-Control", "max-age=3600"]);
  add({
    id: `headers-store-${f.name}`,
    kind: "required",
    desc: `cache ${store ? "must" : "must not"} store ${f.name}`,
    deps: ["freshness-max-age"],
    steps: [
      { resHeaders: res, setup: true, pause: true, checkBody: f.checkBody ?? true },
      // The suite's "must not store" form cannot actually see the field (it looks it up as a property), so only
      // the reuse is checked there; we do the same to keep the totals comparable.
      { expect: "cached", expectHeaders: store ? [[f.name, value]] : [], setupFor: ["type"], checkBody: f.checkBody ?? true },
    ],
  });
}

// ---------------------------------------------------------------- update304
group = "update304";
const LM1 = "Wed, 01 Jan 2020 00:00:00 GMT";
const testHeaderA = content("Test-Header-value-A");
add({
  id: "304-lm-use-stored-Test-Header",
  kind: "required",
  desc: "a 304 that omits a stored field keeps the stored one",
  steps: [
    { resHeaders: [["Cache-Control", "max-age=2"], ["Last-Modified", LM1], ["Date", 0], ["Test-Header", testHeaderA]], setup: true, pause: true },
    { resHeaders: [["Last-Modified", LM1], ["Date", 0]], expect: "lm_validated", expectHeaders: [["Test-Header", testHeaderA]], setupFor: ["type"] },
  ],
});
for (const f of FIELDS) {
  if (f.noStore) continue;
  const a = f.valA ?? content(`${f.name}-value-A`);
  const b = f.valB ?? content(`${f.name}-value-B`);
  const kind: Kind = f.noUpdate || f.reqUpdate ? "required" : "check";
  const expected = f.noUpdate ? a : b;
  const etag = `"${content(`${f.name}-etag-1`)}"`;
  const passThrough = !f.noUpdate;
  const res = (value: string, withValidator: boolean): HeaderSpec[] => {
    const out: HeaderSpec[] = [["Date", 0], [f.name, value, passThrough]];
    if (f.name !== "Cache-Control") out.push(["Cache-Control", "max-age=2"]);
    if (withValidator && f.name !== "ETag") out.push(["ETag", etag]);
    return out;
  };
  const checkBody = f.checkBody ?? true;
  add({
    id: `304-etag-update-response-${f.name}`,
    kind,
    desc: `${f.noUpdate ? "must not" : kind === "required" ? "must" : "does it"} update ${f.name} from a 304`,
    deps: ["304-lm-use-stored-Test-Header"],
    steps: [
      { resHeaders: res(a, true), setup: true, pause: true, checkBody },
      { resHeaders: res(b, true), expect: "etag_validated", setupFor: ["type"], expectHeaders: [[f.name, expected]], checkBody },
      { resHeaders: res(expected, false), expect: "cached", setupFor: ["type"], expectHeaders: [[f.name, expected]], checkBody },
    ],
  });
}

// ---------------------------------------------------------------- invalidation
group = "invalidation";
const TARGET: HeaderSpec[] = [["Cache-Control", "max-age=100000"], ["Last-Modified", 0], ["Date", 0]];
const LCL: HeaderSpec[] = [["Location", "location_target"], ["Content-Location", "content_location_target"]];
for (const m of ["POST", "PUT", "DELETE", "M-SEARCH"]) {
  add({
    id: `invalidate-${m}`,
    kind: "required",
    desc: `a successful ${m} invalidates the URL`,
    deps: ["freshness-max-age"],
    steps: [fresh(), { method: m, reqBody: "abc", setup: true }, { expect: "not_cached" }],
  });
  add({
    id: `invalidate-${m}-failed`,
    kind: "optional",
    desc: `a failed (500) ${m} leaves the URL cached`,
    deps: [`invalidate-${m}`],
    steps: [fresh(), { method: m, reqBody: "abc", status: 500, setup: true }, { expect: "cached" }],
  });
}
for (const m of ["POST", "PUT", "DELETE", "M-SEARCH"])
  add({
    id: `invalidate-${m}-location`,
    kind: "check",
    desc: `a successful ${m} invalidates its Location URL`,
    deps: [`invalidate-${m}`],
    steps: [
      { file: "location_target", resHeaders: TARGET, setup: true },
      { method: m, reqBody: "abc", resHeaders: LCL, magicLocations: true, setup: true },
      { file: "location_target", resHeaders: TARGET, expect: "not_cached" },
    ],
  });
for (const m of ["POST", "PUT", "DELETE", "M-SEARCH"])
  add({
    id: `invalidate-${m}-cl`,
    kind: "check",
    desc: `a successful ${m} invalidates its Content-Location URL`,
    deps: [`invalidate-${m}`],
    steps: [
      { file: "content_location_target", resHeaders: TARGET, setup: true },
      { method: m, reqBody: "abc", resHeaders: LCL, magicLocations: true, setup: true },
      { file: "content_location_target", resHeaders: TARGET, expect: "not_cached" },
    ],
  });

// ---------------------------------------------------------------- partial
group = "partial";
const P206: Partial<Step> = {
  reqHeaders: [["Range", "bytes=-5"]],
  status: 206,
  resHeaders: [["Cache-Control", "max-age=3600"], ["Content-Range", "bytes 4-9/10"]],
  resBody: "01234",
  setup: true,
};
const partial = (id: string, desc: string, first: Partial<Step>, range: string | undefined, text: string | undefined, extra: Partial<Step> = {}, kind: Kind = "optional") =>
  add({
    id,
    kind,
    desc,
    deps: [kind === "optional" ? "freshness-max-age" : "partial-store-complete-reuse-partial"],
    steps: [
      first,
      {
        ...(range ? { reqHeaders: [["Range", range]] as [string, string][] } : {}),
        ...(text !== undefined ? { expect: "cached" as const, expectStatus: 206, expectText: text } : {}),
        ...extra,
      },
    ],
  });
const FULL = (body: string, extra: HeaderSpec[] = []): Step => ({ resHeaders: [["Cache-Control", "max-age=3600"], ...extra], resBody: body, setup: true });
partial("partial-store-partial-reuse-partial", "stored 206 reused for the same range", { ...P206, expectReqHeaders: [["Range", "bytes=-5"]] }, "bytes=-5", "01234");
partial("partial-store-complete-reuse-partial", "complete response serves bytes=0-1", FULL("01234567890"), "bytes=0-1", "01");
partial("partial-store-complete-reuse-partial-no-last", "complete response serves bytes=1-", FULL("01234567890"), "bytes=1-", "1234567890");
partial("partial-store-complete-reuse-partial-suffix", "complete response serves bytes=-1", FULL("0123456789A"), "bytes=-1", "A");
partial("partial-store-partial-reuse-partial-byterange", "stored 206 serves bytes=6-8", P206, "bytes=6-8", "234");
partial("partial-store-partial-reuse-partial-absent", "stored 206 serves bytes=6-", P206, "bytes=6-", "234");
partial("partial-store-partial-reuse-partial-suffix", "stored 206 serves bytes=-1", P206, "bytes=-1", "4");
partial("partial-store-partial-complete", "stored 206 completed with a range request for the rest", { ...P206, resHeaders: [["Cache-Control", "max-age=3600"], ["Content-Range", "bytes 0-4/10"]] }, undefined, undefined, { expectReqHeaders: [["range", "bytes=5-"]] });
partial("partial-use-headers", "range served from cache uses new header fields", FULL("01234567890", [["A", "1"]]), "bytes=0-1", "01", { setupFor: ["type", "status", "text"], resHeaders: [["A", "2"]] }, "required");
partial("partial-use-stored-headers", "range served from cache keeps stored header fields", FULL("01234567890", [["A", "1"]]), "bytes=0-1", "01", { setupFor: ["type", "status", "text"], expectHeaders: [["A", "1"]] }, "required");

// ---------------------------------------------------------------- stale (RFC 5861)
group = "stale";
add({
  id: "stale-while-revalidate",
  kind: "optional",
  desc: "stale-while-revalidate serves stale and refreshes in the background",
  steps: [
    { setup: true, resHeaders: [["Cache-Control", "max-age=0, stale-while-revalidate=3600"], ["ETag", '"abc"']] },
    {
      pause: true,
      expectHeaders: [["Cache-Control", "max-age=0, stale-while-revalidate=3600"], ["ETag", '"abc"']],
      resHeaders: [["Cache-Control", "max-age=3600", false], ["ETag", '"def"', false]],
    },
    { expect: "cached", expectHeaders: [["Cache-Control", "max-age=3600"], ["ETag", '"def"']] },
  ],
});
add({
  id: "stale-if-error-cc-response",
  kind: "check",
  desc: "stale-if-error response served when the origin errors",
  steps: [
    { setup: true, resHeaders: [["Cache-Control", "max-age=0, stale-if-error=3600"]] },
    { status: 500, expectStatus: 200 },
  ],
});
add({
  id: "stale-if-error-cc-response-expired",
  kind: "required",
  desc: "response stale-if-error=1 not served 3 s later",
  steps: [
    { setup: true, resHeaders: [["Cache-Control", "max-age=0, stale-if-error=1"]], pause: true },
    { status: 500 },
  ],
});
add({
  id: "stale-if-error-cc-request",
  kind: "check",
  desc: "request stale-if-error lets a stale response answer an origin error",
  steps: [
    { setup: true, resHeaders: [["Cache-Control", "max-age=0"]] },
    { reqHeaders: [["Cache-Control", "stale-if-error=3600"]], status: 500, expectStatus: 200 },
  ],
});
add({
  id: "stale-if-error-cc-request-expired",
  kind: "required",
  desc: "request stale-if-error=1 not honoured 3 s later",
  steps: [
    { setup: true, resHeaders: [["Cache-Control", "max-age=0"]], pause: true },
    { reqHeaders: [["Cache-Control", "stale-if-error=1"]], status: 500 },
  ],
});

// ---------------------------------------------------------------- other
group = "other";
add({ id: "other-age-gen", kind: "required", desc: "Age generated on reuse (> 2 after 3 s)", deps: ["freshness-max-age"], steps: [fresh(), { expect: "cached", expectHeaders: [["Age", ">", 2]] }] });
add({
  id: "other-age-delay",
  kind: "check",
  desc: "Age inserted when the origin took 5 s",
  steps: [{ resHeaders: [["Cache-Control", "max-age=3600"], ["Date", 0]], originDelay: 5, expectHeaders: [["age", ">", 0]] }],
});
add({
  id: "other-age-update-expires",
  kind: "required",
  desc: "Age updated on reuse (Expires freshness)",
  deps: ["freshness-expires-future"],
  steps: [
    { resHeaders: [["Expires", 30 * 24 * 3600], ["Date", 0], ["Age", "30"]], pause: true, setup: true },
    { expect: "cached", expectHeaders: [["Age", ">", 32]] },
  ],
});
add({ id: "other-age-update-max-age", kind: "required", desc: "Age updated on reuse (max-age freshness)", deps: ["freshness-max-age"], steps: [fresh({ resHeaders: [["Age", "30"]] }), { expect: "cached", expectHeaders: [["Age", ">", 32]] }] });
add({ id: "other-date-update", kind: "required", desc: "Date not changed on reuse", deps: ["freshness-max-age"], steps: [fresh(), { expect: "cached", expectHeaders: [["Date", 0]] }] });
const EXP30: HeaderSpec[] = [["Expires", 30 * 24 * 3600], ["Date", 0]];
add({ id: "other-date-update-expires", kind: "required", desc: "Date not changed on reuse (Expires)", deps: ["freshness-expires-future"], steps: [{ resHeaders: EXP30, pause: true, setup: true }, { expect: "cached", expectHeaders: [["Date", 0]] }] });
add({ id: "other-date-update-expires-update", kind: "check", desc: "Expires left alone on reuse", deps: ["freshness-expires-future"], steps: [{ resHeaders: EXP30, pause: true, setup: true }, { expect: "cached", expectHeaders: [["Expires", 30 * 24 * 3600]] }] });
add({ id: "query-args-different", kind: "required", desc: "different queries are different keys", deps: ["freshness-max-age"], steps: [fresh({ query: `test=${content("query-args-different-1")}` }), { query: `test=${content("query-args-different-2")}`, expect: "not_cached" }] });
add({ id: "query-args-same", kind: "optional", desc: "a query does not stop reuse", deps: ["freshness-max-age"], steps: [fresh({ query: `test=${content("query-args-same")}` }), { query: `test=${content("query-args-same")}`, expect: "cached" }] });
pair("other-heuristic-content-disposition-attachment", "check", "heuristic reuse with Content-Disposition: attachment", ["heuristic-200-cached"], [["Last-Modified", -100000], ["Date", 0], ["Content-Disposition", "attachment; filename=example.txt"]], "cached", { pause: false });
add({ id: "other-fresh-content-disposition-attachment", kind: "check", desc: "fresh reuse with Content-Disposition: attachment", deps: ["freshness-max-age"], steps: [fresh({ resHeaders: [["Content-Disposition", "attachment; filename=example.txt"]] }), { expect: "cached" }] });
add({ id: "other-set-cookie", kind: "optional", desc: "fresh response with Set-Cookie reused", deps: ["freshness-max-age"], steps: [fresh({ resHeaders: [["Set-Cookie", "a=b"]] }), { expect: "cached" }] });
add({ id: "other-cookie", kind: "optional", desc: "fresh response reused for a request with Cookie", deps: ["freshness-max-age"], steps: [fresh(), { reqHeaders: [["Cookie", "a=b"]], expect: "cached" }] });

// ---------------------------------------------------------------- extras: auth, cdn-cache-control (not in the suite's default list)
group = "auth";
const authFirst = (cc: string): Step => ({
  reqHeaders: [["Authorization", "FOO"]],
  expectReqHeaders: [["Authorization", "FOO"]],
  resHeaders: [["Cache-Control", cc], ["Date", 0]],
  pause: true,
  setup: true,
});
add({ id: "other-authorization", kind: "required", extra: true, desc: "response to an Authorization request not reused", deps: ["freshness-max-age"], steps: [fresh({ reqHeaders: [["Authorization", "FOO"]], expectReqHeaders: [["Authorization", "FOO"]] }), { expect: "not_cached" }] });
add({ id: "other-authorization-public", kind: "optional", extra: true, desc: "Authorization + public reused", deps: ["other-authorization"], steps: [authFirst("max-age=3600, public"), { expect: "cached" }] });
add({ id: "other-authorization-must-revalidate", kind: "optional", extra: true, desc: "Authorization + must-revalidate reused", deps: ["other-authorization"], steps: [authFirst("max-age=3600, must-revalidate"), { expect: "cached" }] });
add({ id: "other-authorization-smaxage", kind: "optional", extra: true, desc: "Authorization + s-maxage reused", deps: ["other-authorization"], steps: [authFirst("s-maxage=3600"), { expect: "cached" }] });

group = "cdn-cache-control";
const cdn = (id: string, kind: Kind, desc: string, deps: string[] | undefined, res: HeaderSpec[], expect: ExpectType, pause = true) =>
  add({ id, kind, desc, deps, extra: true, steps: [{ resHeaders: res, setup: true, pause }, { expect }] });
const CDN = (v: string): HeaderSpec => ["CDN-Cache-Control", v, false];
cdn("cdn-max-age", "optional", "reuse with CDN-Cache-Control max-age", ["freshness-none"], [CDN("max-age=3600")], "cached");
cdn("cdn-max-age-max", "optional", "CDN-CC max-age=2147483648", ["freshness-none"], [CDN("max-age=2147483648")], "cached");
cdn("cdn-max-age-max-plus", "optional", "CDN-CC max-age=99999999999", ["freshness-none"], [CDN("max-age=99999999999")], "cached");
cdn("cdn-max-age-age", "required", "Age above CDN-CC max-age: not reused", ["cdn-max-age"], [["Date", 0], CDN("max-age=3600"), ["Age", "7200"]], "not_cached");
cdn("cdn-max-age-space-before-equals", "check", "CDN-CC 'max-age =100' ignored", ["cdn-max-age"], [["Cache-Control", "max-age=1"], CDN("max-age =100")], "not_cached");
cdn("cdn-max-age-space-after-equals", "check", "CDN-CC 'max-age= 100' ignored", ["cdn-max-age"], [["Cache-Control", "max-age=1"], CDN("max-age= 100")], "not_cached");
cdn("cdn-max-age-0", "required", "CDN-CC max-age=0 not reused", ["cdn-max-age"], [CDN("max-age=0")], "not_cached");
cdn("cdn-max-age-extension", "optional", "CDN-CC extension + max-age", ["cdn-max-age"], [CDN("foobar, max-age=3600")], "cached");
cdn("cdn-max-age-case-insensitive", "check", "CDN-CC MaX-aGe", ["cdn-max-age"], [CDN("MaX-aGe=3600")], "cached");
cdn("cdn-max-age-expires", "optional", "CDN-CC max-age beats past Expires", ["cdn-max-age"], [CDN("max-age=3600"), ["Expires", -10000], ["Date", 0]], "cached");
cdn("cdn-max-age-cc-max-age-invalid-expires", "optional", "CDN-CC max-age beats invalid Expires", ["cdn-max-age"], [CDN("max-age=3600"), ["Expires", "0", false], ["Date", 0]], "cached");
cdn("cdn-max-age-0-expires", "required", "CDN-CC max-age=0 beats future Expires", ["cdn-max-age"], [CDN("max-age=0"), ["Expires", 10000], ["Date", 0]], "not_cached");
cdn("cdn-max-age-short-cc-max-age", "optional", "long CDN-CC beats short CC", ["cdn-max-age"], [["Cache-Control", "max-age=1"], CDN("max-age=3600")], "cached");
cdn("cdn-max-age-long-cc-max-age", "required", "short CDN-CC beats long CC", ["cdn-max-age"], [["Cache-Control", "max-age=3600"], CDN("max-age=1")], "not_cached");
cdn("cdn-private", "required", "CDN-CC private not reused", undefined, [["CDN-Cache-Control", "private"], ["Cache-Control", "max-age=10000"], ["Expires", 10000], ["Date", 0]], "not_cached", false);
cdn("cdn-no-cache", "required", "CDN-CC no-cache not reused unvalidated", undefined, [["CDN-Cache-Control", "no-cache"], ["Cache-Control", "max-age=10000"], ["Expires", 10000], ["Date", 0]], "not_cached", false);
cdn("cdn-no-store-cc-fresh", "required", "CDN-CC no-store wins over CC max-age", ["freshness-none"], [["Cache-Control", "max-age=10000"], CDN("no-store"), ["Expires", 10000], ["Date", 0]], "not_cached");
cdn("cdn-fresh-cc-nostore", "required", "CDN-CC max-age wins over CC no-store", ["freshness-none"], [["Cache-Control", "no-store"], CDN("max-age=10000")], "cached");
cdn("cdn-cc-invalid-sh-type-unknown", "required", "invalid structured CDN-CC ignored (unknown type)", ["cdn-max-age"], [CDN("max-age=10000, &&&&&"), ["Cache-Control", "no-store"]], "not_cached");
cdn("cdn-cc-invalid-sh-type-wrong", "required", "invalid structured CDN-CC ignored (string max-age)", ["cdn-max-age"], [CDN('max-age="10000"'), ["Cache-Control", "no-store"]], "not_cached");
add({ id: "cdn-remove-header", kind: "check", extra: true, desc: "CDN-Cache-Control forwarded downstream?", steps: [{ resHeaders: [["Cache-Control", "max-age=10000"], CDN("foo"), ["Expires", 10000], ["Date", 0]], expectHeaders: [["CDN-Cache-Control", "foo"]] }] });
const exceed: HeaderSpec[] = [["Cache-Control", "max-age=1"], ["CDN-Cache-Control", "max-age=10000"], ["Date", 0]];
add({ id: "cdn-remove-age-exceed", kind: "check", extra: true, desc: "Age sent when CDN-CC exceeds CC", deps: ["cdn-max-age"], steps: [{ resHeaders: exceed, setup: true, pause: true }, { expectHeaders: ["Age"] }] });
add({ id: "cdn-date-update-exceed", kind: "check", extra: true, desc: "Date kept when CDN-CC exceeds CC", deps: ["cdn-max-age"], steps: [{ resHeaders: exceed, setup: true, pause: true }, { expectHeaders: [["Date", 0]] }] });
add({ id: "cdn-expires-update-exceed", kind: "check", extra: true, desc: "Expires kept when CDN-CC exceeds CC", deps: ["cdn-max-age"], steps: [{ resHeaders: [["Cache-Control", "max-age=1"], ["Expires", 1], ["CDN-Cache-Control", "max-age=10000"], ["Date", 0]], setup: true, pause: true }, { expectHeaders: [["Expires", 1]] }] });

export const CHECKS: readonly Check[] = checks;

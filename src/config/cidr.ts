/** One schema for lists of networks in cdn.toml (trusted proxies, exemptions): every part validates CIDRs the same way. */
import { z } from "zod";
import { parseCidr } from "../net/ip.ts";

/** An IPv4 or IPv6 network in CIDR notation (10.0.0.0/8, 2001:db8::/32), or a single address. */
export const CidrSchema = z.string().refine((c) => parseCidr(c) !== null, "not an IP address or CIDR such as 10.0.0.0/8");

/** A list of networks, empty by default. */
export const CidrListSchema = z.array(CidrSchema).default([]);

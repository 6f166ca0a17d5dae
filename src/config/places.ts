/** Where a thing is, as cdn.toml names it (DNS edges, mirrors): a country and a continent, both taken in upper case. */
import { z } from "zod";

export const CountrySchema = z
  .string()
  .regex(/^[A-Za-z]{2}$/, "an ISO 3166 alpha-2 country code")
  .transform((s) => s.toUpperCase());

export const ContinentSchema = z
  .string()
  .regex(/^(AF|AN|AS|EU|NA|OC|SA)$/i, "a continent code: AF AN AS EU NA OC SA")
  .transform((s) => s.toUpperCase());

/** Schema of `[admin]`: who may purge and read detailed metrics, on edges and DNS nodes alike. */
import { z } from "zod";

export const AdminSchema = z
  .object({
    /** Bearer token for purge, metrics and drain. Without one, those endpoints answer 403. */
    token: z.string().min(16, "use at least 16 characters").optional(),
    /** Serve /metrics without the token (e.g. when only a loopback admin socket exposes it). */
    metrics_public: z.boolean().default(false),
  })
  .strict();

export type AdminConfig = z.infer<typeof AdminSchema>;

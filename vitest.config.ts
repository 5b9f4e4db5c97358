import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["plugin/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});

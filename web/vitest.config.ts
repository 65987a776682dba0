import { defineConfig } from 'vitest/config';

// Unit tests (npm test): plain TypeScript modules of src/, run in Node.
// Kept apart from vite.config.ts, which is the dashboard build's.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});

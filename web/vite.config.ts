import { defineConfig } from 'vite';

// The dashboard is served by `catalyst serve` at "/" from the embedded web/dist.
// Relative asset URLs keep it working if it is ever mounted under a prefix.
// BACKEND (default http://localhost:8001) is where `npm run dev` proxies the API.
const backend = process.env.BACKEND ?? 'http://localhost:8001';

export default defineConfig({
  base: './',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: {
      '/api': backend,
      '/apps': backend,
      '/ws': { target: backend, ws: true },
    },
  },
});

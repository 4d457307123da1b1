/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` serves the UI with hot reload on :5173 and proxies the API
// (and its websockets) to a controller started with `make dev`.
const api = process.env.OPSCONDUCTOR_ADDR ?? 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [react()],
  server: {
    port: 5173,
    proxy: {
      '/api': { target: api, ws: true, changeOrigin: false },
      '/health': { target: api },
    },
  },
  build: {
    outDir: 'dist',
    // Hashed file names under assets/ are cached for a year by the
    // controller; index.html is never cached.
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});

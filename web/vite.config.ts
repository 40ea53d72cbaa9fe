// The console is served by curbside-server under /admin/ with a strict
// Content-Security-Policy (`script-src 'self'`, `style-src 'self'`): the
// build must emit no inline script or style, load nothing from another
// origin, and come out byte for byte the same each time (the built files
// are committed and CI rebuilds them to compare).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/admin/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: '../server/console',
    emptyOutDir: true,
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    target: 'es2022',
  },
});

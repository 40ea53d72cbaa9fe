// Builds the browser's MLS checks (web/tests/mls.test.ts, with the real
// src/clinician/mls.ts and ts-mls) into one ES module for Node's test
// runner: `npm run test:mls`. Node 20 has the same WebCrypto (Ed25519,
// X25519, AES-GCM) the browser uses.
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    ssr: 'tests/mls.test.ts',
    outDir: 'node_modules/.cache/curbside-mls-test',
    emptyOutDir: true,
    target: 'node20',
    reportCompressedSize: false,
  },
  ssr: { noExternal: true },
});

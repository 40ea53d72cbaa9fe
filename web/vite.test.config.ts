// Builds the browser's checks that run in Node (web/tests/*.test.ts: the
// MLS checks with the real src/clinician/mls.ts and ts-mls, the file
// encryption of src/clinician/attachment.ts, and the clinical workflow's
// wire pieces of src/clinician/clinical.ts) into ES modules for Node's
// test runner: `npm run test:mls`. Node 20 has the same WebCrypto
// (Ed25519, X25519, AES-GCM) the browser uses.
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    ssr: true,
    outDir: 'node_modules/.cache/curbside-mls-test',
    emptyOutDir: true,
    target: 'node20',
    reportCompressedSize: false,
    rolldownOptions: {
      input: {
        'mls.test': 'tests/mls.test.ts',
        'attachment.test': 'tests/attachment.test.ts',
        'clinical.test': 'tests/clinical.test.ts',
      },
    },
  },
  ssr: { noExternal: true },
});

// A QR code of some text as inline SVG elements (no image, no innerHTML):
// the modules come from `qrcode`, the drawing is ours.

import QRCode from 'qrcode';

export function Qr({ text, label }: { text: string; label: string }) {
  const { modules } = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const size = modules.size;
  const quiet = 4;
  let path = '';
  for (let row = 0; row < size; row++) {
    for (let column = 0; column < size; column++) {
      if (modules.get(row, column)) {
        path += `M${column + quiet} ${row + quiet}h1v1h-1z`;
      }
    }
  }
  const full = size + 2 * quiet;
  return (
    <svg class="qr" viewBox={`0 0 ${full} ${full}`} role="img" aria-label={label} shape-rendering="crispEdges">
      <rect width={full} height={full} fill="#ffffff" />
      <path d={path} fill="#000000" />
    </svg>
  );
}

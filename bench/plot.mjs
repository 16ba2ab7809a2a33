// A dependency-free PNG bar chart (node:zlib only): horizontal bars with labels in a 5x7 bitmap
// font, for bench/results/accuracy.png.
import { deflateSync } from "node:zlib";

// The classic 5x7 LCD font: 5 column bytes per character, bit 0 = top row.
const FONT = {
  " ": [0, 0, 0, 0, 0], "%": [0x23, 0x13, 0x08, 0x64, 0x62], "(": [0, 0x1c, 0x22, 0x41, 0], ")": [0, 0x41, 0x22, 0x1c, 0],
  "+": [8, 8, 0x3e, 8, 8], ",": [0, 0x50, 0x30, 0, 0], "-": [8, 8, 8, 8, 8], ".": [0, 0x60, 0x60, 0, 0],
  "/": [0x20, 0x10, 8, 4, 2], ":": [0, 0x36, 0x36, 0, 0], "=": [0x14, 0x14, 0x14, 0x14, 0x14], "'": [0, 5, 3, 0, 0],
  "_": [0x40, 0x40, 0x40, 0x40, 0x40], ">": [0, 0x41, 0x22, 0x14, 8], "<": [8, 0x14, 0x22, 0x41, 0],
  "0": [0x3e, 0x51, 0x49, 0x45, 0x3e], "1": [0, 0x42, 0x7f, 0x40, 0], "2": [0x42, 0x61, 0x51, 0x49, 0x46],
  "3": [0x21, 0x41, 0x45, 0x4b, 0x31], "4": [0x18, 0x14, 0x12, 0x7f, 0x10], "5": [0x27, 0x45, 0x45, 0x45, 0x39],
  "6": [0x3c, 0x4a, 0x49, 0x49, 0x30], "7": [1, 0x71, 9, 5, 3], "8": [0x36, 0x49, 0x49, 0x49, 0x36],
  "9": [6, 0x49, 0x49, 0x29, 0x1e],
  A: [0x7e, 0x11, 0x11, 0x11, 0x7e], B: [0x7f, 0x49, 0x49, 0x49, 0x36], C: [0x3e, 0x41, 0x41, 0x41, 0x22],
  D: [0x7f, 0x41, 0x41, 0x22, 0x1c], E: [0x7f, 0x49, 0x49, 0x49, 0x41], F: [0x7f, 9, 9, 9, 1],
  G: [0x3e, 0x41, 0x49, 0x49, 0x7a], H: [0x7f, 8, 8, 8, 0x7f], I: [0, 0x41, 0x7f, 0x41, 0],
  J: [0x20, 0x40, 0x41, 0x3f, 1], K: [0x7f, 8, 0x14, 0x22, 0x41], L: [0x7f, 0x40, 0x40, 0x40, 0x40],
  M: [0x7f, 2, 0x0c, 2, 0x7f], N: [0x7f, 4, 8, 0x10, 0x7f], O: [0x3e, 0x41, 0x41, 0x41, 0x3e],
  P: [0x7f, 9, 9, 9, 6], Q: [0x3e, 0x41, 0x51, 0x21, 0x5e], R: [0x7f, 9, 0x19, 0x29, 0x46],
  S: [0x46, 0x49, 0x49, 0x49, 0x31], T: [1, 1, 0x7f, 1, 1], U: [0x3f, 0x40, 0x40, 0x40, 0x3f],
  V: [0x1f, 0x20, 0x40, 0x20, 0x1f], W: [0x3f, 0x40, 0x38, 0x40, 0x3f], X: [0x63, 0x14, 8, 0x14, 0x63],
  Y: [7, 8, 0x70, 8, 7], Z: [0x61, 0x51, 0x49, 0x45, 0x43],
};

/** Ink at (row r, column c) of a character. */
function ink(ch, r, c) {
  const g = FONT[ch] ?? FONT[ch.toUpperCase()] ?? FONT[" "];
  return (g[c] >> r) & 1;
}

export class Canvas {
  constructor(width, height, bg = [255, 255, 255]) {
    this.w = width;
    this.h = height;
    this.px = Buffer.alloc(width * height * 3);
    for (let i = 0; i < width * height; i++) this.px.set(bg, i * 3);
  }
  rect(x, y, w, h, rgb) {
    for (let j = Math.max(0, Math.round(y)); j < Math.min(this.h, Math.round(y + h)); j++)
      for (let i = Math.max(0, Math.round(x)); i < Math.min(this.w, Math.round(x + w)); i++) this.px.set(rgb, (j * this.w + i) * 3);
  }
  /** Text with its top-left corner at (x, y); `scale` px per font pixel. Returns the width drawn. */
  text(x, y, s, rgb = [0, 0, 0], scale = 2) {
    let cx = Math.round(x);
    for (const ch of s) {
      for (let r = 0; r < 7; r++) for (let c = 0; c < 5; c++) if (ink(ch, r, c)) this.rect(cx + c * scale, y + r * scale, scale, scale, rgb);
      cx += 6 * scale;
    }
    return cx - x;
  }
  static textWidth(s, scale = 2) {
    return [...s].length * 6 * scale;
  }
  png() {
    const raw = Buffer.alloc((this.w * 3 + 1) * this.h);
    for (let j = 0; j < this.h; j++) {
      raw[j * (this.w * 3 + 1)] = 0;  // filter: none
      this.px.copy(raw, j * (this.w * 3 + 1) + 1, j * this.w * 3, (j + 1) * this.w * 3);
    }
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.w, 0);
    ihdr.writeUInt32BE(this.h, 4);
    ihdr.set([8, 2, 0, 0, 0], 8);  // 8 bit, RGB
    return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
  }
}

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * Horizontal bar chart of percentages. bars: [{ label, value (0..100 or null), color? }];
 * lines: [{ value, label, color }] vertical reference lines (e.g. the teacher's accuracy).
 */
export function barChart({ title, subtitle = "", bars, lines = [], width = 1000 }) {
  const labelW = Math.max(...bars.map((b) => Canvas.textWidth(b.label))) + 24;
  const top = 70, rowH = 44, bottom = 60 + 20 * lines.length, right = 110;
  const height = top + rowH * bars.length + bottom;
  const cv = new Canvas(width, height);
  const x0 = labelW, x1 = width - right;
  const X = (v) => x0 + ((x1 - x0) * Math.max(0, Math.min(100, v))) / 100;
  cv.text(16, 12, title, [0, 0, 0], 3);
  if (subtitle) cv.text(16, 44, subtitle, [90, 90, 90], 1);
  const yAxis = top + rowH * bars.length;
  for (let v = 0; v <= 100; v += 10) {
    cv.rect(X(v), top - 6, 1, yAxis - top + 6, [225, 225, 225]);
    const s = `${v}`;
    cv.text(X(v) - Canvas.textWidth(s, 2) / 2, yAxis + 8, s, [60, 60, 60], 2);
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    cv.text(12, y + 12, b.label, [0, 0, 0], 2);
    if (b.value == null || !Number.isFinite(b.value)) {
      cv.text(x0 + 6, y + 12, "N/A", [150, 0, 0], 2);
      return;
    }
    cv.rect(x0, y + 8, X(b.value) - x0, rowH - 16, b.color ?? [66, 110, 190]);
    cv.text(X(b.value) + 6, y + 15, b.value.toFixed(2), [0, 0, 0], 2);
  });
  cv.rect(x0, top - 6, 1, yAxis - top + 6, [0, 0, 0]);
  cv.rect(x0, yAxis, x1 - x0, 1, [0, 0, 0]);
  lines.forEach((l, i) => {
    for (let y = top - 6; y < yAxis; y += 8) cv.rect(X(l.value) - 1, y, 2, 5, l.color);
    cv.rect(16, yAxis + 40 + 20 * i, 24, 3, l.color);
    cv.text(48, yAxis + 36 + 20 * i, `${l.label}: ${l.value.toFixed(2)}%`, [0, 0, 0], 1);
  });
  return cv.png();
}

/** A line from (x0, y0) to (x1, y1), `t` px thick. */
function line(cv, x0, y0, x1, y1, rgb, t = 2) {
  const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
  for (let i = 0; i <= n; i++) cv.rect(x0 + ((x1 - x0) * i) / n - t / 2, y0 + ((y1 - y0) * i) / n - t / 2, t, t, rgb);
}

export const PALETTE = [[66, 110, 190], [214, 96, 40], [46, 150, 80], [150, 60, 170], [190, 40, 60], [120, 120, 120], [20, 160, 170], [170, 140, 20]];

/**
 * Accuracy (%) against seconds. series: [{ label, color, points: [[seconds, percent], ...] }] (several
 * series may share a label and color: one per seed); yMin..100 on the y axis; hlines: thresholds.
 */
export function lineChart({ title, subtitle = "", series, xMax, yMin = 80, hlines = [95, 97, 98], width = 1000, height = 640 }) {
  const cv = new Canvas(width, height);
  const labels = [...new Map(series.map((s) => [s.label, s.color])).entries()];
  const left = 70, right = 30, top = 70, bottom = 70 + 20 * Math.ceil(labels.length / 2);
  const X = (s) => left + ((width - left - right) * Math.min(s, xMax)) / xMax;
  const Y = (p) => top + ((height - top - bottom) * (100 - Math.max(yMin, Math.min(100, p)))) / (100 - yMin);
  cv.text(16, 12, title, [0, 0, 0], 3);
  if (subtitle) cv.text(16, 44, subtitle, [90, 90, 90], 1);
  const step = (100 - yMin) / 5;
  for (let p = yMin; p <= 100 + 1e-9; p += step) {
    cv.rect(left, Y(p), width - left - right, 1, [225, 225, 225]);
    cv.text(left - Canvas.textWidth(`${p}`, 2) - 8, Y(p) - 7, `${p}`, [60, 60, 60], 2);
  }
  const xs = xMax <= 60 ? 10 : xMax <= 180 ? 30 : 60;
  for (let s = 0; s <= xMax + 1e-9; s += xs) {
    cv.rect(X(s), top, 1, height - top - bottom, [235, 235, 235]);
    cv.text(X(s) - Canvas.textWidth(`${s}`, 2) / 2, height - bottom + 8, `${s}`, [60, 60, 60], 2);
  }
  cv.text(width - right - Canvas.textWidth("seconds", 2), height - bottom + 26, "seconds", [60, 60, 60], 2);
  for (const h of hlines) for (let x = left; x < width - right; x += 10) cv.rect(x, Y(h), 5, 1, [120, 120, 120]);
  for (const s of series)
    for (let i = 1; i < s.points.length; i++) line(cv, X(s.points[i - 1][0]), Y(s.points[i - 1][1]), X(s.points[i][0]), Y(s.points[i][1]), s.color);
  cv.rect(left, top, 1, height - top - bottom, [0, 0, 0]);
  cv.rect(left, height - bottom, width - left - right, 1, [0, 0, 0]);
  labels.forEach(([label, color], i) => {
    const x = 16 + (i % 2) * (width / 2), y = height - bottom + 48 + 20 * Math.floor(i / 2);
    cv.rect(x, y + 4, 24, 4, color);
    cv.text(x + 32, y, label, [0, 0, 0], 1);
  });
  return cv.png();
}

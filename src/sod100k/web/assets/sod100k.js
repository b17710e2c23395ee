/**
 * sod100k.js: salient object detection with CSNet in the browser (onnxruntime-web, WASM).
 *
 *     import { load } from "./sod100k.js";
 *     const seg = await load("model.onnx");              // {threads, size, quantization}
 *     const map = await seg.saliency(imageData);          // {width, height, data: Uint8Array}
 *     const cut = await seg.cutout(imageData);            // RGBA ImageData, alpha from the map
 *
 * The numbers follow the Python pipeline (sod100k/infer/preprocess.py and cutout.py)
 * operation by operation, in float32: OpenCV's bilinear resize (half-pixel centres, no
 * anti-aliasing, edge pixels repeated) down to the network's input and back, the same
 * quantisation of the map, and the same guided-filter edge refinement of the alpha.
 * Canvas scaling is not used: it differs between browsers.
 *
 * Threads: the WASM runtime runs multi-threaded only on a cross-origin-isolated page
 * (COOP same-origin + COEP require-corp); elsewhere it runs on one thread.
 */
import * as ort from "./ort/ort.wasm.bundle.min.mjs";

const f32 = Math.fround;
/** ImageNet mean and standard deviation (float32), as the reference protocol. */
const MEAN = [0.485, 0.456, 0.406].map(f32);
const STD = [0.229, 0.224, 0.225].map(f32);
/** `u8 * (1.0 / 255.0)` in float32, for each byte value (numpy's uint8 -> float32 scaling). */
const BYTE_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => f32(v * f32(1 / 255)));
/** `u8 / 255.0` in float32 (the guided filter divides instead of multiplying). */
const BYTE_OVER_255 = Float32Array.from({ length: 256 }, (_, v) => f32(v / 255));
/** Default guided-filter radius (fraction of the shorter side) and regulariser. */
export const RADIUS_FRACTION = 0.01;
export const EPS = 1e-4;
/** Images up to this many pixels get the exact guided filter; bigger ones the fast one. */
export const FULL_RES_PIXELS = 2_000_000;
export const LOW_RES_PIXELS = 1_000_000;
/** How each architecture's reference test script turns `map * 255` into bytes. */
export const QUANTIZATIONS = ["truncate", "round"];

// ---------------------------------------------------------------------------------------
// Tables that depend only on sizes (resize taps, box-filter indices), kept for the next
// call with the same sizes: camera frames all have one size.

const tables = new Map();
function cached(key, make) {
  let table = tables.get(key);
  if (table === undefined) {
    if (tables.size >= 64) tables.clear();
    table = make();
    tables.set(key, table);
  }
  return table;
}

// ---------------------------------------------------------------------------------------
// Bilinear resize: cv::resize(INTER_LINEAR) on float32, reproduced step by step.

/**
 * Source indices (`index`, `next`: the two taps) and weights along one axis, as OpenCV
 * computes them (in float32).
 */
function linearTaps(src, dst) {
  return cached(`linear ${src} ${dst}`, () => {
    const scale = 1 / (dst / src); // OpenCV: scale = 1 / inv_scale, inv_scale = dst / src
    const index = new Int32Array(dst);
    const next = new Int32Array(dst);
    const w0 = new Float32Array(dst);
    const w1 = new Float32Array(dst);
    for (let d = 0; d < dst; d++) {
      let fx = f32((d + 0.5) * scale - 0.5);
      let sx = Math.floor(fx);
      fx = f32(fx - sx);
      if (sx < 0) {
        fx = 0;
        sx = 0;
      }
      if (sx >= src - 1) {
        fx = 0;
        sx = src - 1;
      }
      index[d] = sx;
      next[d] = Math.min(sx + 1, src - 1);
      w0[d] = f32(1 - fx);
      w1[d] = fx;
    }
    return { index, next, w0, w1 };
  });
}

/**
 * The two passes of cv2.resize(INTER_LINEAR) from `sh` to `dh` rows: `horizontal(sy,
 * row)` fills `row` (float32, `rowLen` samples) with source row `sy` resized along x;
 * `vertical(y, row0, row1, b0, b1)` writes output row `y` from two of them. Each pass
 * computes `a*w0 + b*w1` in float32. Only the source rows the vertical pass reads are
 * resized, each once (two are kept, as OpenCV's ring buffer does).
 */
function resizeRows(sh, dh, rowLen, horizontal, vertical) {
  const { index, next, w0, w1 } = linearTaps(sh, dh);
  const rows = [new Float32Array(rowLen), new Float32Array(rowLen)];
  const held = [-1, -1];
  const fetch = (sy, keep) => {
    if (held[0] === sy) return 0;
    if (held[1] === sy) return 1;
    // Rows are read in increasing order: drop the older one, never the one in use.
    const slot = keep >= 0 ? 1 - keep : held[0] <= held[1] ? 0 : 1;
    horizontal(sy, rows[slot]);
    held[slot] = sy;
    return slot;
  };
  for (let y = 0; y < dh; y++) {
    const s0 = fetch(index[y], -1);
    const s1 = fetch(next[y], s0);
    vertical(y, rows[s0], rows[s1], w0[y], w1[y]);
  }
}

function checkImage(image) {
  const { width, height, data } = image ?? {};
  if (!(width > 0 && height > 0) || !data || data.length !== width * height * 4) {
    throw new TypeError("expected ImageData-like {width, height, data} with RGBA bytes");
  }
  return image;
}

/**
 * The network input for an RGBA image: `1 x 3 x size x size` float32, normalised
 * (sod100k.infer.preprocess.preprocess; the alpha channel is ignored).
 */
export function preprocess(image, size = 224) {
  const { width, height, data } = checkImage(image);
  const { index, next, w0, w1 } = linearTaps(width, size);
  const T = BYTE_TO_UNIT; // RGB bytes scaled to [0, 1] as numpy does
  const plane = size * size;
  const chw = new Float32Array(3 * plane);
  const [m0, m1, m2] = MEAN;
  const [s0, s1, s2] = STD;
  resizeRows(
    height,
    size,
    3 * size,
    (sy, row) => {
      const base = sy * width * 4;
      for (let x = 0, k = 0; x < size; x++, k += 3) {
        const i = base + 4 * index[x];
        const j = base + 4 * next[x];
        const a = w0[x];
        const b = w1[x];
        row[k] = f32(T[data[i]] * a) + f32(T[data[j]] * b);
        row[k + 1] = f32(T[data[i + 1]] * a) + f32(T[data[j + 1]] * b);
        row[k + 2] = f32(T[data[i + 2]] * a) + f32(T[data[j + 2]] * b);
      }
    },
    (y, r0, r1, b0, b1) => {
      for (let x = 0, k = 0, p = y * size; x < size; x++, k += 3, p++) {
        const r = f32(f32(r0[k] * b0) + f32(r1[k] * b1));
        const g = f32(f32(r0[k + 1] * b0) + f32(r1[k + 1] * b1));
        const b = f32(f32(r0[k + 2] * b0) + f32(r1[k + 2] * b1));
        chw[p] = f32(r - m0) / s0;
        chw[plane + p] = f32(g - m1) / s1;
        chw[2 * plane + p] = f32(b - m2) / s2;
      }
    },
  );
  return chw;
}

/** Round half to even, as numpy.rint. */
function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `size x size` logits -> `height x width` bytes (sod100k.infer.preprocess.postprocess):
 * sigmoid, bilinear resize, x255, then truncation (CSNet) or rounding (`"round"`).
 */
export function postprocess(logits, size, width, height, quantization = "truncate") {
  if (!QUANTIZATIONS.includes(quantization)) {
    throw new RangeError(`unknown quantization ${quantization}; use ${QUANTIZATIONS}`);
  }
  const prob = new Float32Array(logits.length);
  for (let i = 0; i < prob.length; i++) {
    // numpy's overflow-free logistic: 0.5 * (tanh(0.5 * x) + 1)
    prob[i] = f32(0.5 * f32(f32(Math.tanh(f32(0.5 * logits[i]))) + 1));
  }
  const { index, next, w0, w1 } = linearTaps(size, width);
  const out = new Uint8Array(width * height);
  const k = f32(255);
  const round = quantization === "round";
  resizeRows(
    size,
    height,
    width,
    (sy, row) => {
      const base = sy * size;
      for (let x = 0; x < width; x++) {
        row[x] = f32(prob[base + index[x]] * w0[x]) + f32(prob[base + next[x]] * w1[x]);
      }
    },
    (y, r0, r1, b0, b1) => {
      for (let x = 0, q = y * width; x < width; x++, q++) {
        const v = f32(f32(r0[x] * b0) + f32(r1[x] * b1));
        const scaled = f32(Math.min(Math.max(v, 0), 1) * k);
        out[q] = round ? rint(scaled) : scaled; // Uint8Array truncates
      }
    },
  );
  return out;
}

// ---------------------------------------------------------------------------------------
// Guided filter (He, Sun and Tang), as sod100k.infer.cutout: OpenCV's normalised box
// filter (double sums, reflected borders) and numpy's float32 element-wise operations.

/** cv::borderInterpolate for BORDER_REFLECT (fedcba|abcdefgh|hgfedcb). */
function reflect(p, len) {
  if (len === 1) return 0;
  while (p < 0 || p >= len) p = p < 0 ? -p - 1 : 2 * len - 1 - p;
  return p;
}

/** Sums of `k` consecutive samples of `pad` (double), for each of `n` outputs at `out[at]`. */
function windowSums(pad, n, k, out, at) {
  if (k === 3) {
    for (let i = 0; i < n; i++) out[at + i] = pad[i] + pad[i + 1] + pad[i + 2];
  } else if (k === 5) {
    for (let i = 0; i < n; i++) out[at + i] = pad[i] + pad[i + 1] + pad[i + 2] + pad[i + 3] + pad[i + 4];
  } else {
    // OpenCV's running sum: s += (new - old), in double.
    let s = 0;
    for (let i = 0; i < k; i++) s += pad[i];
    out[at] = s;
    for (let i = 0; i < n - 1; i++) {
      s += pad[i + k] - pad[i];
      out[at + i + 1] = s;
    }
  }
}

/** The box filter's reflected indices and (reused) double buffers for one plane size. */
function boxPlan(w, h, r) {
  return cached(`box ${w} ${h} ${r}`, () => ({
    cols: Int32Array.from({ length: w + 2 * r }, (_, j) => reflect(j - r, w)),
    rows: Int32Array.from({ length: h + 2 * r }, (_, j) => reflect(j - r, h) * w),
    pad: new Float64Array(w + 2 * r),
    rowSums: new Float64Array(w * h),
    sum: new Float64Array(w),
  }));
}

/**
 * cv2.boxFilter(src, CV_32F, (k, k), borderType=BORDER_REFLECT) of a float32 plane into
 * `out` (which may be `src`): row sums (double) of every row, then running column sums
 * (double) scaled to float32.
 */
function boxMean(src, w, h, r, out = new Float32Array(w * h)) {
  const k = 2 * r + 1;
  const scale = 1 / (k * k);
  const { cols, rows, pad, rowSums, sum } = boxPlan(w, h, r);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    for (let j = 0; j < pad.length; j++) pad[j] = src[base + cols[j]];
    windowSums(pad, w, k, rowSums, base);
  }
  sum.fill(0);
  for (let j = 0; j < k - 1; j++) {
    const row = rows[j];
    for (let x = 0; x < w; x++) sum[x] += rowSums[row + x];
  }
  for (let y = 0; y < h; y++) {
    const add = rows[y + k - 1];
    const drop = rows[y];
    const o = y * w;
    for (let x = 0; x < w; x++) {
      const s0 = sum[x] + rowSums[add + x];
      out[o + x] = s0 * scale;
      sum[x] = s0 - rowSums[drop + x];
    }
  }
  return out;
}

/**
 * Box-averaged guided-filter coefficients: `[meanA0, meanA1, meanA2, meanB]` planes
 * (sod100k.infer.cutout._coefficients, operation for operation in float32: each
 * product, difference and sum rounded as numpy rounds it).
 */
function coefficients(I, p, w, h, r, eps) {
  const n = p.length;
  const mean = (x, out) => boxMean(x, w, h, r, out);
  const product = new Float32Array(n);
  const meanOf = (x, y) => {
    for (let q = 0; q < n; q++) product[q] = x[q] * y[q];
    return mean(product);
  };
  const [I0, I1, I2] = I;
  const [m0, m1, m2, mp] = [I0, I1, I2, p].map((x) => mean(x));
  const [c0, c1, c2] = [I0, I1, I2].map((x) => meanOf(x, p));
  const s00 = meanOf(I0, I0);
  const s01 = meanOf(I0, I1);
  const s02 = meanOf(I0, I2);
  const s11 = meanOf(I1, I1);
  const s12 = meanOf(I1, I2);
  const s22 = meanOf(I2, I2);
  const epsF = f32(eps);
  const a0 = new Float32Array(n);
  const a1 = new Float32Array(n);
  const a2 = new Float32Array(n);
  const b = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    const mi0 = m0[q];
    const mi1 = m1[q];
    const mi2 = m2[q];
    const mpq = mp[q];
    const cov0 = f32(c0[q] - f32(mi0 * mpq));
    const cov1 = f32(c1[q] - f32(mi1 * mpq));
    const cov2 = f32(c2[q] - f32(mi2 * mpq));
    // covariance of the guide, eps on the diagonal
    const rr = f32(f32(s00[q] - f32(mi0 * mi0)) + epsF);
    const rg = f32(s01[q] - f32(mi0 * mi1));
    const rb = f32(s02[q] - f32(mi0 * mi2));
    const gg = f32(f32(s11[q] - f32(mi1 * mi1)) + epsF);
    const gb = f32(s12[q] - f32(mi1 * mi2));
    const bb = f32(f32(s22[q] - f32(mi2 * mi2)) + epsF);
    // its adjugate and determinant
    const i00 = f32(f32(gg * bb) - f32(gb * gb));
    const i01 = f32(f32(gb * rb) - f32(rg * bb));
    const i02 = f32(f32(rg * gb) - f32(gg * rb));
    const i11 = f32(f32(rr * bb) - f32(rb * rb));
    const i12 = f32(f32(rb * rg) - f32(rr * gb));
    const i22 = f32(f32(rr * gg) - f32(rg * rg));
    const det = f32(f32(f32(rr * i00) + f32(rg * i01)) + f32(rb * i02));
    const A0 = f32(f32(f32(f32(i00 * cov0) + f32(i01 * cov1)) + f32(i02 * cov2)) / det);
    const A1 = f32(f32(f32(f32(i01 * cov0) + f32(i11 * cov1)) + f32(i12 * cov2)) / det);
    const A2 = f32(f32(f32(f32(i02 * cov0) + f32(i12 * cov1)) + f32(i22 * cov2)) / det);
    a0[q] = A0;
    a1[q] = A1;
    a2[q] = A2;
    b[q] = mpq - f32(f32(f32(A0 * mi0) + f32(A1 * mi1)) + f32(A2 * mi2));
  }
  return [mean(a0, a0), mean(a1, a1), mean(a2, a2), mean(b, b)];
}

/** Exact colour guided filter of a byte map at full resolution -> alpha bytes. */
function guidedAlpha(image, map, radius, eps) {
  const { width: w, height: h, data } = image;
  const n = w * h;
  const T = BYTE_OVER_255;
  const I = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  const p = new Float32Array(n);
  for (let q = 0, i = 0; q < n; q++, i += 4) {
    I[0][q] = T[data[i]];
    I[1][q] = T[data[i + 1]];
    I[2][q] = T[data[i + 2]];
    p[q] = T[map[q]];
  }
  const [a0, a1, a2, b] = coefficients(I, p, w, h, radius, eps);
  const alpha = new Uint8Array(n);
  const k = f32(255);
  const half = f32(0.5);
  for (let q = 0; q < n; q++) {
    const dot = f32(f32(f32(a0[q] * I[0][q]) + f32(a1[q] * I[1][q])) + f32(a2[q] * I[2][q]));
    const v = f32(f32(f32(dot + b[q]) * k) + half);
    alpha[q] = Math.min(Math.max(v, 0), 255);
  }
  return alpha;
}

/**
 * OpenCV's INTER_AREA table along one axis: per output index `i`, the source indices it
 * covers and their float32 weights, `index`/`weight[start[i] .. start[i + 1]]`.
 */
function areaTaps(s, d) {
  return cached(`area ${s} ${d}`, () => {
    const scale = s / d;
    const index = [];
    const weight = [];
    const start = new Int32Array(d + 1);
    for (let i = 0; i < d; i++) {
      start[i] = index.length;
      const f1 = i * scale;
      const f2 = f1 + scale;
      const cell = Math.min(scale, s - f1);
      const s2 = Math.min(Math.floor(f2), s - 1);
      const s1 = Math.min(Math.ceil(f1), s2);
      const add = (j, v) => {
        index.push(j);
        weight.push(v);
      };
      if (s1 - f1 > 1e-3) add(s1 - 1, f32((s1 - f1) / cell));
      for (let j = s1; j < s2; j++) add(j, f32(1 / cell));
      if (f2 - s2 > 1e-3) add(s2, f32(Math.min(Math.min(f2 - s2, 1), cell) / cell));
    }
    start[d] = index.length;
    return { index: Int32Array.from(index), weight: Float32Array.from(weight), start };
  });
}

/**
 * cv2.resize(INTER_AREA) of bytes to a smaller size: each output pixel is the
 * area-weighted mean of the source pixels it covers, rounded to a byte. The source has
 * `stride` bytes per pixel of which the first `channels` (1 or 3) are resized.
 */
function resizeArea(src, sw, sh, stride, channels, dw, dh) {
  const out = new Uint8Array(dw * dh * channels);
  if (sw === 2 * dw && sh === 2 * dh) {
    // OpenCV's fast 2x2 path for bytes: (a + b + c + d + 2) >> 2.
    const line = sw * stride;
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        for (let c = 0; c < channels; c++) {
          const i = 2 * y * line + 2 * x * stride + c;
          const sum = src[i] + src[i + stride] + src[i + line] + src[i + line + stride];
          out[(y * dw + x) * channels + c] = (sum + 2) >> 2;
        }
      }
    }
    return out;
  }
  const { index: xi, weight: xw, start: xs } = areaTaps(sw, dw);
  const yt = areaTaps(sh, dh);
  const rowLen = dw * channels;
  const acc = new Float32Array(rowLen);
  for (let y = 0; y < dh; y++) {
    acc.fill(0);
    for (let ty = yt.start[y]; ty < yt.start[y + 1]; ty++) {
      const base = yt.index[ty] * sw * stride;
      const beta = yt.weight[ty];
      // A source row's horizontal sums (float32, in OpenCV's order), weighted into acc.
      if (channels === 3) {
        for (let x = 0, o = 0; x < dw; x++, o += 3) {
          let r = 0;
          let g = 0;
          let b = 0;
          for (let t = xs[x]; t < xs[x + 1]; t++) {
            const i = base + xi[t] * stride;
            const a = xw[t];
            r = f32(r + f32(src[i] * a));
            g = f32(g + f32(src[i + 1] * a));
            b = f32(b + f32(src[i + 2] * a));
          }
          acc[o] += f32(beta * r);
          acc[o + 1] += f32(beta * g);
          acc[o + 2] += f32(beta * b);
        }
      } else {
        for (let x = 0; x < dw; x++) {
          let v = 0;
          for (let t = xs[x]; t < xs[x + 1]; t++) v = f32(v + f32(src[base + xi[t] * stride] * xw[t]));
          acc[x] += f32(beta * v);
        }
      }
    }
    for (let i = 0, o = y * rowLen; i < rowLen; i++) out[o + i] = rint(acc[i]);
  }
  return out;
}

/**
 * cv2.remap's bilinear positions for upsampling `sd` samples to `d`: the source index
 * `((i + 0.5) * (sd / d) - 0.5)` on a 1/32-pixel grid, split into the two taps (clamped:
 * BORDER_REPLICATE) and the 1/32 fraction.
 */
function remapGrid(d, sd) {
  return cached(`remap ${d} ${sd}`, () => {
    const k = f32(sd / d);
    const lo = new Int32Array(d);
    const hi = new Int32Array(d);
    const frac = new Int32Array(d);
    for (let i = 0; i < d; i++) {
      const v = Math.round(f32(f32(f32(i + 0.5) * k) - f32(0.5)) * 32); // cvRound
      lo[i] = Math.min(Math.max(v >> 5, 0), sd - 1);
      hi[i] = Math.min(Math.max((v >> 5) + 1, 0), sd - 1);
      frac[i] = v & 31;
    }
    return { lo, hi, frac };
  });
}

/** 1/32-pixel steps as float32, cv2.remap's interpolation table. */
const REMAP_STEPS = Float32Array.from({ length: 32 }, (_, i) => f32(i / 32));

/**
 * Fast guided filter (sod100k.infer.cutout.fast_guided_alpha): coefficients on a copy of
 * about `lowPixels` pixels, upsampled bilinearly (cv2.remap's 1/32-pixel grid) and
 * applied to the full-size image.
 */
function fastGuidedAlpha(image, map, radius, eps, lowPixels) {
  const { width: w, height: h, data } = image;
  const s = Math.max(1, Math.sqrt((h * w) / lowPixels));
  const hl = Math.max(1, rint(h / s)); // Python's round(): halves to even
  const wl = Math.max(1, rint(w / s));
  const n = wl * hl;
  const small = resizeArea(data, w, h, 4, 3, wl, hl);
  const smallMap = resizeArea(map, w, h, 1, 1, wl, hl);
  const T = BYTE_TO_UNIT;
  const I = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  const p = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    I[0][q] = T[small[3 * q]];
    I[1][q] = T[small[3 * q + 1]];
    I[2][q] = T[small[3 * q + 2]];
    p[q] = T[smallMap[q]];
  }
  const planes = coefficients(I, p, wl, hl, Math.max(1, rint(radius / s)), eps);
  // The four coefficient planes interleaved, so that one pixel's taps are close together.
  const C = new Float32Array(4 * n);
  for (let q = 0; q < n; q++) {
    C[4 * q] = planes[0][q];
    C[4 * q + 1] = planes[1][q];
    C[4 * q + 2] = planes[2][q];
    C[4 * q + 3] = planes[3][q];
  }
  const gx = remapGrid(w, wl);
  const gy = remapGrid(h, hl);
  const X0 = cached(`remap4 ${w} ${wl}`, () => gx.lo.map((v) => 4 * v));
  const X1 = cached(`remap4+ ${w} ${wl}`, () => gx.hi.map((v) => 4 * v));
  const alpha = new Uint8Array(w * h);
  const k = f32(255);
  const half = f32(0.5);
  // cv2.remap's bilinear weights (products of the 1-D ones, one set per 1/32-pixel
  // offset) and its sum order, in float32.
  const wt = new Float32Array(32 * 4);
  for (let y = 0; y < h; y++) {
    const fy = REMAP_STEPS[gy.frac[y]];
    const fy1 = f32(1 - fy);
    for (let j = 0; j < 32; j++) {
      const fx = REMAP_STEPS[j];
      const fx1 = f32(1 - fx);
      wt[4 * j] = fy1 * fx1;
      wt[4 * j + 1] = fy1 * fx;
      wt[4 * j + 2] = fy * fx1;
      wt[4 * j + 3] = fy * fx;
    }
    const y0 = 4 * gy.lo[y] * wl;
    const y1 = 4 * gy.hi[y] * wl;
    for (let x = 0, q = y * w, i = 4 * q; x < w; x++, q++, i += 4) {
      const j = 4 * gx.frac[x];
      const w0 = wt[j];
      const w1 = wt[j + 1];
      const w2 = wt[j + 2];
      const w3 = wt[j + 3];
      const p00 = y0 + X0[x];
      const p01 = y0 + X1[x];
      const p10 = y1 + X0[x];
      const p11 = y1 + X1[x];
      const A0 = f32(f32(f32(f32(C[p00] * w0) + f32(C[p01] * w1)) + f32(C[p10] * w2)) + f32(C[p11] * w3));
      const A1 = f32(
        f32(f32(f32(C[p00 + 1] * w0) + f32(C[p01 + 1] * w1)) + f32(C[p10 + 1] * w2)) + f32(C[p11 + 1] * w3),
      );
      const A2 = f32(
        f32(f32(f32(C[p00 + 2] * w0) + f32(C[p01 + 2] * w1)) + f32(C[p10 + 2] * w2)) + f32(C[p11 + 2] * w3),
      );
      const B = f32(
        f32(f32(f32(C[p00 + 3] * w0) + f32(C[p01 + 3] * w1)) + f32(C[p10 + 3] * w2)) + f32(C[p11 + 3] * w3),
      );
      const d0 = f32(A0 * T[data[i]]);
      const d1 = f32(A1 * T[data[i + 1]]);
      const d2 = f32(A2 * T[data[i + 2]]);
      const v = f32(f32(f32(B + f32(f32(d0 + d1) + d2)) * k) + half);
      alpha[q] = Math.min(Math.max(v, 0), 255);
    }
  }
  return alpha;
}

/**
 * Alpha bytes from a saliency map (sod100k.infer.cutout.alpha_matte): the map refined
 * with the guided filter (exact up to FULL_RES_PIXELS, fast beyond, or on a grid
 * `subsample` times coarser per side); with `threshold`, 255 where that is >= threshold.
 */
export function alphaMatte(image, map, { threshold, refine = true, radius, eps = EPS, subsample = 1 } = {}) {
  const { width: w, height: h } = checkImage(image);
  if (map.length !== w * h) throw new RangeError(`map has ${map.length} pixels, image ${w * h}`);
  if (threshold != null && !(Number.isInteger(threshold) && threshold >= 0 && threshold <= 255)) {
    throw new RangeError(`threshold must be an integer in 0..255, got ${threshold}`);
  }
  let alpha;
  if (!refine) {
    alpha = Uint8Array.from(map);
  } else {
    const r = radius ?? Math.max(1, rint(RADIUS_FRACTION * Math.min(w, h)));
    const n = w * h;
    if (n > FULL_RES_PIXELS || subsample > 1) {
      let low = subsample > 1 ? Math.max(1, Math.floor(n / subsample ** 2)) : LOW_RES_PIXELS;
      if (n > FULL_RES_PIXELS) low = Math.min(low, LOW_RES_PIXELS);
      alpha = fastGuidedAlpha(image, map, r, eps, low);
    } else {
      alpha = guidedAlpha(image, map, r, eps);
    }
  }
  if (threshold != null) for (let q = 0; q < alpha.length; q++) alpha[q] = alpha[q] >= threshold ? 255 : 0;
  return alpha;
}

function makeImageData(data, width, height) {
  const clamped = new Uint8ClampedArray(data.buffer, data.byteOffset, data.length);
  return typeof ImageData === "function" ? new ImageData(clamped, width, height) : { width, height, data: clamped };
}

/** RGBA ImageData: the image's colours with `alpha` as transparency. */
export function withAlpha(image, alpha) {
  const { width, height, data } = checkImage(image);
  const out = new Uint8Array(width * height * 4);
  for (let q = 0, i = 0; q < alpha.length; q++, i += 4) {
    out[i] = data[i];
    out[i + 1] = data[i + 1];
    out[i + 2] = data[i + 2];
    out[i + 3] = alpha[q];
  }
  return makeImageData(out, width, height);
}

/** Opaque RGBA ImageData: the image over a background colour `[r, g, b]`, by `alpha`. */
export function composite(image, alpha, background = [0, 0, 0], out) {
  const { width, height, data } = checkImage(image);
  const target = out ?? makeImageData(new Uint8Array(width * height * 4), width, height);
  const dst = target.data;
  const [br, bg, bb] = background;
  for (let q = 0, i = 0; q < alpha.length; q++, i += 4) {
    const a = alpha[q];
    const na = 255 - a;
    dst[i] = (data[i] * a + br * na + 127) / 255;
    dst[i + 1] = (data[i + 1] * a + bg * na + 127) / 255;
    dst[i + 2] = (data[i + 2] * a + bb * na + 127) / 255;
    dst[i + 3] = 255;
  }
  return target;
}

/** A saliency map as grey RGBA ImageData (for a canvas or a PNG download). */
export function mapImageData({ width, height, data }) {
  const out = new Uint8Array(width * height * 4);
  for (let q = 0, i = 0; q < data.length; q++, i += 4) {
    out[i] = out[i + 1] = out[i + 2] = data[q];
    out[i + 3] = 255;
  }
  return makeImageData(out, width, height);
}

// ---------------------------------------------------------------------------------------
// PNG files of maps and cut-outs, byte for byte what was computed: a canvas would
// premultiply the alpha and lose the colour of transparent pixels.

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes, crc = 0xffffffff) {
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}

function pngChunk(type, body) {
  const chunk = new Uint8Array(12 + body.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) chunk[4 + i] = type.charCodeAt(i);
  chunk.set(body, 8);
  view.setUint32(8 + body.length, (crc32(chunk.subarray(4, 8 + body.length)) ^ 0xffffffff) >>> 0);
  return chunk;
}

/**
 * A PNG file (Blob) of a map `{width, height, data}` (one byte per pixel: grey) or of
 * RGBA ImageData (four bytes per pixel), compressed with the browser's zlib stream.
 */
export async function toPng({ width, height, data }) {
  const channels = data.length / (width * height);
  if (channels !== 1 && channels !== 4) throw new TypeError("expected 1 or 4 bytes per pixel");
  const stride = width * channels;
  const raw = new Uint8Array((stride + 1) * height); // filter type 0 (none) on every row
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const zlib = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(zlib).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, channels === 1 ? 0 : 6, 0, 0, 0], 8); // 8-bit grey or RGBA
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const parts = [signature, pngChunk("IHDR", header), pngChunk("IDAT", idat), pngChunk("IEND", new Uint8Array())];
  return new Blob(parts, { type: "image/png" });
}

// ---------------------------------------------------------------------------------------
// Decoding files as the Python pipeline reads them.

/**
 * RGBA ImageData of an image file (Blob/File): EXIF orientation applied, colours as
 * stored (no colour management, as Pillow reads them). Rejects with a one-line error
 * naming the file when it cannot be decoded.
 */
export async function decodeImage(blob, name = blob.name ?? "image") {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      imageOrientation: "from-image",
      premultiplyAlpha: "none",
      colorSpaceConversion: "none",
    });
  } catch {
    throw new Error(`${name}: cannot decode this file (not an image, or a corrupt one)`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// ---------------------------------------------------------------------------------------
// The model.

/** The threads the runtime will use: `threads` (or the cores, up to 4) when isolated, else 1. */
export function usableThreads(threads) {
  const isolated = globalThis.crossOriginIsolated === true;
  if (!isolated) return 1;
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, threads ?? Math.min(4, cores));
}

let runtimeThreads = null;

/** A loaded model; create it with {@link load}. */
export class Segmenter {
  constructor(session, { size, quantization, threads }, lane = { queue: Promise.resolve() }) {
    this.session = session;
    /** Network input side (the image is resized to size x size). */
    this.size = size;
    /** "truncate" (CSNet) or "round" (CSF + Res2Net-50). */
    this.quantization = quantization;
    /** Threads the WASM runtime runs on. */
    this.threads = threads;
    // The runtime runs one call at a time per session: calls queue here.
    this._lane = lane;
  }

  /** The same model (same session) with another input side, e.g. a faster live mode. */
  withSize(size) {
    checkSize(size);
    const { quantization, threads } = this;
    return new Segmenter(this.session, { size, quantization, threads }, this._lane);
  }

  /** `size x size` float32 logits of an RGBA image (runs one at a time per model). */
  logits(image) {
    const input = preprocess(image, this.size);
    const run = async () => {
      const tensor = new ort.Tensor("float32", input, [1, 3, this.size, this.size]);
      const feeds = { [this.session.inputNames[0]]: tensor };
      const result = await this.session.run(feeds);
      const out = result[this.session.outputNames[0]];
      const data = out.data.slice();
      out.dispose?.();
      return data;
    };
    const job = this._lane.queue.then(run, run);
    this._lane.queue = job.catch(() => {});
    return job;
  }

  /** The saliency map at the image's size: `{width, height, data}`, one byte per pixel. */
  async saliency(image) {
    const { width, height } = checkImage(image);
    const logits = await this.logits(image);
    return { width, height, data: postprocess(logits, this.size, width, height, this.quantization) };
  }

  /**
   * The salient object cut out: RGBA ImageData whose alpha is the edge-refined map
   * (soft), or 255/0 at `threshold`. Pass `saliency` (from {@link saliency}) to reuse a map.
   */
  async cutout(image, { threshold, refine = true, subsample = 1, saliency } = {}) {
    const map = saliency ?? (await this.saliency(image));
    return withAlpha(image, alphaMatte(image, map.data, { threshold, refine, subsample }));
  }

  /** Free the runtime's memory for this model. */
  async dispose() {
    await this.session.release();
  }
}

/**
 * Load a CSNet ONNX model (from `sod100k export`).
 *
 * @param {string|URL|ArrayBuffer|Uint8Array} model the .onnx file's URL or bytes.
 * @param {object} [options]
 * @param {number} [options.threads] WASM threads; used only on a cross-origin-isolated
 *   page (else 1). The first load() of a page fixes them for the page.
 * @param {number} [options.size=224] network input side, as `sod100k predict --size`.
 * @param {string} [options.quantization="truncate"] "truncate" (CSNet) or "round".
 * @param {boolean} [options.worker=false] run the network in a Web Worker: the calling
 *   thread stays free while it runs, e.g. to finish the previous camera frame. The first
 *   load() of a page fixes it for the page.
 * @returns {Promise<Segmenter>}
 */
export async function load(model, { threads, size = 224, quantization = "truncate", worker = false } = {}) {
  checkSize(size);
  if (!QUANTIZATIONS.includes(quantization)) throw new RangeError(`unknown quantization ${quantization}`);
  if (runtimeThreads === null) {
    runtimeThreads = usableThreads(threads);
    ort.env.wasm.numThreads = runtimeThreads;
    ort.env.wasm.proxy = worker === true;
    // Only the binary's URL: the loader is built into ort.wasm.bundle.min.mjs.
    ort.env.wasm.wasmPaths = { wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", import.meta.url).href };
    ort.env.logLevel = "error";
  }
  const source = model instanceof URL ? model.href : model;
  const bytes = typeof source === "string" ? await fetchBytes(source) : new Uint8Array(source.buffer ?? source);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return new Segmenter(session, { size, quantization, threads: runtimeThreads });
}

function checkSize(size) {
  if (!(Number.isInteger(size) && size >= 16)) throw new RangeError(`size must be an integer >= 16, got ${size}`);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

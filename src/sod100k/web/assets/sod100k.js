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
// Bilinear resize: cv::resize(INTER_LINEAR) on float32, reproduced step by step.

/** Source index and weights along one axis, as OpenCV computes them (in float32). */
function linearTaps(src, dst) {
  const scale = 1 / (dst / src); // OpenCV: scale = 1 / inv_scale, inv_scale = dst / src
  const index = new Int32Array(dst);
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
    w0[d] = f32(1 - fx);
    w1[d] = fx;
  }
  return { index, w0, w1 };
}

/**
 * Resize interleaved float32 planes (`channels` per pixel) like cv2.resize(INTER_LINEAR):
 * a horizontal pass on every source row, then a vertical pass, each `a*w0 + b*w1` in
 * float32 (a Float32Array store rounds each product and sum).
 */
function resizeLinear(src, sw, sh, channels, dw, dh) {
  if (sw === dw && sh === dh) return Float32Array.from(src);
  const xt = linearTaps(sw, dw);
  const yt = linearTaps(sh, dh);
  const rowLen = dw * channels;
  const rows = new Float32Array(sh * rowLen);
  const i0 = new Int32Array(rowLen);
  const i1 = new Int32Array(rowLen);
  const a0 = new Float32Array(rowLen);
  const a1 = new Float32Array(rowLen);
  for (let x = 0; x < dw; x++) {
    for (let c = 0; c < channels; c++) {
      const k = x * channels + c;
      i0[k] = xt.index[x] * channels + c;
      i1[k] = Math.min(xt.index[x] + 1, sw - 1) * channels + c;
      a0[k] = xt.w0[x];
      a1[k] = xt.w1[x];
    }
  }
  const tmp = new Float32Array(2);
  for (let y = 0; y < sh; y++) {
    const base = y * sw * channels;
    const o = y * rowLen;
    for (let k = 0; k < rowLen; k++) {
      tmp[0] = src[base + i0[k]] * a0[k];
      tmp[1] = src[base + i1[k]] * a1[k];
      rows[o + k] = tmp[0] + tmp[1];
    }
  }
  const out = new Float32Array(dw * dh * channels);
  for (let y = 0; y < dh; y++) {
    const r0 = yt.index[y] * rowLen;
    const r1 = Math.min(yt.index[y] + 1, sh - 1) * rowLen;
    const b0 = yt.w0[y];
    const b1 = yt.w1[y];
    const o = y * rowLen;
    for (let k = 0; k < rowLen; k++) {
      tmp[0] = rows[r0 + k] * b0;
      tmp[1] = rows[r1 + k] * b1;
      out[o + k] = tmp[0] + tmp[1];
    }
  }
  return out;
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
  // RGB samples of the RGBA bytes, scaled to [0, 1] as numpy does.
  const rgb = new Float32Array(width * height * 3);
  for (let q = 0; q < width * height; q++) {
    rgb[3 * q] = BYTE_TO_UNIT[data[4 * q]];
    rgb[3 * q + 1] = BYTE_TO_UNIT[data[4 * q + 1]];
    rgb[3 * q + 2] = BYTE_TO_UNIT[data[4 * q + 2]];
  }
  const hwc = resizeLinear(rgb, width, height, 3, size, size);
  const plane = size * size;
  const chw = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      chw[c * plane + p] = f32(f32(hwc[p * 3 + c] - MEAN[c]) / STD[c]);
    }
  }
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
  const up = resizeLinear(prob, size, size, 1, width, height);
  const out = new Uint8Array(width * height);
  const k = f32(255);
  for (let i = 0; i < out.length; i++) {
    const v = f32(Math.min(Math.max(up[i], 0), 1) * k);
    out[i] = quantization === "round" ? rint(v) : v; // Uint8Array truncates
  }
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

/** Sums of `k` consecutive samples of `pad` (double), for each of `n` outputs. */
function windowSums(pad, n, k, out) {
  if (k === 3) {
    for (let i = 0; i < n; i++) out[i] = pad[i] + pad[i + 1] + pad[i + 2];
  } else if (k === 5) {
    for (let i = 0; i < n; i++) out[i] = pad[i] + pad[i + 1] + pad[i + 2] + pad[i + 3] + pad[i + 4];
  } else {
    // OpenCV's running sum: s += (new - old), in double.
    let s = 0;
    for (let i = 0; i < k; i++) s += pad[i];
    out[0] = s;
    for (let i = 0; i < n - 1; i++) {
      s += pad[i + k] - pad[i];
      out[i + 1] = s;
    }
  }
}

/** cv2.boxFilter(src, CV_32F, (k, k), borderType=BORDER_REFLECT) of a float32 plane. */
function boxMean(src, w, h, r) {
  const k = 2 * r + 1;
  const scale = 1 / (k * k);
  // Row sums (double) of every row, then running column sums (double) scaled to float32.
  const rowSums = new Float64Array(w * h);
  const cols = Int32Array.from({ length: w + 2 * r }, (_, j) => reflect(j - r, w));
  const pad = new Float64Array(w + 2 * r);
  const line = new Float64Array(w);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    for (let j = 0; j < pad.length; j++) pad[j] = src[base + cols[j]];
    windowSums(pad, w, k, line);
    rowSums.set(line, base);
  }
  const out = new Float32Array(w * h);
  const rows = Int32Array.from({ length: h + 2 * r }, (_, j) => reflect(j - r, h) * w);
  const sum = new Float64Array(w);
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

/** `a * b` and `a - b` element-wise in float32 (numpy's float32 operations). */
function mul(a, b) {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * b[i];
  return out;
}
function sub(a, b) {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] - b[i];
  return out;
}

/**
 * Box-averaged guided-filter coefficients: `[meanA0, meanA1, meanA2, meanB]` planes
 * (sod100k.infer.cutout._coefficients, operation for operation).
 */
function coefficients(I, p, w, h, r, eps) {
  const mean = (x) => boxMean(x, w, h, r);
  const meanI = I.map(mean);
  const meanP = mean(p);
  const cov = I.map((Ic, c) => sub(mean(mul(Ic, p)), mul(meanI[c], meanP)));
  const epsF = f32(eps);
  const v = {};
  for (let i = 0; i < 3; i++) {
    for (let j = i; j < 3; j++) {
      v[`${i}${j}`] = sub(mean(mul(I[i], I[j])), mul(meanI[i], meanI[j]));
      if (i === j) for (let q = 0; q < p.length; q++) v[`${i}${j}`][q] += epsF;
    }
  }
  const { "00": rr, "01": rg, "02": rb, "11": gg, "12": gb, "22": bb } = v;
  const inv = {
    "00": sub(mul(gg, bb), mul(gb, gb)),
    "01": sub(mul(gb, rb), mul(rg, bb)),
    "02": sub(mul(rg, gb), mul(gg, rb)),
    "11": sub(mul(rr, bb), mul(rb, rb)),
    "12": sub(mul(rb, rg), mul(rr, gb)),
    "22": sub(mul(rr, gg), mul(rg, rg)),
  };
  const n = p.length;
  const det = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    det[q] = f32(
      f32(f32(rr[q] * inv["00"][q]) + f32(rg[q] * inv["01"][q])) + f32(rb[q] * inv["02"][q]),
    );
  }
  const a = [0, 1, 2].map((i) => {
    const terms = [0, 1, 2].map((j) => inv[`${Math.min(i, j)}${Math.max(i, j)}`]);
    const ai = new Float32Array(n);
    for (let q = 0; q < n; q++) {
      const s = f32(
        f32(f32(terms[0][q] * cov[0][q]) + f32(terms[1][q] * cov[1][q])) +
          f32(terms[2][q] * cov[2][q]),
      );
      ai[q] = f32(s / det[q]);
    }
    return ai;
  });
  const b = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    const dot = f32(
      f32(f32(a[0][q] * meanI[0][q]) + f32(a[1][q] * meanI[1][q])) + f32(a[2][q] * meanI[2][q]),
    );
    b[q] = f32(meanP[q] - dot);
  }
  return [...a.map(mean), mean(b)];
}

/** RGB planes of RGBA bytes, each through `table`. */
function rgbPlanes(data, n, table) {
  const planes = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  for (let q = 0; q < n; q++) {
    planes[0][q] = table[data[4 * q]];
    planes[1][q] = table[data[4 * q + 1]];
    planes[2][q] = table[data[4 * q + 2]];
  }
  return planes;
}

/** Exact colour guided filter of a byte map at full resolution -> alpha bytes. */
function guidedAlpha(image, map, radius, eps) {
  const { width: w, height: h, data } = image;
  const n = w * h;
  const I = rgbPlanes(data, n, BYTE_OVER_255);
  const p = Float32Array.from(map, (v) => BYTE_OVER_255[v]);
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
 * cv2.resize(INTER_AREA) of interleaved bytes to a smaller size: each output pixel is the
 * area-weighted mean of the source pixels it covers, rounded to a byte.
 */
function resizeArea(src, sw, sh, channels, dw, dh) {
  // OpenCV's area table: per output index, the source indices it covers and their
  // float32 weights, flattened (start[i] .. start[i + 1]).
  const taps = (s, d) => {
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
  };
  const out = new Uint8Array(dw * dh * channels);
  const fx = sw / dw;
  const fy = sh / dh;
  if (fx === 2 && fy === 2) {
    // OpenCV's fast 2x2 path for bytes: (a + b + c + d + 2) >> 2.
    const stride = sw * channels;
    for (let y = 0; y < dh; y++) {
      for (let x = 0; x < dw; x++) {
        for (let c = 0; c < channels; c++) {
          const i = 2 * y * stride + 2 * x * channels + c;
          const sum = src[i] + src[i + channels] + src[i + stride] + src[i + stride + channels];
          out[(y * dw + x) * channels + c] = (sum + 2) >> 2;
        }
      }
    }
    return out;
  }
  const xt = taps(sw, dw);
  const yt = taps(sh, dh);
  const row = new Float32Array(dw * channels);
  const acc = new Float32Array(dw * channels);
  const t = new Float32Array(1);
  for (let y = 0; y < dh; y++) {
    acc.fill(0);
    for (let ty = yt.start[y]; ty < yt.start[y + 1]; ty++) {
      const base = yt.index[ty] * sw * channels;
      const beta = yt.weight[ty];
      row.fill(0);
      for (let x = 0; x < dw; x++) {
        for (let tx = xt.start[x]; tx < xt.start[x + 1]; tx++) {
          const sx = base + xt.index[tx] * channels;
          const a = xt.weight[tx];
          for (let c = 0; c < channels; c++) {
            t[0] = src[sx + c] * a;
            row[x * channels + c] += t[0];
          }
        }
      }
      for (let i = 0; i < acc.length; i++) {
        t[0] = beta * row[i];
        acc[i] += t[0];
      }
    }
    for (let i = 0; i < acc.length; i++) out[y * dw * channels + i] = rint(acc[i]);
  }
  return out;
}

/** One cv2.remap bilinear sample of plane `P` in float32, in OpenCV's order. */
function bilinear(P, i00, i01, i10, i11, w0, w1, w2, w3) {
  return f32(f32(f32(f32(P[i00] * w0) + f32(P[i01] * w1)) + f32(P[i10] * w2)) + f32(P[i11] * w3));
}

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
  const rgb = new Uint8Array(w * h * 3);
  for (let q = 0; q < w * h; q++) {
    rgb[3 * q] = data[4 * q];
    rgb[3 * q + 1] = data[4 * q + 1];
    rgb[3 * q + 2] = data[4 * q + 2];
  }
  const small = resizeArea(rgb, w, h, 3, wl, hl);
  const n = wl * hl;
  const I = [0, 1, 2].map((c) => Float32Array.from({ length: n }, (_, q) => BYTE_TO_UNIT[small[3 * q + c]]));
  const p = Float32Array.from(resizeArea(map, w, h, 1, wl, hl), (v) => BYTE_TO_UNIT[v]);
  const coef = coefficients(I, p, wl, hl, Math.max(1, rint(radius / s)), eps);
  // remap coordinates: ((x + 0.5) * (wl / w) - 0.5) in float32, then a 1/32 grid.
  const grid = (d, sd) => {
    const k = f32(sd / d);
    const pos = new Int32Array(d);
    const frac = new Int32Array(d);
    for (let i = 0; i < d; i++) {
      const v = Math.round(f32(f32(f32(i + 0.5) * k) - f32(0.5)) * 32); // cvRound
      pos[i] = v >> 5;
      frac[i] = v & 31;
    }
    return { pos, frac };
  };
  const gx = grid(w, wl);
  const gy = grid(h, hl);
  const tab = Float32Array.from({ length: 32 }, (_, i) => f32(i / 32));
  const x0s = Int32Array.from(gx.pos, (p) => Math.min(Math.max(p, 0), wl - 1));
  const x1s = Int32Array.from(gx.pos, (p) => Math.min(Math.max(p + 1, 0), wl - 1));
  const [A0, A1, A2, B] = coef;
  const alpha = new Uint8Array(w * h);
  const k = f32(255);
  const half = f32(0.5);
  // cv2.remap's bilinear weights (products of the 1-D ones, one set per 1/32-pixel
  // offset) and its sum order, in float32.
  const fxi = Int32Array.from(gx.frac);
  const wt = new Float32Array(32 * 4);
  for (let y = 0; y < h; y++) {
    const fy = tab[gy.frac[y]];
    const fy1 = f32(1 - fy);
    for (let j = 0; j < 32; j++) {
      const fx = tab[j];
      const fx1 = f32(1 - fx);
      wt[4 * j] = fy1 * fx1;
      wt[4 * j + 1] = fy1 * fx;
      wt[4 * j + 2] = fy * fx1;
      wt[4 * j + 3] = fy * fx;
    }
    const y0 = Math.min(Math.max(gy.pos[y], 0), hl - 1) * wl;
    const y1 = Math.min(Math.max(gy.pos[y] + 1, 0), hl - 1) * wl;
    for (let x = 0; x < w; x++) {
      const j = 4 * fxi[x];
      const w0 = wt[j];
      const w1 = wt[j + 1];
      const w2 = wt[j + 2];
      const w3 = wt[j + 3];
      const i00 = y0 + x0s[x];
      const i01 = y0 + x1s[x];
      const i10 = y1 + x0s[x];
      const i11 = y1 + x1s[x];
      const q = y * w + x;
      const d0 = f32(bilinear(A0, i00, i01, i10, i11, w0, w1, w2, w3) * BYTE_TO_UNIT[data[4 * q]]);
      const d1 = f32(bilinear(A1, i00, i01, i10, i11, w0, w1, w2, w3) * BYTE_TO_UNIT[data[4 * q + 1]]);
      const d2 = f32(bilinear(A2, i00, i01, i10, i11, w0, w1, w2, w3) * BYTE_TO_UNIT[data[4 * q + 2]]);
      const b = bilinear(B, i00, i01, i10, i11, w0, w1, w2, w3);
      const v = f32(f32(f32(b + f32(f32(d0 + d1) + d2)) * k) + half);
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
 * @returns {Promise<Segmenter>}
 */
export async function load(model, { threads, size = 224, quantization = "truncate" } = {}) {
  checkSize(size);
  if (!QUANTIZATIONS.includes(quantization)) throw new RangeError(`unknown quantization ${quantization}`);
  if (runtimeThreads === null) {
    runtimeThreads = usableThreads(threads);
    ort.env.wasm.numThreads = runtimeThreads;
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

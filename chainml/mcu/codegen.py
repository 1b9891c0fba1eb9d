"""C source and header for an int8 model: the weights as ``const`` arrays (flash) and
``chainml_infer``, plain C99 kernels with TFLite Micro's double-rounding requantization.

The arithmetic mirrors :mod:`chainml.mcu.int8` operation for operation (int32 accumulators,
64-bit products in the doubling high multiply, arithmetic shifts), so the C build, the Python
reference and TFLM agree bit for bit. Every layer is one ``const cm_layer_t`` descriptor in
flash (shapes, zero points, clamps, pointers to its arrays), so the code depends only on the
kinds of layer and their weight storage, never on the weights' values; a dense layer is the
convolution's special case (one output position, a kernel as wide as the input), so one
kernel serves both. Activations live in two static ping-pong buffers sized for the largest
intermediate layer; nothing is allocated at run time. ``chainml_features`` runs the body only:
its output is what the device's head re-fit (ridge regression) works on.

Weight storage, chosen per layer by :func:`weight_storage` (the values, and so the outputs,
are the same in every format; only the bytes in flash differ):

- ``int8``: one byte per weight;
- ``int4``: two weights per byte (low nibble first, sign-extended on load), for layers
  quantized to 4 bits (values in [-7, 7]);
- ``sparse``: a bitmask of the non-zero weights plus the non-zero values, for magnitude-pruned
  layers where that is at least a quarter smaller than ``int8``.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

from chainml.errors import ConfigError
from chainml.mcu.int8 import Int8Model, Q8Layer

Storage = Literal["int8", "int4", "sparse"]
SPARSE_MAX_RATIO = 0.75
"""Sparse storage is used when mask + values take at most this fraction of the int8 bytes."""

RUNTIME = r"""
#include <stddef.h>

typedef struct {
  const int8_t *w;      /* int8 weights, packed int4 pairs, or the non-zero values */
  const uint8_t *mask;  /* sparse storage: bit i set <=> weight i is stored in w */
  const int32_t *bias;
  const int32_t *mult;
  const int8_t *shift;
  int16_t c_in, w_out, c_out, kernel, stride;
  int8_t in_zp, out_zp, lo, hi;
} cm_layer_t;

static inline int32_t cm_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / (1ll << 31));
}

static inline int32_t cm_rdbpot(int32_t x, int32_t exponent) {
  int32_t mask = (int32_t)((1ll << exponent) - 1);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int8_t cm_output(int32_t acc, const cm_layer_t *l, int32_t o) {
  int32_t shift = l->shift[o];
  int32_t left = shift > 0 ? shift : 0;
  int32_t right = shift > 0 ? 0 : -shift;
  int32_t v = cm_rdbpot(cm_srdhm((int32_t)((uint32_t)acc << left), l->mult[o]), right);
  v += l->out_zp;
  return (int8_t)(v < l->lo ? l->lo : (v > l->hi ? l->hi : v));
}

#define CM_UNUSED __attribute__((unused, noinline))

/* Convolution over channels-last input (N = 1); a dense layer is w_out = kernel = 1. */
CM_UNUSED static void cm_conv(const int8_t *in, int8_t *out, const cm_layer_t *l) {
  const int32_t span = l->kernel * l->c_in, in_zp = l->in_zp;
  for (int32_t x = 0; x < l->w_out; ++x) {
    const int8_t *patch = in + x * l->stride * l->c_in;
    const int8_t *filt = l->w;
    for (int32_t o = 0; o < l->c_out; ++o, filt += span) {
      int32_t acc = l->bias[o];
      for (int32_t j = 0; j < span; ++j) acc += ((int32_t)patch[j] - in_zp) * (int32_t)filt[j];
      out[x * l->c_out + o] = cm_output(acc, l, o);
    }
  }
}

CM_UNUSED static void cm_conv_int4(const int8_t *in, int8_t *out, const cm_layer_t *l) {
  const int32_t span = l->kernel * l->c_in, in_zp = l->in_zp;
  for (int32_t x = 0; x < l->w_out; ++x) {
    const int8_t *patch = in + x * l->stride * l->c_in;
    int32_t i = 0;
    for (int32_t o = 0; o < l->c_out; ++o) {
      int32_t acc = l->bias[o];
      for (int32_t j = 0; j < span; ++j, ++i) {
        int32_t packed = (int32_t)l->w[i >> 1];
        int32_t w = (i & 1) ? (packed >> 4) : ((int32_t)(int8_t)((uint32_t)packed << 4) >> 4);
        acc += ((int32_t)patch[j] - in_zp) * w;
      }
      out[x * l->c_out + o] = cm_output(acc, l, o);
    }
  }
}

CM_UNUSED static void cm_conv_sparse(const int8_t *in, int8_t *out, const cm_layer_t *l) {
  const int32_t span = l->kernel * l->c_in, in_zp = l->in_zp;
  for (int32_t x = 0; x < l->w_out; ++x) {
    const int8_t *patch = in + x * l->stride * l->c_in;
    const int8_t *value = l->w;
    int32_t i = 0;
    for (int32_t o = 0; o < l->c_out; ++o) {
      int32_t acc = l->bias[o];
      for (int32_t j = 0; j < span; ++j, ++i)
        if ((l->mask[i >> 3] >> (i & 7)) & 1) acc += ((int32_t)patch[j] - in_zp) * *value++;
      out[x * l->c_out + o] = cm_output(acc, l, o);
    }
  }
}

/* Global average pooling: kernel = width, c_in = channels. */
CM_UNUSED static void cm_avgpool(const int8_t *in, int8_t *out, const cm_layer_t *l) {
  const int32_t width = l->kernel, channels = l->c_in;
  for (int32_t c = 0; c < channels; ++c) {
    int32_t acc = 0;
    for (int32_t x = 0; x < width; ++x) acc += in[x * channels + c];
    acc = acc > 0 ? (acc + width / 2) / width : (acc - width / 2) / width;
    out[c] = (int8_t)(acc < l->lo ? l->lo : (acc > l->hi ? l->hi : acc));
  }
}
"""

KERNEL_OF: dict[Storage, str] = {
    "int8": "cm_conv",
    "int4": "cm_conv_int4",
    "sparse": "cm_conv_sparse",
}


ADAPT = r"""
/* On-device adaptation: the head re-fit of the device protocol (chainml.meta.adapt.refit_head).
 * Ridge regression on the int8 body's dequantized features, bias included, accumulated one
 * labelled sample at a time (A^T A + lambda I and A^T Y: O(d^2) RAM whatever the number of
 * samples; the symmetric A^T A as its packed lower triangle), solved in place by an LDL^T
 * factorisation (no square roots, so no libm). Features, targets and the head are float32; every
 * sum of the factorisation and the solves runs in double (software floating point on a
 * Cortex-M4: a few KB of flash). The normal equations are stored in double too where that fits
 * the RAM budget (CM_D <= CHAINML_ADAPT_DOUBLE_MAX_D), in float32 otherwise: a float32 solve
 * lost 0.3% of the prediction on a trained coldchain version's correlated features. */
#ifndef CHAINML_ADAPT_DOUBLE_MAX_D
#define CHAINML_ADAPT_DOUBLE_MAX_D 48
#endif
#define CM_D (CHAINML_FEATURE_SIZE + 1)
#define CM_G(i, j) cm_gram[(i) * ((i) + 1) / 2 + (j)] /* row i >= column j */
#if CM_D <= CHAINML_ADAPT_DOUBLE_MAX_D
typedef double cm_real;
#else
typedef float cm_real;
#endif
static cm_real cm_gram[CM_D * (CM_D + 1) / 2];
static cm_real cm_rhs[CM_D * CHAINML_OUTPUT_SIZE];
static float cm_head[CM_D * CHAINML_OUTPUT_SIZE];

static void cm_feature_row(const int8_t *input, float *row) {
  int8_t q[CHAINML_FEATURE_SIZE];
  chainml_features(input, q);
  for (int32_t i = 0; i < CHAINML_FEATURE_SIZE; ++i)
    row[i] = (float)((int32_t)q[i] - CHAINML_FEATURE_ZERO_POINT) * CHAINML_FEATURE_SCALE;
  row[CHAINML_FEATURE_SIZE] = 1.0f;
}

void chainml_adapt_reset(float ridge_lambda) {
  for (int32_t i = 0; i < CM_D * (CM_D + 1) / 2; ++i) cm_gram[i] = 0;
  for (int32_t i = 0; i < CM_D; ++i) CM_G(i, i) = (cm_real)ridge_lambda;
  for (int32_t i = 0; i < CM_D * CHAINML_OUTPUT_SIZE; ++i) cm_rhs[i] = 0;
}

void chainml_adapt_add(const int8_t *input, const float *target) {
  float a[CM_D];
  cm_feature_row(input, a);
  for (int32_t i = 0; i < CM_D; ++i) {
    for (int32_t j = 0; j <= i; ++j) CM_G(i, j) = (cm_real)(CM_G(i, j) + (double)a[i] * a[j]);
    for (int32_t k = 0; k < CHAINML_OUTPUT_SIZE; ++k) {
      cm_real *r = &cm_rhs[i * CHAINML_OUTPUT_SIZE + k];
      *r = (cm_real)(*r + (double)a[i] * target[k]);
    }
  }
}

int chainml_adapt_solve(void) {
  /* In place: below the diagonal L (unit diagonal implied), on the diagonal D. */
  for (int32_t j = 0; j < CM_D; ++j) {
    double d = CM_G(j, j);
    for (int32_t k = 0; k < j; ++k) d -= (double)CM_G(j, k) * CM_G(j, k) * CM_G(k, k);
    if (!(d > 0.0)) return -1;
    CM_G(j, j) = (cm_real)d;
    for (int32_t i = j + 1; i < CM_D; ++i) {
      double v = CM_G(i, j);
      for (int32_t k = 0; k < j; ++k) v -= (double)CM_G(i, k) * CM_G(j, k) * CM_G(k, k);
      CM_G(i, j) = (cm_real)(v / d);
    }
  }
  for (int32_t c = 0; c < CHAINML_OUTPUT_SIZE; ++c) {
    double y[CM_D];
    double x[CM_D];
    for (int32_t i = 0; i < CM_D; ++i) {
      double v = cm_rhs[i * CHAINML_OUTPUT_SIZE + c];
      for (int32_t k = 0; k < i; ++k) v -= (double)CM_G(i, k) * y[k];
      y[i] = v;
    }
    for (int32_t i = CM_D - 1; i >= 0; --i) {
      double v = y[i] / CM_G(i, i);
      for (int32_t k = i + 1; k < CM_D; ++k) v -= (double)CM_G(k, i) * x[k];
      x[i] = v;
      cm_head[i * CHAINML_OUTPUT_SIZE + c] = (float)v;
    }
  }
  return 0;
}

void chainml_predict_adapted(const int8_t *input, float *output) {
  float a[CM_D];
  cm_feature_row(input, a);
  for (int32_t c = 0; c < CHAINML_OUTPUT_SIZE; ++c) {
    float v = 0.0f;
    for (int32_t i = 0; i < CM_D; ++i) v += a[i] * cm_head[i * CHAINML_OUTPUT_SIZE + c];
    output[c] = v;
  }
}
"""


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def _array(ctype: str, name: str, values: np.ndarray, per_line: int = 16) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n  ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  {body}\n}};\n"


def weight_storage(layer: Q8Layer) -> Storage:
    """The smallest storage that holds ``layer``'s weights exactly."""
    assert layer.weight is not None
    if layer.weight_bits == 4:
        return "int4"
    n = layer.weight.size
    sparse_bytes = -(-n // 8) + int(np.count_nonzero(layer.weight))
    return "sparse" if sparse_bytes <= SPARSE_MAX_RATIO * n else "int8"


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Two's-complement nibbles, two per byte, the first value in the low nibble."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError("int4 weights must lie in [-8, 7]")
    nib = (v & 0xF).astype(np.uint8)
    if len(nib) % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


def sparse_blocks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bitmask, non-zero values) of a weight tensor in row-major order, bit i = weight i."""
    v = np.asarray(values).reshape(-1)
    mask = np.packbits(v != 0, bitorder="little")
    return mask, v[v != 0].astype(np.int8)


def activation_sizes(model: Int8Model) -> list[int]:
    """Element count of the input and of every layer's output."""
    return [model.input_size, *(int(np.prod(s)) for s in _shapes(model)[1:])]


def _shapes(model: Int8Model) -> list[tuple[int, int]]:
    """(width, channels) of the input and of every layer's output (width 1 when flat)."""
    if len(model.input_shape) == 2:
        shape = (int(model.input_shape[0]), int(model.input_shape[1]))
    else:
        shape = (1, model.input_size)
    out = [shape]
    for layer in model.layers:
        if layer.kind == "avgpool":
            shape = (1, shape[1])
        elif layer.kind == "dense":
            assert layer.weight is not None
            shape = (1, int(layer.weight.shape[0]))
        else:
            assert layer.weight is not None
            o, k, _ = layer.weight.shape
            shape = ((shape[0] - k) // layer.stride + 1, int(o))
        out.append(shape)
    return out


def generate(
    model: Int8Model, prefix: str = "chainml_model", ridge_lambda: float | None = None
) -> dict[str, str]:
    """``{prefix}.h`` and ``{prefix}.c`` for ``model``; ``ridge_lambda`` (the version's recipe)
    becomes the header's default for the on-device head re-fit."""
    sizes = activation_sizes(model)
    inner = sizes[1:-1] or [1]
    buf = max(inner)
    guard = c_identifier(prefix).upper() + "_H"
    feature_scale = model.layers[-2].output_scale if len(model.layers) > 1 else model.input_scale
    lam = "" if ridge_lambda is None else f"#define CHAINML_RIDGE_LAMBDA {float(ridge_lambda)!r}f\n"
    header = f"""/* Generated by chainml (chainml.mcu.codegen) for {model.name}: do not edit. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define CHAINML_INPUT_SIZE {model.input_size}
#define CHAINML_OUTPUT_SIZE {model.output_dim}
#define CHAINML_FEATURE_SIZE {sizes[-2]}
#define CHAINML_INPUT_SCALE {model.input_scale!r}f
#define CHAINML_INPUT_ZERO_POINT {model.input_zp}
#define CHAINML_OUTPUT_SCALE {model.output_scale!r}f
#define CHAINML_OUTPUT_ZERO_POINT {model.output_zp}
#define CHAINML_FEATURE_SCALE {feature_scale!r}f
#define CHAINML_FEATURE_ZERO_POINT {model.layers[-1].input_zp}
{lam}
/* One inference: int8 input (channels last) to int8 output. */
void chainml_infer(const int8_t *input, int8_t *output);

/* The body only: int8 features, the input of the linear head (for the head re-fit). */
void chainml_features(const int8_t *input, int8_t *features);

/* On-device head re-fit (ridge regression on the features, float32): reset, add each
 * labelled sample (targets one-hot for classes), solve (0 on success), then predict. */
void chainml_adapt_reset(float ridge_lambda);
void chainml_adapt_add(const int8_t *input, const float *target);
int chainml_adapt_solve(void);
void chainml_predict_adapted(const int8_t *input, float *output);

#endif
"""
    parts = [
        f"/* Generated by chainml (chainml.mcu.codegen) for {model.name}: do not edit. */\n",
        f'#include "{prefix}.h"\n',
        RUNTIME,
        "\n",
        f"static int8_t cm_buf_a[{buf}];\nstatic int8_t cm_buf_b[{buf}];\n\n",
    ]
    shapes = _shapes(model)
    calls = []
    for i, layer in enumerate(model.layers):
        parts.append(_layer(i, layer, shapes[i], shapes[i + 1]))
        kernel = "cm_avgpool" if layer.kind == "avgpool" else KERNEL_OF[weight_storage(layer)]
        calls.append(f"{kernel}(%s, %s, &cm_l{i});")
    parts.append(_run_function(model, calls[:-1], "chainml_features", "features"))
    parts.append(_run_function(model, calls, "chainml_infer", "output"))
    parts.append(ADAPT)
    return {f"{prefix}.h": header, f"{prefix}.c": "".join(parts)}


def _layer(i: int, layer: Q8Layer, shape_in: tuple[int, int], shape_out: tuple[int, int]) -> str:
    """The arrays of layer ``i`` and its ``cm_layer_t`` descriptor."""
    text = []
    w = mask = bias = mult = shift = "NULL"
    if layer.kind == "avgpool":
        dims = (shape_in[1], 1, shape_in[1], shape_in[0], 1)
    else:
        assert layer.weight is not None and layer.bias is not None
        assert layer.multiplier is not None and layer.shift is not None
        if layer.shift.size and not -31 <= int(layer.shift.min()) <= int(layer.shift.max()) <= 30:
            raise ConfigError(f"layer {i}: a requantization shift is outside [-31, 30]")
        storage = weight_storage(layer)
        if storage == "int4":
            text.append(_array("int8_t", f"cm_w{i}", pack_int4(layer.weight).view(np.int8)))
        elif storage == "sparse":
            bits, values = sparse_blocks(layer.weight)
            text.append(_array("uint8_t", f"cm_k{i}", bits))
            text.append(_array("int8_t", f"cm_w{i}", values if values.size else np.zeros(1)))
            mask = f"cm_k{i}"
        else:
            text.append(_array("int8_t", f"cm_w{i}", layer.weight))
        text.append(_array("int32_t", f"cm_b{i}", layer.bias, 8))
        text.append(_array("int32_t", f"cm_m{i}", layer.multiplier, 8))
        text.append(_array("int8_t", f"cm_s{i}", layer.shift))
        w, bias, mult, shift = f"cm_w{i}", f"cm_b{i}", f"cm_m{i}", f"cm_s{i}"
        o = int(layer.weight.shape[0])
        if layer.kind == "dense":
            dims = (int(layer.weight.size) // o, 1, o, 1, 1)
        else:
            dims = (shape_in[1], shape_out[0], o, int(layer.weight.shape[1]), layer.stride)
    c_in, w_out, c_out, kernel, stride = dims
    text.append(
        f"static const cm_layer_t cm_l{i} = {{{w}, {mask}, {bias}, {mult}, {shift}, "
        f"{c_in}, {w_out}, {c_out}, {kernel}, {stride}, "
        f"{layer.input_zp}, {layer.output_zp}, {layer.act_min}, {layer.act_max}}};\n\n"
    )
    return "".join(text)


def _run_function(model: Int8Model, calls: list[str], name: str, out: str) -> str:
    if not calls:
        body = f"  for (int32_t i = 0; i < {model.input_size}; ++i) {out}[i] = input[i];\n"
    else:
        lines = []
        src = "input"
        for i, call in enumerate(calls):
            dst = out if i == len(calls) - 1 else ("cm_buf_a" if i % 2 == 0 else "cm_buf_b")
            lines.append("  " + call % (src, dst) + "\n")
            src = dst
        body = "".join(lines)
    return f"void {name}(const int8_t *input, int8_t *{out}) {{\n{body}}}\n\n"

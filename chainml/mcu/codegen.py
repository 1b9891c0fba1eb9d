"""C source and header for an int8 model: the weights as ``const`` arrays (flash) and
``chainml_infer``, plain C99 kernels with TFLite Micro's double-rounding requantization.

The arithmetic mirrors :mod:`chainml.mcu.int8` operation for operation (int32 accumulators,
64-bit products in the doubling high multiply, arithmetic shifts), so the C build, the Python
reference and TFLM agree bit for bit. Activations live in two static ping-pong buffers sized
for the largest intermediate layer; nothing is allocated at run time. ``chainml_features`` runs
the body only: its output is what the device's head re-fit (ridge regression) works on.
"""

from __future__ import annotations

import re

import numpy as np

from chainml.mcu.int8 import Int8Model, Q8Layer

RUNTIME = r"""
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

static inline int32_t cm_requant(int32_t acc, int32_t multiplier, int32_t shift) {
  int32_t left = shift > 0 ? shift : 0;
  int32_t right = shift > 0 ? 0 : -shift;
  return cm_rdbpot(cm_srdhm((int32_t)((uint32_t)acc << left), multiplier), right);
}

static inline int8_t cm_clamp(int32_t v, int32_t lo, int32_t hi) {
  return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#define CM_UNUSED __attribute__((unused))

CM_UNUSED static void cm_dense(const int8_t *in, int8_t *out, int32_t n_in, int32_t n_out,
                               const int8_t *w, const int32_t *bias, const int32_t *mult,
                     const int32_t *shift, const int32_t *q) {
  const int32_t in_zp = q[0], out_zp = q[1], lo = q[2], hi = q[3];
  for (int32_t o = 0; o < n_out; ++o) {
    const int8_t *row = w + o * n_in;
    int32_t acc = bias[o];
    for (int32_t i = 0; i < n_in; ++i) acc += ((int32_t)in[i] - in_zp) * (int32_t)row[i];
    out[o] = cm_clamp(cm_requant(acc, mult[o], shift[o]) + out_zp, lo, hi);
  }
}

CM_UNUSED static void cm_conv(const int8_t *in, int8_t *out, int32_t c_in, int32_t w_out,
                              int32_t c_out, int32_t kernel, int32_t stride, const int8_t *w,
                              const int32_t *bias, const int32_t *mult, const int32_t *shift,
                              const int32_t *q) {
  const int32_t in_zp = q[0], out_zp = q[1], lo = q[2], hi = q[3];
  const int32_t span = kernel * c_in;
  for (int32_t x = 0; x < w_out; ++x) {
    const int8_t *patch = in + x * stride * c_in;
    for (int32_t o = 0; o < c_out; ++o) {
      const int8_t *filt = w + o * span;
      int32_t acc = bias[o];
      for (int32_t j = 0; j < span; ++j) acc += ((int32_t)patch[j] - in_zp) * (int32_t)filt[j];
      out[x * c_out + o] = cm_clamp(cm_requant(acc, mult[o], shift[o]) + out_zp, lo, hi);
    }
  }
}

CM_UNUSED static void cm_avgpool(const int8_t *in, int8_t *out, int32_t width, int32_t channels,
                       const int32_t *q) {
  const int32_t lo = q[2], hi = q[3];
  for (int32_t c = 0; c < channels; ++c) {
    int32_t acc = 0;
    for (int32_t x = 0; x < width; ++x) acc += in[x * channels + c];
    acc = acc > 0 ? (acc + width / 2) / width : (acc - width / 2) / width;
    out[c] = cm_clamp(acc, lo, hi);
  }
}
"""


ADAPT = r"""
/* On-device adaptation: the head re-fit of the device protocol (chainml.meta.adapt.refit_head).
 * Ridge regression on the int8 body's dequantized features, bias included, accumulated one
 * labelled sample at a time (A^T A + lambda I and A^T Y, O(d^2) RAM whatever the number of
 * samples), solved by an LDL^T factorisation (no square roots, so no libm). Float32. */
#define CM_D (CHAINML_FEATURE_SIZE + 1)
static float cm_gram[CM_D * CM_D];
static float cm_rhs[CM_D * CHAINML_OUTPUT_SIZE];
static float cm_head[CM_D * CHAINML_OUTPUT_SIZE];

static void cm_feature_row(const int8_t *input, float *row) {
  int8_t q[CHAINML_FEATURE_SIZE];
  chainml_features(input, q);
  for (int32_t i = 0; i < CHAINML_FEATURE_SIZE; ++i)
    row[i] = (float)((int32_t)q[i] - CHAINML_FEATURE_ZERO_POINT) * CHAINML_FEATURE_SCALE;
  row[CHAINML_FEATURE_SIZE] = 1.0f;
}

void chainml_adapt_reset(float ridge_lambda) {
  for (int32_t i = 0; i < CM_D * CM_D; ++i) cm_gram[i] = 0.0f;
  for (int32_t i = 0; i < CM_D; ++i) cm_gram[i * CM_D + i] = ridge_lambda;
  for (int32_t i = 0; i < CM_D * CHAINML_OUTPUT_SIZE; ++i) cm_rhs[i] = 0.0f;
}

void chainml_adapt_add(const int8_t *input, const float *target) {
  float a[CM_D];
  cm_feature_row(input, a);
  for (int32_t i = 0; i < CM_D; ++i) {
    for (int32_t j = 0; j <= i; ++j) cm_gram[i * CM_D + j] += a[i] * a[j];
    for (int32_t k = 0; k < CHAINML_OUTPUT_SIZE; ++k)
      cm_rhs[i * CHAINML_OUTPUT_SIZE + k] += a[i] * target[k];
  }
}

int chainml_adapt_solve(void) {
  /* In place: the lower triangle becomes L (unit diagonal implied), the diagonal D. */
  float *g = cm_gram;
  for (int32_t j = 0; j < CM_D; ++j) {
    float d = g[j * CM_D + j];
    for (int32_t k = 0; k < j; ++k) d -= g[j * CM_D + k] * g[j * CM_D + k] * g[k * CM_D + k];
    if (!(d > 0.0f)) return -1;
    g[j * CM_D + j] = d;
    for (int32_t i = j + 1; i < CM_D; ++i) {
      float v = g[i * CM_D + j];
      for (int32_t k = 0; k < j; ++k) v -= g[i * CM_D + k] * g[j * CM_D + k] * g[k * CM_D + k];
      g[i * CM_D + j] = v / d;
    }
  }
  for (int32_t c = 0; c < CHAINML_OUTPUT_SIZE; ++c) {
    float y[CM_D];
    for (int32_t i = 0; i < CM_D; ++i) {
      float v = cm_rhs[i * CHAINML_OUTPUT_SIZE + c];
      for (int32_t k = 0; k < i; ++k) v -= g[i * CM_D + k] * y[k];
      y[i] = v;
    }
    for (int32_t i = CM_D - 1; i >= 0; --i) {
      float v = y[i] / g[i * CM_D + i];
      for (int32_t k = i + 1; k < CM_D; ++k)
        v -= g[k * CM_D + i] * cm_head[k * CHAINML_OUTPUT_SIZE + c];
      cm_head[i * CHAINML_OUTPUT_SIZE + c] = v;
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


def activation_sizes(model: Int8Model) -> list[int]:
    """Element count of the input and of every layer's output."""
    sizes = [model.input_size]
    width, channels = model.input_shape if len(model.input_shape) == 2 else (0, 0)
    for layer in model.layers:
        if layer.kind == "dense":
            assert layer.weight is not None
            sizes.append(layer.weight.shape[0])
        elif layer.kind == "conv":
            assert layer.weight is not None
            width = (width - layer.weight.shape[1]) // layer.stride + 1
            channels = layer.weight.shape[0]
            sizes.append(width * channels)
        else:
            sizes.append(channels)
            width = 1
    return sizes


def generate(model: Int8Model, prefix: str = "chainml_model") -> dict[str, str]:
    """``{prefix}.h`` and ``{prefix}.c`` for ``model``."""
    sizes = activation_sizes(model)
    inner = sizes[1:-1] or [1]
    buf = max(inner)
    guard = c_identifier(prefix).upper() + "_H"
    feature_scale = model.layers[-2].output_scale if len(model.layers) > 1 else model.input_scale
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
        f'#include "{prefix}.h"\n\n',
        RUNTIME,
        "\n",
        f"static int8_t cm_buf_a[{buf}];\nstatic int8_t cm_buf_b[{buf}];\n\n",
    ]
    for i, layer in enumerate(model.layers):
        # Zero points and clamps live in flash too, so the code (and its size) depends only on
        # the architecture, never on the weights' values.
        q = np.array([layer.input_zp, layer.output_zp, layer.act_min, layer.act_max])
        parts.append(_array("int32_t", f"cm_q{i}", q))
        if layer.kind == "avgpool":
            continue
        assert layer.weight is not None
        parts.append(_array("int8_t", f"cm_w{i}", layer.weight))
        parts.append(_array("int32_t", f"cm_b{i}", layer.bias, 8))  # type: ignore[arg-type]
        parts.append(_array("int32_t", f"cm_m{i}", layer.multiplier, 8))  # type: ignore[arg-type]
        parts.append(_array("int32_t", f"cm_s{i}", layer.shift, 16))  # type: ignore[arg-type]
    parts.append(_run_function(model, len(model.layers) - 1, "chainml_features", "features"))
    parts.append(
        "void chainml_infer(const int8_t *input, int8_t *output) {\n"
        + _calls(model, len(model.layers), "output")
        + "}\n"
    )
    parts.append(ADAPT)
    return {f"{prefix}.h": header, f"{prefix}.c": "".join(parts)}


def _run_function(model: Int8Model, n_layers: int, name: str, out: str) -> str:
    if n_layers == 0:
        body = f"  for (int32_t i = 0; i < {model.input_size}; ++i) {out}[i] = input[i];\n"
    else:
        body = _calls(model, n_layers, out)
    return f"void {name}(const int8_t *input, int8_t *{out}) {{\n{body}}}\n\n"


def _calls(model: Int8Model, n_layers: int, out: str) -> str:
    sizes = activation_sizes(model)
    width, channels = model.input_shape if len(model.input_shape) == 2 else (0, 0)
    src = "input"
    lines = []
    for i in range(n_layers):
        layer = model.layers[i]
        dst = out if i == n_layers - 1 else ("cm_buf_a" if i % 2 == 0 else "cm_buf_b")
        lines.append("  " + _call(layer, i, src, dst, sizes[i], width, channels) + "\n")
        if layer.kind == "conv":
            assert layer.weight is not None
            width = (width - layer.weight.shape[1]) // layer.stride + 1
            channels = layer.weight.shape[0]
        elif layer.kind == "avgpool":
            width = 1
        src = dst
    return "".join(lines)


def _call(layer: Q8Layer, i: int, src: str, dst: str, n_in: int, width: int, channels: int) -> str:
    if layer.kind == "avgpool":
        return f"cm_avgpool({src}, {dst}, {width}, {channels}, cm_q{i});"
    assert layer.weight is not None
    q = f"cm_w{i}, cm_b{i}, cm_m{i}, cm_s{i}, cm_q{i}"
    if layer.kind == "dense":
        return f"cm_dense({src}, {dst}, {n_in}, {layer.weight.shape[0]}, {q});"
    o, k, _ = layer.weight.shape
    w_out = (width - k) // layer.stride + 1
    return f"cm_conv({src}, {dst}, {channels}, {w_out}, {o}, {k}, {layer.stride}, {q});"

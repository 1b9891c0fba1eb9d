"""The ``.tflite`` flatbuffer of an int8 model, and a runner on the real TFLite Micro interpreter.

The flatbuffer is written with the TFLite schema classes that ship inside the ``tflite-micro``
wheel (no TensorFlow needed). Operators: ``FULLY_CONNECTED`` and ``CONV_2D`` (a 1-D convolution
as a 1 x K kernel over NHWC with height 1), both int8 with per-channel weight scales and a fused
ReLU, and ``AVERAGE_POOL_2D`` for global average pooling. Constant buffers are 16-byte aligned,
as TFLM expects on a device.
"""

from __future__ import annotations

import numpy as np

from chainml.errors import ConfigError, ToolchainError
from chainml.mcu.int8 import Int8Model, Q8Layer

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
DEFAULT_ARENA = 64 * 1024


def _schema():
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    except ImportError as exc:
        raise ToolchainError(
            "the tflite-micro Python package is missing; run `make setup`"
        ) from exc
    return fb


def _builder():
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        """Aligns every byte vector (the constant buffers) to 16 bytes."""

        def CreateNumpyVector(self, x: np.ndarray) -> int:
            if x.dtype != np.uint8:
                return super().CreateNumpyVector(x)
            self.StartVector(1, x.size, 16)
            payload = x.tobytes()
            self.head = self.head - len(payload)
            self.Bytes[self.head : self.head + len(payload)] = payload
            return self.EndVector()

    return AlignedBuilder(4096)


def to_tflite(model: Int8Model) -> bytes:
    """Serialize ``model`` as a TFLite flatbuffer that TFLite Micro runs bit-exact."""
    fb = _schema()
    tensors: list = []
    buffers = [fb.BufferT()]  # buffer 0 is the conventional empty buffer
    opcodes: dict[int, int] = {}
    operators = []

    def quant(scales, zps, dim: int = 0):
        q = fb.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(scales)]
        q.zeroPoint = [int(z) for z in np.atleast_1d(zps)]
        q.quantizedDimension = dim
        return q

    def tensor(name: str, shape, ttype: int, q, data: np.ndarray | None = None) -> int:
        t = fb.TensorT()
        t.name = name
        t.shape = np.array(shape, dtype=np.int32)
        t.type = ttype
        t.quantization = q
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def opcode(code: int) -> int:
        if code not in opcodes:
            opcodes[code] = len(opcodes)
        return opcodes[code]

    if len(model.input_shape) == 2:
        width, channels = model.input_shape
        shape: list[int] = [1, 1, width, channels]
    else:
        shape = [1, model.input_size]
    current = tensor("input", shape, fb.TensorType.INT8, quant(model.input_scale, model.input_zp))
    first_input = current
    act = {True: fb.ActivationFunctionType.RELU, False: fb.ActivationFunctionType.NONE}
    for i, layer in enumerate(model.layers):
        op = fb.OperatorT()
        if layer.kind == "avgpool":
            _, _, width, channels = shape
            shape = [1, 1, 1, channels]
            out = tensor(
                f"l{i}_out", shape, fb.TensorType.INT8, quant(layer.output_scale, layer.output_zp)
            )
            opts = fb.Pool2DOptionsT()
            opts.padding = fb.Padding.VALID
            opts.strideW = opts.strideH = 1
            opts.filterWidth, opts.filterHeight = width, 1
            opts.fusedActivationFunction = fb.ActivationFunctionType.NONE
            op.opcodeIndex = opcode(fb.BuiltinOperator.AVERAGE_POOL_2D)
            op.builtinOptionsType = fb.BuiltinOptions.Pool2DOptions
            op.builtinOptions = opts
            op.inputs = np.array([current], dtype=np.int32)
        else:
            w_t, b_t = _weights(fb, tensor, quant, model, i, layer)
            o = layer.weight.shape[0]  # type: ignore[union-attr]
            if layer.kind == "dense":
                shape = [1, o]
                opts = fb.FullyConnectedOptionsT()
                opts.fusedActivationFunction = act[layer.relu]
                op.opcodeIndex = opcode(fb.BuiltinOperator.FULLY_CONNECTED)
                op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
            else:
                kernel = layer.weight.shape[1]  # type: ignore[union-attr]
                shape = [1, 1, (shape[2] - kernel) // layer.stride + 1, o]
                opts = fb.Conv2DOptionsT()
                opts.padding = fb.Padding.VALID
                opts.strideW, opts.strideH = layer.stride, 1
                opts.fusedActivationFunction = act[layer.relu]
                op.opcodeIndex = opcode(fb.BuiltinOperator.CONV_2D)
                op.builtinOptionsType = fb.BuiltinOptions.Conv2DOptions
            op.builtinOptions = opts
            out = tensor(
                f"l{i}_out", shape, fb.TensorType.INT8, quant(layer.output_scale, layer.output_zp)
            )
            op.inputs = np.array([current, w_t, b_t], dtype=np.int32)
        op.outputs = np.array([out], dtype=np.int32)
        operators.append(op)
        current = out

    sub = fb.SubGraphT()
    sub.tensors = tensors
    sub.inputs = np.array([first_input], dtype=np.int32)
    sub.outputs = np.array([current], dtype=np.int32)
    sub.operators = operators
    sub.name = "main"
    m = fb.ModelT()
    m.version = SCHEMA_VERSION
    m.description = f"chainml {model.name}"
    m.subgraphs = [sub]
    m.buffers = buffers
    codes = []
    for code in sorted(opcodes, key=opcodes.get):  # type: ignore[arg-type]
        oc = fb.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        codes.append(oc)
    m.operatorCodes = codes
    builder = _builder()
    builder.Finish(m.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _weights(fb, tensor, quant, model: Int8Model, i: int, layer: Q8Layer) -> tuple[int, int]:
    assert layer.weight is not None and layer.weight_scales is not None and layer.bias is not None
    o = layer.weight.shape[0]
    zeros = np.zeros(o, dtype=np.int64)
    prev_scale = model.input_scale if i == 0 else model.layers[i - 1].output_scale
    if layer.kind == "dense":
        w_shape = list(layer.weight.shape)
    else:
        _, k, c = layer.weight.shape
        w_shape = [o, 1, k, c]
    w_t = tensor(
        f"l{i}_w", w_shape, fb.TensorType.INT8, quant(layer.weight_scales, zeros), layer.weight
    )
    bias_scales = (np.float32(prev_scale) * layer.weight_scales).astype(np.float32)
    b_t = tensor(f"l{i}_b", [o], fb.TensorType.INT32, quant(bias_scales, zeros), layer.bias)
    return w_t, b_t


def tflm_run(tflite: bytes, x: np.ndarray, arena_size: int = DEFAULT_ARENA) -> np.ndarray:
    """Run int8 inputs ``(N, ...)`` through TFLite Micro's interpreter, one inference each."""
    try:
        from tflite_micro import runtime
    except ImportError as exc:
        raise ToolchainError(
            "the tflite-micro Python package is missing; run `make setup`"
        ) from exc
    try:
        interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena_size)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"TFLite Micro refused the model: {exc}") from exc
    shape = tuple(interp.get_input_details(0)["shape"])
    outs = []
    for row in np.asarray(x, dtype=np.int8):
        interp.set_input(row.reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs).astype(np.int8)

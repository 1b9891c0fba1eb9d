"""TinyML deployment: int8 models that run bit-exact in TFLite Micro and on a Cortex-M4.

One idea per module:

- ``graph``: the float layer graph of a chainml model (and of pruned or distilled variants);
- ``int8``: TFLite Micro's integer arithmetic and the Python int8 reference;
- ``ptq``: post-training quantization of a float graph into an int8 model;
- ``tflite``: the ``.tflite`` flatbuffer writer and the real TFLM interpreter runner;
- ``codegen``: C source + header with the weights (int8, packed int4 or bitmask-sparse), the
  inference function and the device protocol's head re-fit;
- ``armbuild``: the arm-none-eabi-gcc build for Cortex-M4 and its measured flash/RAM;
- ``qemu``: test vectors under ``qemu-system-arm -M mps2-an386`` and instruction counts;
- ``evaluate``: the device protocol's score (ridge head re-fit with the version recipe's shots
  and strength, on held-out tasks), for float graphs and int8 models alike;
- ``prune`` and ``distill``: smaller models for the same device, trained with that protocol's
  loss; ``compress``: the ``--compress`` specs that combine them;
- ``export``: ledger version -> verified weights -> artifact bundle -> store + chain.
"""

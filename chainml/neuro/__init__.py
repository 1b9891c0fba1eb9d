"""Neuromorphic devices: spiking models, meta-learned plasticity, chip bit depth and noise,
event-driven updates and the meta-regulator.

Modules (one idea each): :mod:`~chainml.neuro.lif` (LIF neurons, surrogate gradient in plain
tensor ops), :mod:`~chainml.neuro.quant` (bit depth, stochastic rounding),
:mod:`~chainml.neuro.noise` (synaptic and membrane noise), :mod:`~chainml.neuro.chip` (the chip
conditions together, seeded), :mod:`~chainml.neuro.plasticity` (the meta-learned three-factor
rule and the plastic network), :mod:`~chainml.neuro.metatrain` (meta-training the rule, with
noise injection), :mod:`~chainml.neuro.evaluate` (few-shot evaluation on the chip),
:mod:`~chainml.neuro.energy` (synaptic-event energy and radio), :mod:`~chainml.neuro.events`
(the event-driven trigger), :mod:`~chainml.neuro.regulator` (the meta-regulator) and
:mod:`~chainml.neuro.scenario` (fleets of devices on drifting streams).

Why a small torch.func implementation rather than snnTorch or Norse: the engine adapts with
``torch.func.grad`` and batches with ``vmap``; snnTorch 1.0's surrogates are old-style autograd
Functions that both transforms reject, and Norse 1.1 pulls a CUDA torch unless installed with
``--no-deps`` and needs a patch for ``vmap`` (NOTES.md, "Spiking networks"). A LIF layer with a
straight-through surrogate is twenty lines of plain tensor ops that every transform supports.

This package imports :mod:`chainml.meta` and :mod:`chainml.device`; ``chainml.meta.models``
imports only :mod:`chainml.neuro.lif` (torch only, lazily), so importing the engine does not
import the rest of this package.
"""

"""Neuromorphic devices: spiking models, meta-learned plasticity, chip bit depth and noise,
event-driven updates and the meta-regulator.

Modules (one idea each): :mod:`~chainml.neuro.lif` (LIF neurons, surrogate gradient in plain
tensor ops), :mod:`~chainml.neuro.quant` (bit depth, stochastic rounding),
:mod:`~chainml.neuro.noise` (synaptic and membrane noise), :mod:`~chainml.neuro.chip` (the chip
conditions together, seeded), :mod:`~chainml.neuro.plasticity` (the meta-learned three-factor
rule and the plastic network), :mod:`~chainml.neuro.rule` (the rule's meta-parameters inside
the registered ``snn-*`` models), :mod:`~chainml.neuro.node` (the swarm's spiking device: node
step, device protocol, event decision), :mod:`~chainml.neuro.fleet` (the swarm's rounds in
process), :mod:`~chainml.neuro.metatrain` (meta-training the rule, with noise injection),
:mod:`~chainml.neuro.evaluate` (few-shot evaluation on any chip),
:mod:`~chainml.neuro.energy` (synaptic-event energy and radio), :mod:`~chainml.neuro.events`
(the event-driven trigger), :mod:`~chainml.neuro.regulator` (the meta-regulator) and
:mod:`~chainml.neuro.scenario` (fleets of devices on drifting streams).

Why a small torch.func implementation rather than snnTorch or Norse: the engine adapts with
``torch.func.grad`` and batches with ``vmap``; snnTorch 1.0's surrogates are old-style autograd
Functions that both transforms reject, and Norse 1.1 pulls a CUDA torch unless installed with
``--no-deps`` and needs a patch for ``vmap`` (NOTES.md, "Spiking networks"). A LIF layer with a
straight-through surrogate is twenty lines of plain tensor ops that every transform supports.

This package imports :mod:`chainml.meta`, :mod:`chainml.device` and :mod:`chainml.aggregate`
(and the fleet the swarm's commitment size); ``chainml.meta.models`` imports only
:mod:`chainml.neuro.lif` and :mod:`chainml.neuro.rule` (torch only, lazily), and the engine
reaches :mod:`chainml.neuro.node` only lazily, when a recipe is spiking.
"""

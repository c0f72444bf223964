"""Helpers around BasicSR's generator architectures; this package defines no architecture of its own.

* :mod:`nriqa_basicsr.archs.lora` — LoRA adapters on a frozen generator (injection, state dicts, merged export);
* :mod:`nriqa_basicsr.archs.detect` — the ``network_g`` of a released checkpoint, read from its state dict.

Generators are BasicSR's own (``RRDBNet``, ``SwinIR``, ...), built from ``ARCH_REGISTRY``; nothing here is
registered, so importing this package has no side effects.
"""

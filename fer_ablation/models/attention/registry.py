"""The attention registry, after timm's ``create_attn``: a name -> how to build the module, where it goes by
default, and its options with their defaults.

    register_attention("se", lambda site, reduction: SE(site.channels, r=reduction),
                       placement="blocks", options={"reduction": 16})

`build(site, **options)` gets the place it is built for (`Site`: channels, location, stride) and every
option of the entry (defaults filled in). `models.resnet.build_model` puts the module where the
placement says (see its docstring); modules that share a place run in registration order. The built-in
modules are registered in `fer_ablation/models/attention/__init__.py`; a new module is its file, one
`register_attention` call there, and its test. It is then `model.attention=<name>`, with its options
under `model.options.<name>` and its placement under `model.placement.<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

PLACEMENTS = ("stem", "last", "first_last", "blocks", "stages")
# Where a "blocks" module goes in each Bottleneck: after bn3 (`attention`), after conv2
# (`conv2_attention`, SimAM's place), or in place of the 3x3 conv itself (`conv2`, ACmix; only "blocks").
BLOCK_SLOTS = ("attention", "conv2_attention", "conv2")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Site(NamedTuple):
    """Where a module is built: its channels, its location (stem, layer1..layer4) and, for the
    `conv2` slot, the stride of the convolution it replaces."""

    channels: int
    location: str
    stride: int = 1


@dataclass(frozen=True)
class AttentionEntry:
    name: str
    build: Callable[..., nn.Module]  # build(site: Site, **options) -> nn.Module
    placement: str  # the default placement
    options: Mapping[str, Any] = field(default_factory=dict)  # option -> default
    block_slot: str = "attention"
    check: Callable[[dict], None] | None = None  # raises ValueError on bad option values, before any building

    @property
    def placements(self) -> tuple[str, ...]:
        """The placements this module accepts (a conv2 replacement exists only inside blocks)."""
        return ("blocks",) if self.block_slot == "conv2" else PLACEMENTS

    def resolved_options(self, given: Mapping[str, Any] | None) -> dict:
        """The entry's defaults with `given` on top; an unknown option raises ValueError naming the valid ones."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for attention {self.name!r}; "
                             f"valid: {', '.join(self.options) or 'none'}")
        resolved = {**self.options, **given}
        if self.check is not None:
            self.check(resolved)
        return resolved


_REGISTRY: dict[str, AttentionEntry] = {}


def register_attention(name: str, build: Callable[..., nn.Module], *, placement: str,
                       options: Mapping[str, Any] | None = None, block_slot: str = "attention",
                       check: Callable[[dict], None] | None = None) -> AttentionEntry:
    """Register an attention module under `name` (lower-case, no `+`; `none` is reserved)."""
    if not isinstance(name, str) or not _NAME.match(name) or name == "none":
        raise ValueError(f"attention name {name!r}: expected lower-case letters, digits and '_' (not 'none')")
    if name in _REGISTRY:
        raise ValueError(f"attention {name!r} is already registered")
    if block_slot not in BLOCK_SLOTS:
        raise ValueError(f"block_slot {block_slot!r} for {name!r}; valid: {', '.join(BLOCK_SLOTS)}")
    entry = AttentionEntry(name, build, placement, dict(options or {}), block_slot, check)
    if placement not in entry.placements:
        raise ValueError(f"default placement {placement!r} for {name!r}; valid: {', '.join(entry.placements)}")
    _REGISTRY[name] = entry
    return entry


def unregister_attention(name: str) -> None:
    """Remove a registered module (a test's toy module, when the test is done)."""
    get_attention(name)
    del _REGISTRY[name]


def get_attention(name: str) -> AttentionEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown attention {name!r}; valid: {', '.join(('none', *_REGISTRY))}")
    return _REGISTRY[name]


def attention_names() -> tuple[str, ...]:
    """The registered modules, in registration order (the order modules at one place run in)."""
    return tuple(_REGISTRY)

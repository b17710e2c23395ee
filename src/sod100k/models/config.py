"""The layer config: a typed, validated, JSON-serialisable description of one CSNet.

A CSNet is fully described by the channel widths of every scale branch of every gOctConv
unit (pruning changes only these numbers), the head's widths per branch and per dilation,
and the stage depths. See the architecture page of the documentation
(``docs/architecture.md``) for the layout and a JSON example.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STAGE_DEPTHS = (3, 4, 6, 4)
DEFAULT_DILATIONS = (1, 2, 4, 8, 16)
#: Scale split of the unpruned presets: half the channels at full, half at half resolution.
DEFAULT_SPLIT = (0.5, 0.5)


class ConfigError(ValueError):
    """A layer config that cannot describe a working CSNet."""


Widths = tuple[int, ...]


@dataclass(frozen=True)
class UnitConfig:
    """One ILBlock's gOctConv: channels per scale branch in and out.

    Attributes:
        in_channels: Width of every input branch; entry ``k`` is the branch at 1/2^k of
            the stage's base resolution, 0 means the branch is absent.
        out_channels: Width of every output branch, likewise.
    """

    in_channels: Widths
    out_channels: Widths


@dataclass(frozen=True)
class HeadConfig:
    """Widths of CSNet's cross-stage fusion head.

    Attributes:
        in_channels: First-branch widths of the last unit of stages 2, 3 and 4.
        fuse_channels: Output width of the 1x1 gOctCBR, per branch.
        dilation_channels: Per branch, the output width of the 3x3 conv of each
            dilation in ``dilations`` (0 removes that conv).
        out_channels: Width of the single-scale merge before the classifier.
        dilations: Dilations of the multi-scale block (default 1, 2, 4, 8, 16).
    """

    in_channels: Widths
    fuse_channels: Widths
    dilation_channels: tuple[Widths, ...]
    out_channels: int
    dilations: Widths = DEFAULT_DILATIONS

    @property
    def multiscale_channels(self) -> Widths:
        """Output width of each branch's dilated block (the sum of its dilation widths)."""
        return tuple(sum(d) for d in self.dilation_channels)


@dataclass(frozen=True)
class LayerConfig:
    """Channel widths of every unit of a CSNet, plus its head and stage depths.

    ``units[0]`` is the stem block (stage 0); then ``stage_depths[s]`` blocks per stage.
    The first block of stages 2, 3 and 4 has stride 2; the head taps the last blocks of
    stages 2, 3 and 4 (1/2, 1/4 and 1/8 of the input resolution). Pruning changes only
    these numbers, so a pruned net is rebuilt from its config alone.

    Attributes:
        units: One entry per ILBlock, in forward order.
        head: The head's widths.
        stage_depths: Blocks in stages 1 to 4 (default 3, 4, 6, 4).
        name: A label (a preset name, or the checkpoint's); not part of equality.

    Raises:
        ConfigError: On construction, when the widths cannot describe a working CSNet
            (see [`validate`][sod100k.models.config.validate]).
    """

    units: tuple[UnitConfig, ...]
    head: HeadConfig
    stage_depths: Widths = DEFAULT_STAGE_DEPTHS
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        validate(self)

    # -- structure -----------------------------------------------------------------
    def stage_of(self) -> list[tuple[int, int]]:
        """Where each unit sits.

        Returns:
            ``(stage, index in stage)`` of every unit, in order; stage 0 is the stem.
        """
        out = [(0, 0)]
        for s, depth in enumerate(self.stage_depths, start=1):
            out.extend((s, b) for b in range(depth))
        return out

    def stride_of(self, unit: int) -> int:
        """Stride of unit ``unit``'s gOctConv.

        Args:
            unit: Index into ``units``.

        Returns:
            2 for the first block of stages 2, 3 and 4, else 1.
        """
        stage, index = self.stage_of()[unit]
        return 2 if stage >= 2 and index == 0 else 1

    def last_unit_of_stage(self, stage: int) -> int:
        """Index of the last unit of ``stage``.

        Args:
            stage: 0 (the stem) to 4.

        Returns:
            An index into ``units``.
        """
        return sum((1, *self.stage_depths)[: stage + 1]) - 1

    @property
    def tap_units(self) -> tuple[int, int, int]:
        """Units whose first output branch feeds the head (last of stages 2, 3, 4)."""
        return tuple(self.last_unit_of_stage(s) for s in (2, 3, 4))  # type: ignore[return-value]

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data.

        Returns:
            A dict of lists and numbers, tagged ``"format": "sod100k.layer_config/1"``.
        """
        d = json.loads(json.dumps(asdict(self)))  # tuples -> lists, as JSON has them
        d["format"] = "sod100k.layer_config/1"
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """The config as a JSON string.

        Args:
            indent: Passed to ``json.dumps``; ``None`` for one line.

        Returns:
            The JSON text of ``to_dict()``.
        """
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically.

        Args:
            path: File to write.
        """
        from sod100k.utils.files import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerConfig:
        """Build a config from data shaped as ``to_dict`` writes it.

        Args:
            d: The data; ``stage_depths``, ``dilations`` and ``name`` may be omitted.

        Returns:
            The validated config.

        Raises:
            ConfigError: A field is missing or malformed, or the widths do not fit.
        """
        try:
            units = tuple(
                UnitConfig(_widths(u["in_channels"]), _widths(u["out_channels"]))
                for u in d["units"]
            )
            h = d["head"]
            head = HeadConfig(
                in_channels=_widths(h["in_channels"]),
                fuse_channels=_widths(h["fuse_channels"]),
                dilation_channels=tuple(_widths(x) for x in h["dilation_channels"]),
                out_channels=_int(h["out_channels"]),
                dilations=_widths(h.get("dilations", DEFAULT_DILATIONS)),
            )
            depths = _widths(d.get("stage_depths", DEFAULT_STAGE_DEPTHS))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"layer config is missing or has a malformed field: {e}") from e
        return cls(units=units, head=head, stage_depths=depths, name=str(d.get("name", "")))

    @classmethod
    def from_json(cls, text: str) -> LayerConfig:
        """Parse a config from JSON text.

        Args:
            text: A JSON object as ``to_json`` writes it.

        Returns:
            The validated config.

        Raises:
            ConfigError: Invalid JSON, not an object, or widths that do not fit.
        """
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"layer config is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise ConfigError("layer config JSON must be an object")
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | Path) -> LayerConfig:
        """Read a config from a JSON file.

        Args:
            path: The file.

        Returns:
            The validated config.

        Raises:
            ConfigError: The file cannot be read or holds no valid config; the message
                names the file.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read layer config: {e}") from e
        try:
            return cls.from_json(text)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e

    def with_name(self, name: str) -> LayerConfig:
        """The same widths under another name.

        Args:
            name: The new label.

        Returns:
            A new config.
        """
        return LayerConfig(self.units, self.head, self.stage_depths, name)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise ConfigError(f"expected an integer channel count, got {v!r}")
    return int(v)


def _widths(v: Any) -> Widths:
    if not isinstance(v, list | tuple):
        raise ConfigError(f"expected a list of channel counts, got {v!r}")
    return tuple(_int(x) for x in v)


def validate(cfg: LayerConfig) -> None:
    """Check that ``cfg`` describes a CSNet that can be built.

    Checks the unit count against the stage depths, that consecutive units' widths
    chain, that unit 0 takes the RGB image, and the head's widths against the tapped
    units.

    Args:
        cfg: The config to check.

    Raises:
        ConfigError: With a message naming the first unit or head field that is wrong.
    """
    depths = cfg.stage_depths
    if len(depths) != 4 or any(d < 1 for d in depths):
        raise ConfigError(f"stage_depths must be 4 positive integers, got {list(depths)}")
    expected = 1 + sum(depths)
    if len(cfg.units) != expected:
        raise ConfigError(
            f"stage depths {list(depths)} need {expected} units, config has {len(cfg.units)}"
        )
    for i, unit in enumerate(cfg.units):
        for side, widths in (("in", unit.in_channels), ("out", unit.out_channels)):
            if not widths:
                raise ConfigError(f"unit {i}: {side}_channels is empty")
            if any(w < 0 for w in widths):
                raise ConfigError(f"unit {i}: negative width in {side}_channels {list(widths)}")
            if sum(widths) == 0:
                raise ConfigError(f"unit {i}: all {side}_channels are zero")
        if i > 0 and unit.in_channels != cfg.units[i - 1].out_channels:
            raise ConfigError(
                f"unit {i}: in_channels {list(unit.in_channels)} do not match unit {i - 1}'s "
                f"out_channels {list(cfg.units[i - 1].out_channels)}"
            )
    if cfg.units[0].in_channels != (3,):
        raise ConfigError(
            f"unit 0 must take the RGB image, in_channels=[3], got {list(cfg.units[0].in_channels)}"
        )
    _validate_head(cfg)


def _validate_head(cfg: LayerConfig) -> None:
    h = cfg.head
    n = len(cfg.tap_units)
    taps = tuple(cfg.units[u].out_channels[0] for u in cfg.tap_units)
    if h.in_channels != taps:
        raise ConfigError(
            f"head in_channels {list(h.in_channels)} must equal the first-branch widths "
            f"{list(taps)} of units {list(cfg.tap_units)}"
        )
    if len(h.fuse_channels) != n or len(h.dilation_channels) != n:
        raise ConfigError(
            f"head needs {n} fuse widths and {n} dilation-width lists, got "
            f"{len(h.fuse_channels)} and {len(h.dilation_channels)}"
        )
    for k, dils in enumerate(h.dilation_channels):
        if len(dils) != len(h.dilations):
            raise ConfigError(
                f"head branch {k}: {len(dils)} dilation widths for dilations {list(h.dilations)}"
            )
        if any(c < 0 for c in dils):
            raise ConfigError(f"head branch {k}: negative dilation width in {list(dils)}")
        if sum(dils) > 0 and h.fuse_channels[k] == 0:
            raise ConfigError(f"head branch {k}: dilated convs on a branch of width 0")
    if any(c < 0 for c in h.fuse_channels):
        raise ConfigError(f"head fuse_channels has a negative width: {list(h.fuse_channels)}")
    if sum(h.multiscale_channels) == 0:
        raise ConfigError("head: every dilation width is zero")
    if h.out_channels <= 0:
        raise ConfigError(f"head out_channels must be positive, got {h.out_channels}")


def wider_than(cfg: LayerConfig, bound: LayerConfig) -> str | None:
    """Where ``cfg`` has more channels than ``bound``, i.e. why it cannot be ``bound``
    or a pruned form of it (pruning only removes channels).

    Args:
        cfg: A config, for instance a checkpoint's.
        bound: The config it should fit in, for instance a preset's.

    Returns:
        ``None`` when every width of ``cfg`` is at most ``bound``'s (same stage depths,
        branches and dilations); else the first difference, such as ``"unit 0 has 20
        output channels on branch 0, not at most 10"``.
    """
    if cfg.stage_depths != bound.stage_depths:
        return f"stage depths {list(cfg.stage_depths)}, not {list(bound.stage_depths)}"
    pairs = [
        pair
        for i, (a, b) in enumerate(zip(cfg.units, bound.units, strict=True))
        for pair in (
            (f"unit {i} input", a.in_channels, b.in_channels),
            (f"unit {i} output", a.out_channels, b.out_channels),
        )
    ]
    h, hb = cfg.head, bound.head
    if h.dilations != hb.dilations:
        return f"head dilations {list(h.dilations)}, not {list(hb.dilations)}"
    pairs += [("head fuse", h.fuse_channels, hb.fuse_channels)]
    pairs += [
        (f"head dilated branch {k}", a, b)
        for k, (a, b) in enumerate(zip(h.dilation_channels, hb.dilation_channels, strict=True))
    ]
    pairs += [("head merge", (h.out_channels,), (hb.out_channels,))]
    for where, widths, limits in pairs:
        if len(widths) != len(limits):
            return f"{where} has {len(widths)} branches, not {len(limits)}"
        for k, (w, limit) in enumerate(zip(widths, limits, strict=True)):
            if w > limit:
                return f"{where} has {w} channels on branch {k}, not at most {limit}"
    return None


def unpruned(width: int, split: tuple[float, ...] = DEFAULT_SPLIT, name: str = "") -> LayerConfig:
    """The unpruned CSNet of base width ``width``.

    Args:
        width: Base width: 20 for csnet-l-x1, 40 for csnet-l-x2.
        split: Fraction of each unit's channels per scale branch (default half at full,
            half at half resolution).
        name: Label of the config.

    Returns:
        The config of the unpruned net (pruning the released nets started from it).

    Raises:
        ConfigError: ``width`` is not positive or ``split`` does not sum to 1.
    """
    if width <= 0:
        raise ConfigError(f"base width must be positive, got {width}")
    if not split or any(s < 0 for s in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError(f"split must be non-negative fractions summing to 1, got {split}")

    def scaled(w: int) -> Widths:
        return tuple(round(w * s) for s in split)

    w = width
    units = [UnitConfig((3,), scaled(w))]
    units += [UnitConfig(scaled(w), scaled(w)) for _ in range(3)]
    units.append(UnitConfig(scaled(w), scaled(2 * w)))
    units += [UnitConfig(scaled(2 * w), scaled(2 * w)) for _ in range(2)]
    units.append(UnitConfig(scaled(2 * w), (2 * w,)))
    for depth, prev in ((6, 2 * w), (4, 4 * w)):
        units.append(UnitConfig((prev,), scaled(4 * w)))
        units += [UnitConfig(scaled(4 * w), scaled(4 * w)) for _ in range(depth - 2)]
        units.append(UnitConfig(scaled(4 * w), (4 * w,)))
    taps = (2 * w, 4 * w, 4 * w)
    fuse = tuple(t // 3 for t in taps)
    n_dil = len(DEFAULT_DILATIONS)
    dils = tuple(tuple([f // n_dil] * (n_dil - 1) + [f - (f // n_dil) * (n_dil - 1)]) for f in fuse)
    head = HeadConfig(taps, fuse, dils, sum(fuse))
    return LayerConfig(tuple(units), head, DEFAULT_STAGE_DEPTHS, name)

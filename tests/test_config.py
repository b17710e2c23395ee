"""LayerConfig: presets, JSON round trip and validation errors."""

import dataclasses
import json

import pytest

from sod100k.models.config import ConfigError, LayerConfig, UnitConfig, unpruned


def test_unpruned_x1_matches_the_reference_layout():
    cfg = unpruned(20)
    assert len(cfg.units) == 18
    assert cfg.units[0] == UnitConfig((3,), (10, 10))
    assert cfg.units[4] == UnitConfig((10, 10), (20, 20))
    assert cfg.units[7].out_channels == (40,)
    assert cfg.units[8] == UnitConfig((40,), (40, 40))
    assert cfg.units[13].out_channels == (80,)
    assert cfg.units[17].out_channels == (80,)
    assert cfg.head.in_channels == (40, 80, 80)
    assert cfg.head.fuse_channels == (13, 26, 26)
    assert cfg.head.dilation_channels[0] == (2, 2, 2, 2, 5)
    assert cfg.head.out_channels == 65
    assert [cfg.stride_of(i) for i in (0, 1, 4, 5, 8, 14)] == [1, 1, 2, 1, 2, 2]
    assert cfg.tap_units == (7, 13, 17)


def test_json_round_trip(tmp_path):
    cfg = unpruned(40, name="csnet-l-x2")
    path = tmp_path / "cfg.json"
    cfg.save(path)
    again = LayerConfig.load(path)
    assert again == cfg
    assert again.name == "csnet-l-x2"
    assert json.loads(path.read_text())["format"] == "sod100k.layer_config/1"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["units"].pop(), "need 18 units"),
        (lambda d: d.__setitem__("stage_depths", [3, 4, 6]), "4 positive integers"),
        (lambda d: d["units"][3].__setitem__("out_channels", [10, -1]), "negative width"),
        (lambda d: d["units"][3].__setitem__("out_channels", [11, 10]), "do not match"),
        (lambda d: d["units"][0].__setitem__("in_channels", [4]), "RGB"),
        (lambda d: d["head"].__setitem__("in_channels", [40, 80]), "head in_channels"),
        (lambda d: d["head"]["dilation_channels"][0].pop(), "dilation widths"),
        (lambda d: d["units"][2].__setitem__("in_channels", "ten"), "list of channel counts"),
        (lambda d: d["units"][2].__setitem__("in_channels", [10.5, 10]), "integer"),
        (lambda d: d["head"].pop("fuse_channels"), "missing"),
    ],
)
def test_validation_errors_are_precise(mutate, message):
    d = unpruned(20).to_dict()
    mutate(d)
    with pytest.raises(ConfigError, match=message):
        LayerConfig.from_dict(d)


def test_bad_json_and_unreadable_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"c\.json.*not valid JSON"):
        LayerConfig.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        LayerConfig.load(tmp_path / "missing.json")


@pytest.mark.parametrize(("width", "split"), [(0, (0.5, 0.5)), (20, (0.7, 0.7)), (20, ())])
def test_bad_preset_arguments(width, split):
    with pytest.raises(ConfigError):
        unpruned(width, split)


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        unpruned(20).units = ()

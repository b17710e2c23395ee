"""CSNet forward behaviour: any input size >= 16, presets, eval mode."""

import pytest
import torch

from sod100k import create_model, load_model
from sod100k.models.flops import count_params


@pytest.mark.parametrize(("h", "w"), [(16, 16), (17, 33), (75, 100), (224, 224), (300, 161)])
def test_any_input_size(h, w, weights_x1):
    model = load_model("csnet-l-x1", weights=weights_x1)
    with torch.no_grad():
        y = model(torch.randn(2, 3, h, w))
    assert y.shape == (2, 1, h, w)
    assert torch.isfinite(y).all()


def test_without_weights_a_random_preset_in_eval_mode():
    model = load_model("csnet-l-x2")
    assert not model.training
    assert count_params(model) > count_params(load_model("csnet-l-x1"))
    # Untrained BN statistics make eval outputs meaningless; train mode normalises.
    with torch.no_grad():
        y = model.train()(torch.randn(2, 3, 40, 56))
    assert y.shape == (2, 1, 40, 56)
    assert torch.isfinite(y).all()


def test_released_model_at_other_sizes(weights_x2):
    model = load_model("csnet-l-x2", weights=weights_x2)
    with torch.no_grad():
        y = model(torch.zeros(1, 3, 97, 130))
    assert y.shape == (1, 1, 97, 130)


def test_rejects_wrong_input_shape():
    model = create_model("csnet-l-x1").eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 1, 32, 32))

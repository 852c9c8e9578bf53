import pytest
import torch

from components.data.tiny_models import tiny_causal_lm
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.method.config import FeatureConfig
from components.method.feature_network import FeatureNetwork, resolve_layers


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("last", [30]),
        ("middle", [15, 16]),  # averaged, as the authors' code does
        ("quartiles", [7, 15, 22]),
        ("mean", list(range(1, 31))),  # the layers' outputs, not the embeddings
        ([-1, 0, 12], [30, 0, 12]),
    ],
)
def test_layer_choices_for_a_30_layer_model(choice, expected):
    assert resolve_layers(choice, n_hidden=31) == expected


def test_missing_layers_are_refused_with_the_available_range():
    with pytest.raises(ValueError, match=r"hidden states 0\.\.4 \(embeddings \+ 4 layers\); \[7\] do not exist"):
        FeatureNetwork(tiny_causal_lm(num_layers=4), FeatureConfig(layers=[1, 7]))


def test_unknown_feature_settings_are_refused():
    with pytest.raises(ValueError, match="pooling"):
        FeatureConfig(pooling="max")
    with pytest.raises(ValueError, match="extra_forbidden"):
        FeatureConfig(hidden_state_method="concat")


def hidden_tuple(n_hidden: int, *shape: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(*shape) for _ in range(n_hidden))


def test_joint_normalisation_is_over_the_concatenation():
    net = FeatureNetwork(tiny_causal_lm(num_layers=4, hidden_size=16), FeatureConfig(layers="quartiles"))
    feats = net.token_features(hidden_tuple(5, 2, 3, 16))
    assert feats.shape == (2, 3, 48) and net.token_dim == 48
    assert torch.allclose(feats.norm(dim=-1), torch.ones(2, 3))


def test_per_layer_normalisation_and_the_averaged_choices():
    model = tiny_causal_lm(num_layers=4, hidden_size=16)
    hidden = hidden_tuple(5, 2, 3, 16)
    per_layer = FeatureNetwork(model, FeatureConfig(layers=[1, 2], token_norm="per_layer")).token_features(hidden)
    assert torch.allclose(per_layer[..., :16].norm(dim=-1), torch.ones(2, 3))
    mean = FeatureNetwork(model, FeatureConfig(layers="mean", token_norm="none"))
    assert torch.allclose(mean.token_features(hidden), torch.stack(hidden[1:]).mean(0)) and mean.token_dim == 16
    middle = FeatureNetwork(model, FeatureConfig(layers="middle", token_norm="none"))
    assert torch.allclose(middle.token_features(hidden), (hidden[2] + hidden[3]) / 2) and middle.token_dim == 16


@pytest.mark.parametrize(
    ("pooling", "shape"),
    [("last_token", (2, 5, 8)), ("mean", (2, 5, 8)), ("concat", (2, 5, 32)), ("token", (2, 5, 4, 8))],
)
def test_pooling_shapes(pooling, shape):
    net = FeatureNetwork(tiny_causal_lm(), FeatureConfig(pooling=pooling))
    blocks = torch.randn(2, 5, 4, 8)
    pooled = net.pool(blocks)
    assert pooled.shape == shape
    if pooling == "last_token":
        assert torch.equal(pooled, blocks[:, :, -1])


def test_frozen_copy_does_not_follow_the_policy():
    policy = tiny_causal_lm(seed=1)
    net = FeatureNetwork.frozen_copy_of(policy, FeatureConfig(layers="last"))
    assert not any(p.requires_grad for p in net.model.parameters())
    assert all(p.requires_grad for p in policy.parameters())
    layout = StridedLayout(seq_len=12, context=2, stride=2, block_len=2)
    x = torch.randint(2, 101, (1, 12))
    masks = build_strided_masks(layout)
    before = net.ground_truth_features(x, masks)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    assert torch.equal(net.ground_truth_features(x, masks), before)
    assert before.shape == (1, layout.num_blocks, 32)

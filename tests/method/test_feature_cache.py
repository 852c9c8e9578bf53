import json

import pytest
import torch

from components.data.chunk_store import ChunkSplit, load_split, save_split
from components.data.model_loading import build_base_model, resolve_model_spec, save_base_model, weights_sha256
from components.engine.config import SamplingConfig
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.engine.sampler import sample_strided
from components.method.config import FeatureConfig
from components.method.feature_cache import FeatureCache, FeatureCacheError, build_feature_cache, make_cache_key
from components.method.feature_network import FeatureNetwork

LAYOUT = StridedLayout(seq_len=20, context=4, stride=4, block_len=4)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    model, tokenizer, _ = build_base_model(resolve_model_spec("tiny:llama"))
    save_base_model(model, tokenizer, root / "base", root / "tok")
    gen = torch.Generator().manual_seed(0)
    splits = {}
    for name, n in (("train", 10), ("val", 3)):
        ids = torch.randint(1, len(tokenizer), (n, LAYOUT.seq_len), generator=gen, dtype=torch.int32)
        doc_ids = (torch.rand(n, LAYOUT.seq_len, generator=gen) < 0.2).int().cumsum(1).int()
        splits[name] = ChunkSplit(ids, doc_ids, torch.zeros(n, LAYOUT.seq_len, dtype=torch.bool))
    return root, model, splits


@pytest.mark.parametrize("document_masking", [False, True])
def test_cached_features_equal_the_strided_forward(setup, tmp_path, document_masking):
    root, model, splits = setup
    network = FeatureNetwork(model, FeatureConfig(layers="quartiles", pooling="mean"))
    key = make_cache_key(weights_sha256(root / "base"), network, splits, LAYOUT, document_masking)
    stats = build_feature_cache(
        tmp_path / "features",
        network,
        splits,
        LAYOUT,
        key,
        document_masking=document_masking,
        batch_size=4,
        shard_size=4,
    )
    assert stats["train"]["chunks"] == 10
    cache = FeatureCache.open(tmp_path / "features", key)
    assert len(json.loads((tmp_path / "features" / "index.json").read_text())["splits"]["train"]["shards"]) == 3
    for split, chunks in splits.items():
        batch = chunks.batch(slice(None))
        masks = build_strided_masks(LAYOUT, doc_ids=batch.doc_ids if document_masking else None)
        samples = sample_strided(model, batch.input_ids, LAYOUT, SamplingConfig(n_samples=2), masks=masks)
        _, on_the_fly = network.strided_features(batch.input_ids, samples.step_major(LAYOUT), masks)
        cached = cache.features(split)
        assert cached.shape == on_the_fly.shape == (len(chunks), LAYOUT.num_blocks, 3 * model.config.hidden_size)
        assert (cached - on_the_fly).abs().max() <= 1e-4
    assert torch.equal(cache.features("train", [3, 7]), cache.features("train")[[3, 7]])


def test_a_cache_for_other_inputs_is_refused_with_what_differs(setup, tmp_path):
    root, model, splits = setup
    network = FeatureNetwork(model, FeatureConfig(pooling="last_token"))
    key = make_cache_key(weights_sha256(root / "base"), network, splits, LAYOUT, False)
    build_feature_cache(tmp_path / "features", network, splits, LAYOUT, key)

    other_pooling = FeatureNetwork(model, FeatureConfig(pooling="mean"))
    wanted = make_cache_key(weights_sha256(root / "base"), other_pooling, splits, LAYOUT, False)
    with pytest.raises(FeatureCacheError, match=r"pooling \('last_token' cached, 'mean' now\)"):
        FeatureCache.open(tmp_path / "features", wanted)

    changed = dict(splits)
    ids = splits["val"].input_ids.clone()
    ids[0, 0] += 1
    changed["val"] = ChunkSplit(ids, splits["val"].doc_ids, splits["val"].qa_mask)
    wanted = make_cache_key(weights_sha256(root / "base"), network, changed, LAYOUT, False)
    with pytest.raises(FeatureCacheError, match=r"data of split 'val'"):
        FeatureCache.open(tmp_path / "features", wanted)

    only_train = make_cache_key(weights_sha256(root / "base"), network, {"train": splits["train"]}, LAYOUT, False)
    assert FeatureCache.open(tmp_path / "features", only_train).splits() == ["train", "val"]  # a subset is served
    wanted = make_cache_key("0" * 64, network, splits, LAYOUT, False)
    with pytest.raises(FeatureCacheError, match=r"feature network weights"):
        FeatureCache.open(tmp_path / "features", wanted)
    with pytest.raises(FeatureCacheError, match="no feature cache"):
        FeatureCache.open(tmp_path / "elsewhere", key)


def test_a_failed_build_leaves_no_cache_behind(setup, tmp_path):
    root, model, splits = setup
    network = FeatureNetwork(model, FeatureConfig())
    key = make_cache_key(weights_sha256(root / "base"), network, splits, LAYOUT, False)
    broken = {
        "train": ChunkSplit(
            splits["train"].input_ids[:, :7], splits["train"].doc_ids[:, :7], splits["train"].qa_mask[:, :7]
        )
    }
    with pytest.raises(FeatureCacheError, match="chunks of 7 tokens but layout seq_len is 20"):
        build_feature_cache(tmp_path / "features", network, broken, LAYOUT, key)
    assert list(tmp_path.iterdir()) == []


def test_chunk_store_round_trip(setup, tmp_path):
    _, _, splits = setup
    save_split(tmp_path / "train.safetensors", splits["train"])
    loaded = load_split(tmp_path, "train")
    assert torch.equal(loaded.input_ids, splits["train"].input_ids) and loaded.qa_mask.dtype == torch.bool
    assert loaded.content_hash() == splits["train"].content_hash()
    with pytest.raises(FileNotFoundError, match="dvc repro prepare"):
        load_split(tmp_path, "val")


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate_shard", "truncate_index", "delete_shard"])
def test_a_damaged_cache_file_is_refused_by_name_with_the_fix(setup, tmp_path, damage):
    root, model, splits = setup
    network = FeatureNetwork(model, FeatureConfig())
    key = make_cache_key(weights_sha256(root / "base"), network, splits, LAYOUT, False)
    build_feature_cache(tmp_path / "features", network, splits, LAYOUT, key, batch_size=4, shard_size=4)
    shard, index = tmp_path / "features/train-00001.safetensors", tmp_path / "features/index.json"
    if damage == "flip_bytes":  # same size, still a readable safetensors file: only the hash can tell
        data = bytearray(shard.read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
        shard.write_bytes(bytes(data))
    elif damage == "truncate_shard":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "truncate_index":
        index.write_text(index.read_text()[:50])
    else:
        shard.unlink()
    named = index if damage == "truncate_index" else shard
    with pytest.raises(FeatureCacheError, match=rf"{named}.*dvc checkout features.*dvc repro features"):
        FeatureCache.open(tmp_path / "features", key).features("train")

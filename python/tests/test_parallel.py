"""Context-parallel STA (sta.parallel) on two CPU processes over gloo, fp32: Ulysses attention equals the
one-process attention (per-head windows, padded text, 3 heads on 2 ranks, holes), the tile-aware
sharding round trip, the diffusers HunyuanVideo and Wan transformers on 2 ranks equal to 1, and the
errors. Skipped without torch (and, for the model cases, without diffusers)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

torch = pytest.importorskip("torch")

import sta  # noqa: E402
from sta.parallel import TileSharding, UlyssesAttention, head_ranges, valid_world_sizes  # noqa: E402

try:
    sta.library()
except OSError as error:  # pragma: no cover - depends on the build
    pytest.skip(f"libsta_c.so not available: {error}", allow_module_level=True)

try:
    import diffusers  # noqa: F401

    HAVE_DIFFUSERS = True
except ImportError:  # pragma: no cover
    HAVE_DIFFUSERS = False

WORLD = 2
# Canvas with holes on T and H; tile grid (3, 4, 4) = 48 tiles; 3 heads (uneven over 2 ranks).
CANVAS, TILE = (5, 7, 16), (2, 2, 4)
WINDOWS = [(1, 1, 1), (3, 3, 1), (1, 3, 3)]
# Tile grid (3, 3, 3) = 27 tiles of 16 tokens: 13.5 tiles per rank, the shards meet inside tile 13.
SPLIT_CANVAS = (5, 5, 12)
# 5 heads: 3 + 2 over 2 ranks, in 2 chunks each (the exchanges of one chunk overlap the other's attention).
WINDOWS5 = [(1, 1, 1), (3, 3, 1), (1, 3, 3), (3, 1, 3), (1, 1, 3)]


def _cpu_takes_per_row_text() -> bool:
    """Whether per-row text lengths work on the CPU here: natively (a library whose CPU kernels take
    them) or through the package's one-call-per-length path (a library of C interface 1). A library that
    offers the argument but whose CPU kernels refuse it cannot run the padded-text cases."""
    from sta import _library

    if not _library.supports("text_valid"):
        return True
    plan = sta.Plan((2,), (1,), text=2, windows=[(1,)])
    x = torch.zeros(1, 1, plan.sequence_length, 4)
    try:
        sta.attention(x, x, x, plan, text_valid=torch.tensor([1], dtype=torch.int32))
    except sta.STAError:
        return False
    return True


PER_ROW_TEXT = _cpu_takes_per_row_text()
TEXT = 6
TEXT_VALID = [6, 3] if PER_ROW_TEXT else [6, 6]  # row 1 padded where the library can


def _text_valid_argument():
    return torch.tensor(TEXT_VALID, dtype=torch.int32) if PER_ROW_TEXT else None


# MARK: single process


def test_sharding_layout_and_round_trip():
    sharding = TileSharding(CANVAS, TILE, WORLD)
    assert sharding.grid == (3, 4, 4) and sharding.tiles == 48 and sharding.tile_volume == 16
    assert sharding.tokens_per_rank * WORLD == sharding.padded_tokens == 768
    assert [sharding.token_range(r).start for r in range(WORLD)] == [0, 384]
    x = torch.arange(3 * sharding.padded_tokens).reshape(1, sharding.padded_tokens, 3)
    pieces = [sharding.shard(x, rank, dim=1) for rank in range(WORLD)]
    assert torch.equal(torch.cat(pieces, dim=1), x)
    # P dividing nT gives whole tile-frames; otherwise the description names tile coordinates.
    assert "whole slabs" in TileSharding((6, 4, 4), (2, 2, 2), 3).describe()
    assert "tile (1, 2, 0)" in sharding.describe()
    # A world size that does not divide the tiles: equal token ranges that end inside a tile.
    split = TileSharding(SPLIT_CANVAS, TILE, WORLD)
    assert split.tiles == 27 and split.tokens_per_rank == 216 and split.tiles_per_rank == 13.5
    assert split.tile_range(0) == range(0, 14) and split.tile_range(1) == range(13, 27)
    assert "from token 8 of the first tile" in split.describe()


def test_world_size_not_dividing_the_tokens_names_the_sizes_that_would():
    # HunyuanVideo 720p: 300 tiles of 384 tokens share on 8 ranks (37.5 tiles each), not on 7.
    assert TileSharding((30, 48, 80), (6, 8, 8), 8).tokens_per_rank == 14400
    with pytest.raises(ValueError) as error:
        TileSharding((30, 48, 80), (6, 8, 8), 7)
    message = str(error.value)
    assert "115200 tile-order tokens" in message and "300 tiles of 384" in message and "7 ranks" in message
    for size in (2, 3, 4, 5, 6, 8, 10, 12):
        assert f" {size}," in message
    assert valid_world_sizes((21, 45, 80), (6, 8, 8), limit=16) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16]


def test_the_layout_takes_an_asynchronous_collective_result():
    """diffusers' context-parallel gather returns an AsyncCollectiveTensor, a wrapper without storage of
    its own (data_ptr 0): the raster <-> tile permutation reads its values, not a null address."""
    from torch.distributed._functional_collectives import AsyncCollectiveTensor

    plan = sta.Plan(CANVAS, TILE, text=0, windows=[(1, 1, 1)])
    x = torch.randn(2, plan.sequence_length, 3)
    wrapped = AsyncCollectiveTensor(x)
    assert wrapped.data_ptr() == 0
    assert torch.equal(plan.untile(wrapped), plan.untile(x))


def test_head_ranges_are_uneven_and_contiguous():
    assert head_ranges(3, 2) == [range(0, 2), range(2, 3)]
    assert head_ranges(40, 3) == [range(0, 14), range(14, 27), range(27, 40)]
    with pytest.raises(ValueError, match="at least one head per rank"):
        head_ranges(2, 4)


def test_strategy_heads_must_match_the_model():
    attend = UlyssesAttention(CANVAS, TILE, WINDOWS + [(1, 1, 1)])
    q = torch.randn(1, attend.sharding.tokens_per_rank, 3, 8)
    with pytest.raises(ValueError, match="3 heads but the windows name 4"):
        attend(q, q, q)


def test_wrong_local_length_says_how_to_shard():
    attend = UlyssesAttention(CANVAS, TILE, WINDOWS)
    q = torch.randn(1, 560, 3, 8)  # the raster-order length, not the tile-order one
    with pytest.raises(ValueError, match="768 tile-order video tokens"):
        attend(q, q, q)


def test_single_process_equals_sta_attention():
    attend = UlyssesAttention(CANVAS, TILE, WINDOWS)
    q, k, v, text = _inputs(seed=1)
    out, text_out = attend(q, k, v, text=text, text_valid=_text_valid_argument())
    reference, reference_text = _reference(q, k, v, text)
    assert torch.equal(out.transpose(1, 2), reference[0]) or _close(out.transpose(1, 2), reference[0])
    assert _close(text_out.transpose(1, 2), reference_text)


# MARK: helpers shared with the workers


def _inputs(seed: int, batch: int = 2, head_dim: int = 8, windows=WINDOWS, canvas=CANVAS):
    generator = torch.Generator().manual_seed(seed)
    sharding = TileSharding(canvas, TILE, 1)
    plan = sta.Plan(canvas, TILE, text=0, windows=[(1, 1, 1)])
    tensors = []
    for _ in range(3):
        raster = torch.randn(batch, plan.video_tokens, len(windows), head_dim, generator=generator)
        tensors.append(plan.tile(raster, dim=1))  # holes zero
    assert tensors[0].shape[1] == sharding.padded_tokens
    text = tuple(torch.randn(batch, TEXT, len(windows), head_dim, generator=generator) for _ in range(3))
    return (*tensors, text)


def _reference(q, k, v, text, windows=WINDOWS, canvas=CANVAS):
    """One-process STA per batch row (each row its own valid text length) over the whole sequence."""
    outs = []
    for row, valid in enumerate(TEXT_VALID):
        plan = sta.Plan(canvas, TILE, text=TEXT, text_valid=valid, windows=windows)
        full = [torch.cat([x[row:row + 1], t[row:row + 1]], dim=1).transpose(1, 2).contiguous()
                for x, t in zip((q, k, v), text)]
        outs.append(sta.attention(*full, plan)[0])
    out = torch.cat(outs)
    tokens = q.shape[1]
    return (out[:, :, :tokens],), out[:, :, tokens:]


def _close(a, b, tolerance=1e-5):
    return (a - b).abs().max().item() <= tolerance * max(1.0, b.abs().max().item())


# MARK: two processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    try:
        results.update(_case_ulysses(rank, world))
        results.update(_case_gradients(rank, world))
        if HAVE_DIFFUSERS:
            results.update(_case_models(rank, world))
            results.update(_case_model_errors(rank, world))
    except Exception as error:  # reported by the test in the parent
        import traceback

        results["error"] = "".join(traceback.format_exception(error))
    torch.save(results, os.path.join(folder, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def _gather_tokens(x, world):
    """[B, S_local, ...] from every rank -> [B, S, ...] in rank order."""
    import torch.distributed as dist

    pieces = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(pieces, x.contiguous())
    return torch.cat(pieces, dim=1)


def _case_ulysses(rank, world):
    attend = UlyssesAttention(CANVAS, TILE, WINDOWS, group=None)
    # group=None with torch.distributed initialised: the default group.
    assert attend.world_size == world and attend.rank == rank
    q, k, v, text = _inputs(seed=3)
    local = [attend.sharding.shard(x, rank, dim=1) for x in (q, k, v)]
    valid = _text_valid_argument()
    out, text_out = attend(*local, text=text, text_valid=valid)
    full = _gather_tokens(out.contiguous(), world)
    (reference,), reference_text = _reference(q, k, v, text)
    results = {
        "ulysses_video_error": (full.transpose(1, 2) - reference).abs().max().item(),
        "ulysses_text_error": (text_out.transpose(1, 2) - reference_text).abs().max().item(),
        "ulysses_heads": list(attend.local_heads),
        "ulysses_plan_windows": [tuple(w) for w in attend.plan(TEXT).windows],
        "padding_text_rows_zero": PER_ROW_TEXT and bool(text_out[1, TEXT_VALID[1]:].abs().max().item() == 0.0),
    }
    # No text (Wan self-attention): plain video in, video out.
    video_only = attend(*local)
    plan = sta.Plan(CANVAS, TILE, text=0, windows=WINDOWS)
    reference_video = sta.attention(*[x.transpose(1, 2).contiguous() for x in (q, k, v)], plan)[0]
    results["ulysses_video_only_error"] = (
        _gather_tokens(video_only.contiguous(), world).transpose(1, 2) - reference_video).abs().max().item()
    # Shards that meet inside a tile: the same result as one process.
    attend = UlyssesAttention(SPLIT_CANVAS, TILE, WINDOWS)
    q, k, v, text = _inputs(seed=5, canvas=SPLIT_CANVAS)
    local = [attend.sharding.shard(x, rank, dim=1) for x in (q, k, v)]
    out, text_out = attend(*local, text=text, text_valid=valid)
    (reference,), reference_text = _reference(q, k, v, text, canvas=SPLIT_CANVAS)
    results["split_tile_error"] = max(
        (_gather_tokens(out.contiguous(), world).transpose(1, 2) - reference).abs().max().item(),
        (text_out.transpose(1, 2) - reference_text).abs().max().item())
    # 5 heads in 2 chunks per rank, and in 1: the same result.
    q, k, v, text = _inputs(seed=4, windows=WINDOWS5)
    (reference,), reference_text = _reference(q, k, v, text, windows=WINDOWS5)
    for chunks in (2, 1):
        attend = UlyssesAttention(CANVAS, TILE, WINDOWS5, head_chunks=chunks)
        local = [attend.sharding.shard(x, rank, dim=1) for x in (q, k, v)]
        out, text_out = attend(*local, text=text, text_valid=valid)
        full = _gather_tokens(out.contiguous(), world)
        results[f"chunks{chunks}_count"] = len(attend.chunks)
        results[f"chunks{chunks}_parts"] = [[(r.start, r.stop) for r in c] for c in attend.chunks]
        results[f"chunks{chunks}_error"] = max(
            (full.transpose(1, 2) - reference).abs().max().item(),
            (text_out.transpose(1, 2) - reference_text).abs().max().item())
    return results


def _case_gradients(rank, world):
    """Autograd through the exchanges and sta.attention's backward (a library with a backward pass)."""
    from sta import _library

    if not _library.supports("backward"):
        return {"gradient_errors": None}
    attend = UlyssesAttention(CANVAS, TILE, WINDOWS5)  # two chunks per rank
    q, k, v, _ = _inputs(seed=7, windows=WINDOWS5)
    upstream = _inputs(seed=8, windows=WINDOWS5)[0]
    local = [attend.sharding.shard(x, rank, dim=1).clone().requires_grad_() for x in (q, k, v)]
    out = attend(*local)
    (out * attend.sharding.shard(upstream, rank, dim=1)).sum().backward()
    whole = [x.transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v)]
    plan = sta.Plan(CANVAS, TILE, text=0, windows=WINDOWS5)
    (sta.attention(*whole, plan)[0] * upstream.transpose(1, 2)).sum().backward()
    errors = []
    for mine, reference in zip(local, whole):
        expected = attend.sharding.shard(reference.grad.transpose(1, 2), rank, dim=1)
        errors.append((mine.grad - expected).abs().max().item() / expected.abs().max().item())
    return {"gradient_errors": errors}


def tiny_hunyuan(seed=0):
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(seed)
    model = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=3, attention_head_dim=16, num_layers=2,
        num_single_layers=2, num_refiner_layers=1, mlp_ratio=2.0, patch_size=2, patch_size_t=1,
        text_embed_dim=32, pooled_projection_dim=16, rope_axes_dim=(4, 6, 6), guidance_embeds=True)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return model.eval()


def tiny_wan(seed=0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=16, in_channels=4, out_channels=4,
        text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2, rope_max_seq_len=64)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return model.eval()


# Per-layer, per-head windows on the tiny models' (3, 2|4, 4)-tile grids.
HUNYUAN_WINDOWS = {0: [(1, 1, 1), (3, 1, 3), (3, 3, 3)], 1: [(3, 3, 3)] * 3, 2: [(1, 3, 1), (1, 1, 1), (3, 1, 1)],
                   3: [(1, 1, 3)] * 3}
WAN_WINDOWS = [[(1, 1, 1), (3, 3, 1), (1, 3, 3)], [(3, 1, 3), (1, 1, 1), (3, 3, 3)]]


def per_layer(windows):
    from sta.strategy import PerLayer

    return PerLayer(windows)


def hunyuan_inputs(seed=5):
    generator = torch.Generator().manual_seed(seed)
    batch, text = 2, 8
    mask = torch.ones(batch, text, dtype=torch.bool)
    if PER_ROW_TEXT:
        mask[1, 5:] = False  # row 1: 5 valid text tokens
    return dict(hidden_states=torch.randn(batch, 4, 6, 8, 16, generator=generator),  # grid (6, 4, 8)
                timestep=torch.tensor([500, 700]),
                encoder_hidden_states=torch.randn(batch, text, 32, generator=generator),
                encoder_attention_mask=mask, pooled_projections=torch.randn(batch, 16, generator=generator),
                guidance=torch.tensor([6000.0, 6000.0]), return_dict=False)


def wan_inputs(seed=6):
    generator = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(2, 4, 5, 14, 16, generator=generator),  # grid (5, 7, 8): holes
                timestep=torch.tensor([500, 700]),
                encoder_hidden_states=torch.randn(2, 8, 32, generator=generator), return_dict=False)


def _case_models(rank, world):
    from diffusers import ContextParallelConfig

    from sta.parallel.diffusers import enable_sta_parallelism

    results = {}
    # hunyuan_split: tile grid (3, 1, 1), 1.5 tiles per rank.
    cases = (("hunyuan", tiny_hunyuan, hunyuan_inputs, HUNYUAN_WINDOWS, (3, 2, 4)),
             ("hunyuan_split", tiny_hunyuan, hunyuan_inputs, HUNYUAN_WINDOWS, (2, 4, 8)),
             ("wan", tiny_wan, wan_inputs, WAN_WINDOWS, (3, 2, 4)))
    for name, build, inputs, windows, tile in cases:
        with torch.no_grad():
            single = build()
            enable_sta_parallelism(single, per_layer(windows), tile=tile)
            expected = single(**inputs())[0]
            parallel = build()
            state = enable_sta_parallelism(parallel, per_layer(windows), tile=tile,
                                           config=ContextParallelConfig(ulysses_degree=world))
            got = parallel(**inputs())[0]
        results[f"{name}_relative_error"] = ((got - expected).norm() / expected.norm()).item()
        results[f"{name}_shape"] = tuple(got.shape)
        results[f"{name}_state_world"] = state.world_size
    return results


def _case_model_errors(rank, world):
    from diffusers import ContextParallelConfig

    from sta.parallel.diffusers import enable_sta_parallelism

    model = tiny_wan()
    enable_sta_parallelism(model, per_layer(WAN_WINDOWS), tile=(3, 1, 3),
                           config=ContextParallelConfig(ulysses_degree=world))
    arguments = wan_inputs()
    arguments["hidden_states"] = torch.randn(2, 4, 3, 2, 4)  # latent grid (3, 1, 2): one tile of 9 tokens
    try:
        with torch.no_grad():
            model(**arguments)
        return {"odd_tiles_error": None}
    except ValueError as error:
        return {"odd_tiles_error": str(error)}


@pytest.fixture(scope="module")
def two_ranks():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(WORLD, _free_port(), folder), nprocs=WORLD, join=True)
        results = [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(WORLD)]
    for rank, result in enumerate(results):
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
    return results


def test_two_ranks_ulysses_equals_one_process(two_ranks):
    for rank, result in enumerate(two_ranks):
        assert result["ulysses_video_error"] <= 1e-5, rank
        assert result["ulysses_text_error"] <= 1e-5, rank
        assert result["ulysses_video_only_error"] <= 1e-5, rank
        assert result["padding_text_rows_zero"] or not PER_ROW_TEXT
    # 3 heads over 2 ranks: 2 + 1, each rank's plan holds its own heads' windows.
    assert two_ranks[0]["ulysses_heads"] == [0, 1] and two_ranks[1]["ulysses_heads"] == [2]
    assert two_ranks[0]["ulysses_plan_windows"] == WINDOWS[:2]
    assert two_ranks[1]["ulysses_plan_windows"] == WINDOWS[2:]


def test_two_ranks_meeting_inside_a_tile_equal_one_process(two_ranks):
    for rank, result in enumerate(two_ranks):
        assert result["split_tile_error"] <= 1e-5, rank


@pytest.mark.skipif(PER_ROW_TEXT, reason="per-row text lengths run here; the cases above use them")
def test_per_row_text_lengths_need_a_library_whose_cpu_kernels_take_them():
    pytest.skip("the loaded libsta_c offers text_valid but its CPU kernels refuse it: the cases ran with every "
                "text token valid")


def test_two_ranks_head_chunks_equal_one_process(two_ranks):
    for result in two_ranks:
        assert result["chunks2_count"] == 2 and result["chunks1_count"] == 1
        # rank 0 holds heads 0-2 (chunks 0-1, 2), rank 1 heads 3-4 (chunks 3, 4).
        assert result["chunks2_parts"] == [[(0, 2), (3, 4)], [(2, 3), (4, 5)]]
        assert result["chunks2_error"] <= 1e-5 and result["chunks1_error"] <= 1e-5


def test_two_ranks_gradients_equal_one_process(two_ranks):
    if two_ranks[0]["gradient_errors"] is None:
        pytest.skip("the loaded libsta_c has no backward pass (C interface 1)")
    for result in two_ranks:
        assert all(error <= 1e-5 for error in result["gradient_errors"]), result["gradient_errors"]


@pytest.mark.skipif(not HAVE_DIFFUSERS, reason="needs diffusers")
@pytest.mark.parametrize("model", ["hunyuan", "hunyuan_split", "wan"])
def test_two_ranks_model_equals_one_process(two_ranks, model):
    for result in two_ranks:
        assert result[f"{model}_state_world"] == WORLD
        assert result[f"{model}_relative_error"] <= 1e-5
    assert two_ranks[0][f"{model}_shape"] == ((2, 4, 5, 14, 16) if model == "wan" else (2, 4, 6, 8, 16))


@pytest.mark.skipif(not HAVE_DIFFUSERS, reason="needs diffusers")
def test_two_ranks_odd_token_count_is_a_clear_error(two_ranks):
    message = two_ranks[0]["odd_tiles_error"]
    assert message is not None and "cannot share the 9 tile-order tokens" in message
    assert "World sizes that would: 1, 3, 9" in message


@pytest.mark.skipif(not HAVE_DIFFUSERS, reason="needs diffusers")
def test_windows_must_give_one_window_per_head():
    from sta.parallel.diffusers import enable_sta_parallelism

    with pytest.raises(ValueError, match="2 per-head windows; the model has 3 heads"):
        enable_sta_parallelism(tiny_wan(), [(1, 1, 1), (3, 3, 3)], tile=(3, 2, 4))
    with pytest.raises(ValueError) as error:
        enable_sta_parallelism(tiny_wan(), per_layer({0: WAN_WINDOWS[0]}), tile=(3, 2, 4))
    assert "layer 1" in str(error.value)


@pytest.mark.skipif(not HAVE_DIFFUSERS, reason="needs diffusers")
def test_single_process_model_with_full_windows_equals_diffusers():
    """Whole-canvas windows make STA dense attention: the tile-order model equals diffusers' own."""
    from sta.parallel.diffusers import enable_sta_parallelism

    for build, inputs in ((tiny_hunyuan, hunyuan_inputs), (tiny_wan, wan_inputs)):
        with torch.no_grad():
            expected = build()(**inputs())[0]
            model = build()
            enable_sta_parallelism(model, "full", tile=(3, 2, 4))
            got = model(**inputs())[0]
        assert ((got - expected).norm() / expected.norm()).item() <= 1e-5

"""The device harness's cases: small problems that cover holes, text padding, per-head windows, both
dtypes and both head dims, plus the hunyuan timing shape."""

CASES = [
    # 3D with holes on every axis, padded text, per-head windows (one full on an axis), batch 2.
    dict(name="holes3d_bf16_d128", canvas=[7, 9, 11], tile=[2, 4, 4], text_count=40, text_valid=29,
         windows=[[3, 3, 3], [1, 3, 1], [3, 1, 5]], batch=2, head_dim=128, dtype="bf16", check=True),
    dict(name="holes3d_fp16_d64", canvas=[7, 9, 11], tile=[2, 4, 4], text_count=40, text_valid=29,
         windows=[[3, 3, 3], [1, 3, 1], [3, 1, 5]], batch=2, head_dim=64, dtype="fp16", check=True),
    # 2D without holes, tile of 256 (several key blocks per tile), text all valid.
    dict(name="image2d_fp16_d128", canvas=[48, 64], tile=[16, 16], text_count=64, text_valid=64,
         windows=[[1, 3], [3, 3]], batch=1, head_dim=128, dtype="fp16", check=True),
    dict(name="image2d_bf16_d64", canvas=[48, 64], tile=[16, 16], text_count=64, text_valid=64,
         windows=[[1, 3], [3, 3]], batch=1, head_dim=64, dtype="bf16", check=True),
    # 1D, no text, tile not a multiple of the blocks.
    dict(name="seq1d_bf16_d128", canvas=[700], tile=[96], text_count=0, text_valid=0,
         windows=[[3], [5]], batch=1, head_dim=128, dtype="bf16", check=True),
    # HunyuanVideo's 6x8x8 tiles (three key and query blocks per tile) with holes on every axis.
    dict(name="tiles384_bf16_d128", canvas=[11, 15, 38], tile=[6, 8, 8], text_count=77, text_valid=50,
         windows=[[3, 3, 3], [1, 1, 3], [3, 1, 5]], batch=1, head_dim=128, dtype="bf16", check=True),
    dict(name="tiles384_fp16_d64", canvas=[11, 15, 38], tile=[6, 8, 8], text_count=77, text_valid=50,
         windows=[[1, 3, 3], [1, 1, 1]], batch=2, head_dim=64, dtype="fp16", check=True),
    # Timing: hunyuan (3,3,3), mixed windows, head dim 64, and a tuning variant.
    dict(name="hunyuan_bf16_d128", canvas=[30, 48, 80], tile=[6, 8, 8], text_count=256, text_valid=256,
         windows=[[3, 3, 3]] * 24, batch=1, head_dim=128, dtype="bf16", check=False),
    dict(name="hunyuan_bf16_d128_chunk64", canvas=[30, 48, 80], tile=[6, 8, 8], text_count=256, text_valid=256,
         windows=[[3, 3, 3]] * 24, batch=1, head_dim=128, dtype="bf16", check=False, dkv_chunk=64),
    dict(name="hunyuan_mixed_bf16_d128", canvas=[30, 48, 80], tile=[6, 8, 8], text_count=256, text_valid=256,
         windows=[[5, 3, 3]] * 10 + [[1, 6, 10]] * 8 + [[3, 3, 5]] * 3 + [[5, 1, 10]] * 2 + [[5, 6, 1]],
         batch=1, head_dim=128, dtype="bf16", check=False),
    dict(name="hunyuan_fp16_d64", canvas=[30, 48, 80], tile=[6, 8, 8], text_count=256, text_valid=256,
         windows=[[3, 3, 3]] * 24, batch=1, head_dim=64, dtype="fp16", check=False),
]

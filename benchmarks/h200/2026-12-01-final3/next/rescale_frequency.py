"""How often a warp of the Hopper forward rescales O, today and with a slack of 8 (log2 units).

The benchmark's inputs: iid standard-normal q·k/√D scores (log2 units: × log2 e); the hunyuan 3×3×3 layout
gives a query row 54 chunks of 192 keys; a warp holds 16 rows and skips the rescaling only when none of
them moved its running maximum.
"""
import numpy as np

rng = np.random.default_rng(0)
LOG2E = 1.4426950408889634
chunks, keys, rows, trials = 54, 192, 16, 200
today = slack = 0
for _ in range(trials):
    maxima = (rng.standard_normal((rows, chunks, keys)) * LOG2E).max(axis=2)
    m = np.full(rows, -np.inf)
    m_slack = np.full(rows, -np.inf)
    for c in range(chunks):
        y = maxima[:, c]
        moved = y > m
        m = np.maximum(m, y)
        moved_slack = (m_slack == -np.inf) | (y > m_slack + 8)
        m_slack = np.where(moved_slack, np.maximum(m_slack, y), m_slack)
        if c > 0:
            today += moved.any()
            slack += moved_slack.any()
print("chunks after the first with a rescale, per warp: today %.1f of %d, with slack 8: %.2f"
      % (today / trials, chunks - 1, slack / trials))

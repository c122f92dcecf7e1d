"""Applies the turn-taking (ping-pong) change to the sta_sm90_mainloop.cuh and sta_sm90_shape.cuh in the
directory given (a copy of the kernel sources, or of the timeline variant)."""
import sys, os
d = sys.argv[1]
sh = open(os.path.join(d, 'sta_sm90_shape.cuh')).read()
old = 'constexpr uint32_t CONSUMER_BARRIER = 1;\n'
assert sh.count(old) == 1
sh = sh.replace(old, old + '''// Turn barriers: consumer warpgroup w waits on TURN_BARRIER + w (both warpgroups, 256 threads) before it
// issues a wgmma group and hands the turn over by arriving on the other's.
constexpr uint32_t TURN_BARRIER = 3;
''')
open(os.path.join(d, 'sta_sm90_shape.cuh'), 'w').write(sh)

m = open(os.path.join(d, 'sta_sm90_mainloop.cuh')).read()
def rep(old, new, count=1):
    global m
    assert m.count(old) == count, (old, m.count(old))
    m = m.replace(old, new)
rep('''/// Hands a stage's K or V back to the producer''', '''/// Turns: when both consumer warpgroups compute, each issues its wgmma groups only on its turn and then
/// hands the turn to the other, so that one warpgroup's softmax runs while the other's products do.
/// Warpgroup 1 arrives once first, so that warpgroup 0 starts; every issue point takes and passes the turn
/// except warpgroup 1's last, which nobody would take.
__device__ __forceinline__ void take_turn(int cw, bool turns) {
    if (turns) named_barrier_sync(TURN_BARRIER + cw, 2 * WARPGROUP_THREADS);
}
__device__ __forceinline__ void pass_turn(int cw, bool turns) {
    if (turns) named_barrier_arrive(TURN_BARRIER + (1 - cw), 2 * WARPGROUP_THREADS);
}

/// Hands a stage's K or V back to the producer''')
# consumer_step signature + body
rep('''__device__ __forceinline__ ChunkInfo consumer_step(int i, const Pipeline& pipe, uint32_t q_rows, uint32_t scratch,''',
    '''__device__ __forceinline__ ChunkInfo consumer_step(int i, int cw, bool turns, const Pipeline& pipe, uint32_t q_rows, uint32_t scratch,''')
rep('''    issue_qk<NC>(s, q_rows, pipe.k_smem + stage * KV_BYTES);
    issue_pv<NP>(acc, p, pipe.v_smem + previous * KV_BYTES);''', '''    take_turn(cw, turns);
    issue_qk<NC>(s, q_rows, pipe.k_smem + stage * KV_BYTES);
    issue_pv<NP>(acc, p, pipe.v_smem + previous * KV_BYTES);
    pass_turn(cw, turns);''')
rep('''__device__ __forceinline__ void consumer_first(const Pipeline& pipe, ChunkInfo c, uint32_t q_rows, int quad,''',
    '''__device__ __forceinline__ void consumer_first(int cw, bool turns, const Pipeline& pipe, ChunkInfo c, uint32_t q_rows, int quad,''')
rep('''    issue_qk<N>(s, q_rows, pipe.k_smem);
    wgmma_wait<0>();''', '''    take_turn(cw, turns);
    issue_qk<N>(s, q_rows, pipe.k_smem);
    pass_turn(cw, turns);
    wgmma_wait<0>();''')
rep('''__device__ __forceinline__ void consumer_last(int i, const Pipeline& pipe, const uint32_t (&p)[BLOCK_N / 4],''',
    '''__device__ __forceinline__ void consumer_last(int i, int cw, bool turns, const Pipeline& pipe, const uint32_t (&p)[BLOCK_N / 4],''')
rep('''    issue_pv<N>(acc, p, pipe.v_smem + last * KV_BYTES);
    wgmma_wait<0>();''', '''    take_turn(cw, turns);
    issue_pv<N>(acc, p, pipe.v_smem + last * KV_BYTES);
    pass_turn(cw, turns && cw == 0);
    wgmma_wait<0>();''')
rep('''    mbar_wait(pipe.k_full(0), 0);''', '''    const bool turns = computing_consumers(work) == 2;
    if (cw == 1) pass_turn(cw, turns);  // warpgroup 0 goes first
    mbar_wait(pipe.k_full(0), 0);''')
rep('consumer_first<NARROW_N>(pipe,', 'consumer_first<NARROW_N>(cw, turns, pipe,')
rep('consumer_first<BLOCK_N>(pipe,', 'consumer_first<BLOCK_N>(cw, turns, pipe,')
m = m.replace('>(i, pipe, q_rows, scratch,', '>(i, cw, turns, pipe, q_rows, scratch,')
assert m.count('>(i, cw, turns, pipe, q_rows, scratch,') == 4
rep('consumer_last<NARROW_N>(i, pipe, p, acc);', 'consumer_last<NARROW_N>(i, cw, turns, pipe, p, acc);')
rep('consumer_last<BLOCK_N>(i, pipe, p, acc);', 'consumer_last<BLOCK_N>(i, cw, turns, pipe, p, acc);')
open(os.path.join(d, 'sta_sm90_mainloop.cuh'), 'w').write(m)
print('patched', d)

// Sliding Tile Attention, Hopper backward kernel: work decoding. Which key block a CTA owns (text key
// blocks of every (batch, head) first, then the video key blocks, tile by tile in the head's
// `visited_tile` order), which of its key rows are real, and the cursor over the query chunks that attend
// it: the query tiles of the plan's inverse lists (every tile for text keys), then the valid text queries.
// After sta_sm90_bwd_shape.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_bwd_shape.cuh"

namespace sta {

// ---- The CTA's key block ----------------------------------------------------------------------------

/// The key block a CTA owns and the query tiles that attend it.
struct KeyWork {
    int bh;            // batch · heads + head
    int key0;          // first key row (sequence index)
    int keys;          // key rows of the block inside its tile or the text (≤ BLOCK_N; the rest belong elsewhere)
    int tile;          // the key tile, or −1 for text keys
    int offset;        // offset of key0 inside its tile (0 for text)
    bool any;          // some key row of the block is real (no hole, inside the valid text)
    int tile_count;    // query tiles visited before the text queries
    const int* tiles;  // those tiles (nullptr: every tile, for text keys)
    int text_valid;    // valid text positions of the block's batch row (0 ... TEXT_COUNT)
};

/// Whether key row `r` (0 ..< BLOCK_N) of the block is real: inside its tile (or the valid text), no hole.
__device__ __forceinline__ bool key_row_real(const KeyWork& w, int r) {
    if (r >= w.keys) return false;
    if (w.tile < 0) return w.key0 - VIDEO_TOKENS + r < w.text_valid;
    return !is_hole(w.tile, w.offset + r);
}

__device__ __forceinline__ KeyWork decode_key_work(int unit, int heads, int batch, const int* __restrict__ window_of_head,
                                                   const int* __restrict__ query_tile_start,
                                                   const int* __restrict__ query_tiles,
                                                   const int* __restrict__ visit_of_head,
                                                   const int* __restrict__ text_valid, int default_text_valid) {
    KeyWork w;
    const int text_units = batch * heads * TEXT_KBLOCKS;
    if (TEXT_KBLOCKS > 0 && unit < text_units) {
        constexpr int text_kblocks = TEXT_KBLOCKS > 0 ? TEXT_KBLOCKS : 1;  // no division by zero
        w.bh = unit / text_kblocks;
        const int block = unit - w.bh * text_kblocks;
        w.key0 = VIDEO_TOKENS + block * BLOCK_N;
        w.keys = min(BLOCK_N, TEXT_COUNT - block * BLOCK_N);
        w.tile = -1;
        w.offset = 0;
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        w.any = block * BLOCK_N < w.text_valid;
        w.tile_count = NUM_TILES;
        w.tiles = nullptr;
    } else {
        unit -= text_units;
        constexpr int per_head = NUM_TILES * KBLOCKS_PER_TILE;
        w.bh = unit / per_head;
        const int head = w.bh % heads;
        const int rest = unit - w.bh * per_head;
        const int visit = rest / KBLOCKS_PER_TILE;
        w.tile = visited_tile(visit, __ldg(visit_of_head + head));
        w.offset = (rest - visit * KBLOCKS_PER_TILE) * BLOCK_N;
        w.key0 = w.tile * TILE_VOL + w.offset;
        w.keys = min(BLOCK_N, TILE_VOL - w.offset);
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        w.any = true;  // the kernel asks its threads (holes)
        const int row = __ldg(window_of_head + head) * NUM_TILES + w.tile;
        const int start = __ldg(query_tile_start + row);
        w.tile_count = __ldg(query_tile_start + row + 1) - start;
        w.tiles = query_tiles + start;
    }
    return w;
}

// ---- Query chunks -----------------------------------------------------------------------------------

/// One chunk of at most CHUNK query rows: never straddles a tile or the text.
struct QueryChunk {
    int row0;   // first query row (sequence index)
    int valid;  // rows of the chunk inside its tile (or the valid text); the rest are masked
};

/// Walks the query chunks of a key block in order: the live chunks of each query tile, then the valid
/// text chunks. The producer's two roles and the consumers each walk their own cursor over the sequence.
struct QueryCursor {
    int listed;  // index into the query tile list; tile_count for the text
    int part;    // chunk inside the current tile (or the text)
    int parts;   // chunks of the current tile (or the text)
    int tile;    // current tile, or −1 for the text

    __device__ __forceinline__ void enter(const KeyWork& w) {
        if (listed < w.tile_count) {
            tile = w.tiles == nullptr ? listed : __ldg(w.tiles + listed);
            parts = live_parts<CHUNK>(boundary_axes(tile));  // trailing all-hole chunks are skipped
        } else {
            tile = -1;
            parts = (w.text_valid + CHUNK - 1) / CHUNK;
        }
    }
    __device__ __forceinline__ void start(const KeyWork& w) {
        listed = 0;
        part = 0;
        enter(w);
        // Tiles never have zero chunks; only the text can, and it comes last.
        if (parts == 0) listed = w.tile_count + 1;
    }
    __device__ __forceinline__ bool valid(const KeyWork& w) const { return listed <= w.tile_count && part < parts; }
    __device__ __forceinline__ void advance(const KeyWork& w) {
        if (++part == parts && listed < w.tile_count) {
            ++listed;
            part = 0;
            enter(w);
        }
    }
    __device__ __forceinline__ QueryChunk chunk(const KeyWork& w) const {
        QueryChunk c;
        const int offset = part * CHUNK;
        if (tile >= 0) {
            c.row0 = tile * TILE_VOL + offset;
            c.valid = min(CHUNK, TILE_VOL - offset);
        } else {
            c.row0 = VIDEO_TOKENS + offset;
            c.valid = min(CHUNK, w.text_valid - offset);
        }
        return c;
    }
};

}  // namespace sta

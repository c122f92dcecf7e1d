// Sliding Tile Attention, Hopper forward kernel: work decoding. Which query block a CTA computes (text
// blocks of every (batch, head) first, then the video blocks, tile by tile in the head's `visited_tile`
// order), which of its rows are real (holes, packed rows of padded tiles, the row's valid text), and the
// cursor over the key chunks the block attends, which the producer and the consumers each walk. After
// sta_sm90_shape.cuh.

#pragma once

#include "sta_common.cuh"
#include "sta_sm90_shape.cuh"

namespace sta {

// ---- Holes (tables evaluated at compile time) --------------------------------------------------------

/// Bit b set: query block b of a tile with padded axes `axes` holds only holes (blocks 0...63).
__host__ __device__ constexpr uint64_t dead_query_blocks_ct(int axes) {
    uint64_t bits = 0;
    for (int b = 0; b < QBLOCKS_PER_TILE && b < 64; ++b)
        if (all_holes(b * BLOCK_M, BLOCK_M, axes)) bits |= 1ull << b;
    return bits;
}

/// The table above, evaluated at compile time.
template <int Axes>
struct HoleTable {
    static constexpr uint64_t dead_query_blocks = dead_query_blocks_ct(Axes);
};

__device__ __forceinline__ bool query_block_dead(int sub, int axes) {
    if constexpr (!HAS_HOLES) {
        return false;
    } else {
        uint64_t bits = 0;
        switch (axes) {
            case 0: bits = 0; break;
            case 1: bits = HoleTable<1>::dead_query_blocks; break;
            case 2: bits = HoleTable<2>::dead_query_blocks; break;
            case 3: bits = HoleTable<3>::dead_query_blocks; break;
            case 4: bits = HoleTable<4>::dead_query_blocks; break;
            case 5: bits = HoleTable<5>::dead_query_blocks; break;
            case 6: bits = HoleTable<6>::dead_query_blocks; break;
            default: bits = HoleTable<7>::dead_query_blocks; break;
        }
        return sub < 64 && ((bits >> sub) & 1);
    }
}

// ---- Query packing ----------------------------------------------------------------------------------

constexpr bool PACK_QUERIES = PAD_T || PAD_H;

/// Whether the query rows of a tile with padded axes `axes` are packed (holes are whole lines).
__device__ __forceinline__ bool packed_tile(int axes) { return PACK_QUERIES && axes != 0 && (axes & 4) == 0; }

/// Real rows of a packed tile.
__device__ __forceinline__ int packed_rows(int axes) {
    return ((axes & 1) ? REAL_T : TILE_T) * ((axes & 2) ? REAL_H : TILE_H) * TILE_W;
}

/// Tile offset of the `rank`-th real row of a packed tile (real rows in tile order).
__device__ __forceinline__ int packed_offset(int rank, int axes) {
    const int real_h = (axes & 2) ? REAL_H : TILE_H;
    const int line = rank / TILE_W;
    const int w = rank - line * TILE_W;
    const int t = line / real_h;
    const int h = line - t * real_h;
    return (t * TILE_H + h) * TILE_W + w;
}

// ---- Work decomposition -----------------------------------------------------------------------------

/// The query block a CTA computes and the key tiles it visits.
struct Work {
    int bh;            // batch · heads + head
    int row0;          // first query row (sequence index)
    int rows;          // query rows of this block that belong to it (≤ 128; the rest belong elsewhere)
    bool text_query;   // a block of text queries
    bool any;          // false when no row of the block attends anything (holes, padding text)
    int tile_count;    // key tiles visited before the text
    const int* tiles;  // key tiles of a video query block (nullptr for text queries: every tile)
    int axes;          // padded axes of the query tile (0 for text)
    bool packed;       // rows are the real rows pack_base ..< pack_base + rows of tile row0 / TILE_VOL
    int pack_base;
    bool writes_holes; // this unit also writes O = 0 / LSE = −∞ to the hole rows of its packed tile
    int text_valid;    // valid text positions of the block's batch row (0 ... TEXT_COUNT)
};

__device__ __forceinline__ Work decode_work(int unit, int heads, int batch, const int* __restrict__ window_of_head,
                                            const int* __restrict__ key_tile_start,
                                            const int* __restrict__ key_tiles, const int* __restrict__ visit_of_head,
                                            const int* __restrict__ text_valid, int default_text_valid) {
    Work w;
    w.axes = 0;
    w.packed = false;
    w.pack_base = 0;
    w.writes_holes = false;
    const int text_units = batch * heads * TEXT_QBLOCKS;
    if (TEXT_QBLOCKS > 0 && unit < text_units) {
        constexpr int text_qblocks = TEXT_QBLOCKS > 0 ? TEXT_QBLOCKS : 1;  // no division by zero
        w.bh = unit / text_qblocks;
        const int block = unit - w.bh * text_qblocks;
        w.row0 = VIDEO_TOKENS + block * BLOCK_M;
        w.rows = min(BLOCK_M, TEXT_COUNT - block * BLOCK_M);
        w.text_query = true;
        w.tiles = nullptr;
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        w.any = block * BLOCK_M < w.text_valid;
        w.tile_count = NUM_TILES;
    } else {
        unit -= text_units;
        constexpr int per_head = NUM_TILES * QBLOCKS_PER_TILE;
        w.bh = unit / per_head;
        const int head = w.bh % heads;
        const int rest = unit - w.bh * per_head;
        const int visit = rest / QBLOCKS_PER_TILE;
        const int tile = visited_tile(visit, __ldg(visit_of_head + head));
        const int sub = rest - visit * QBLOCKS_PER_TILE;
        w.row0 = tile * TILE_VOL + sub * BLOCK_M;
        w.rows = min(BLOCK_M, TILE_VOL - sub * BLOCK_M);
        w.text_query = false;
        w.any = !query_block_dead(sub, boundary_axes(tile));
        if constexpr (PACK_QUERIES) {
            const int axes = boundary_axes(tile);
            if (packed_tile(axes)) {
                const int real = packed_rows(axes);
                w.axes = axes;
                w.row0 = tile * TILE_VOL;
                w.pack_base = sub * BLOCK_M;
                w.packed = w.pack_base < real;
                w.rows = w.packed ? min(BLOCK_M, real - w.pack_base) : 0;
                w.any = w.packed;
                w.writes_holes = sub == QBLOCKS_PER_TILE - 1;
            }
        }
        w.text_valid = row_text_valid(text_valid, default_text_valid, w.bh / heads);
        const int row = __ldg(window_of_head + head) * NUM_TILES + tile;
        const int start = __ldg(key_tile_start + row);
        w.tile_count = __ldg(key_tile_start + row + 1) - start;
        w.tiles = key_tiles + start;
    }
    return w;
}

/// Consumer warpgroups that compute `w`: one when the block has at most 64 rows (the second would compute
/// rows that belong to no query, and the first runs faster alone), else two.
__device__ __forceinline__ int computing_consumers(const Work& w) { return w.rows > 64 ? 2 : 1; }

/// One chunk of at most BLOCK_N keys: never straddles a tile or the text.
struct Chunk {
    int key_row;  // first key (sequence index)
    int valid;    // keys of the chunk inside its tile or inside the valid text (the rest are masked)
    int tile;     // the key tile, or −1 for text
    int offset;   // offset of the chunk's first key inside its tile
    int part;     // chunk index inside its tile (or the text): offset / BLOCK_N unless packed
    bool packed;  // KEY_SLICES runs of SLICE_KEYS real keys from t-slices part · KEY_SLICES ... of the tile
};

/// Whether the keys of a tile with padded axes `axes` are loaded in packed chunks (padded along H alone).
__device__ __forceinline__ bool packed_keys(int axes) { return PACK_KEYS && axes == 2; }

/// What the consumers need of a chunk, which the producer publishes in the chunk's stage so that the
/// consumers walk no cursor of their own: whether it is the block's last chunk, and what its mask is made
/// of, and whether it and the next chunk are narrow (the consumers issue a chunk's Q·Kᵀ before they read
/// its ChunkInfo). Bits 0–8: the valid keys (≤ BLOCK_N); 9–11: the padded axes of its tile (0 for text);
/// 12: a text chunk; 13: it may need a mask; 14: the block's last chunk; 15: narrow; 16: the next chunk is
/// narrow; 17–31: its part (chunk index in its tile).
struct ChunkInfo {
    uint32_t bits;

    static constexpr uint32_t TEXT = 1u << 12, MASKED = 1u << 13, LAST = 1u << 14, NARROW = 1u << 15,
                              NEXT_NARROW = 1u << 16;

    /// Whether chunk `c` is loaded and computed NARROW_N keys wide.
    __device__ __forceinline__ static bool narrow(const Chunk& c) {
        return PACK_KEYS ? c.packed : NARROW_CHUNKS && c.valid <= NARROW_N;
    }

    /// The ChunkInfo of `c` without the LAST and NEXT_NARROW bits, which the producer adds once it has
    /// moved its cursor on.
    __device__ __forceinline__ static ChunkInfo of(const Chunk& c) {
        const int axes = c.tile >= 0 ? boundary_axes(c.tile) : 0;
        bool masked = c.valid < (narrow(c) ? NARROW_N : BLOCK_N);  // a partial chunk: the text's, a tile's last
        if constexpr (HAS_HOLES) masked |= axes != 0 && !c.packed;
        return {static_cast<uint32_t>(c.valid) | (static_cast<uint32_t>(axes) << 9) | (c.tile < 0 ? TEXT : 0u) |
                (masked ? MASKED : 0u) | (narrow(c) ? NARROW : 0u) | (static_cast<uint32_t>(c.part) << 17)};
    }
    __device__ __forceinline__ bool last() const { return bits & LAST; }
    __device__ __forceinline__ bool is_narrow() const { return bits & NARROW; }
    __device__ __forceinline__ bool next_narrow() const { return bits & NEXT_NARROW; }
    __device__ __forceinline__ bool masked() const { return bits & MASKED; }
    __device__ __forceinline__ bool text() const { return bits & TEXT; }
    __device__ __forceinline__ int valid() const { return bits & 511u; }
    __device__ __forceinline__ int axes() const { return (bits >> 9) & 7u; }
    __device__ __forceinline__ int part() const { return bits >> 17; }
};

/// Walks the chunks of a query block in order: the live chunks of each key tile, then the text chunks.
/// The producer walks it and publishes each chunk's ChunkInfo; the consumers only ask whether it is empty.
struct ChunkCursor {
    int listed;   // index into the key tile list; tile_count for the text
    int part;     // chunk inside the current tile (or the text)
    int parts;    // chunks of the current tile (or the text)
    int tile;     // current tile, or −1 for the text
    bool packed;  // the current tile's keys come in packed chunks

    __device__ __forceinline__ void enter(const Work& w) {
        packed = false;
        if (listed < w.tile_count) {
            tile = w.text_query ? listed : __ldg(w.tiles + listed);
            const int axes = boundary_axes(tile);
            packed = packed_keys(axes);
            // Trailing all-hole chunks are not loaded.
            parts = packed ? TILE_T / (PACK_KEYS ? KEY_SLICES : 1) : live_parts<BLOCK_N>(axes);
        } else {
            tile = -1;
            parts = (w.text_valid + BLOCK_N - 1) / BLOCK_N;
        }
    }
    __device__ __forceinline__ void start(const Work& w) {
        listed = 0;
        part = 0;
        enter(w);
        if (parts == 0) listed = w.tile_count + 1;  // no key at all (no tiles, no text)
    }
    /// Whether the cursor is on a chunk.
    __device__ __forceinline__ bool valid(const Work& w) const { return listed <= w.tile_count && part < parts; }
    __device__ __forceinline__ void advance(const Work& w) {
        if (++part == parts && listed < w.tile_count) {
            ++listed;
            part = 0;
            enter(w);
        }
    }
    __device__ __forceinline__ Chunk chunk(const Work& w) const {
        Chunk c;
        c.tile = tile;
        c.part = part;
        c.packed = packed;
        c.offset = part * (packed ? KEY_SLICES * SLICE : BLOCK_N);
        if (tile >= 0) {
            c.key_row = tile * TILE_VOL + c.offset;
            c.valid = packed ? NARROW_N : min(BLOCK_N, TILE_VOL - c.offset);
        } else {
            c.key_row = VIDEO_TOKENS + c.offset;
            c.valid = min(BLOCK_N, w.text_valid - c.offset);
        }
        return c;
    }
};

}  // namespace sta

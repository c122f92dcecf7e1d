"""The version of the sliding-tile-attention package; the same number as the Swift package's
(`SlidingTileAttentionVersion.string`) and the library's `sta_version()`."""

__version__ = "0.3.0"

// The types of the façade's API come from these modules; `import SlidingTileAttention` brings them too.
@_exported import STAGeometry
@_exported import STATensors

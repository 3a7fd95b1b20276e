//! The deterministic network simulator. (Being written.)

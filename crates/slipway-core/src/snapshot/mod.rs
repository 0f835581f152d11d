//! snapshot (in progress)

//! admin API types (in progress)

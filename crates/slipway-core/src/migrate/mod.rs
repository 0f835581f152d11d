//! migrate (in progress)

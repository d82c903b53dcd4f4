//! Pure code, no I/O: the experiment model, bucketing, allocation, statistics, simulation
//! and state encryption. Tested and benchmarked alone.

pub mod activity;
pub mod allocator;
pub mod campaign;
pub mod counting;
pub mod crypto;
pub mod decision;
pub mod hashing;
pub mod model;
pub mod sequential;
pub mod simulator;
pub mod special;
pub mod stats;
pub mod text;
pub mod time;
pub mod uplift;

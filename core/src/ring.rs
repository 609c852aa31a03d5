//! Bounded lock-free SPSC ring (being written).

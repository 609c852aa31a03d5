//! Take-once cell.

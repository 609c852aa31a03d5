//! Examples of aiothreads live in `src/bin/`.

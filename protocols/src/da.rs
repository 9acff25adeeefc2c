//! DA events (filled in next).

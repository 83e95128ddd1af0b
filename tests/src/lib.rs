//! kiln test harness (in progress).

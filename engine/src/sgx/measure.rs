//! The streamed MRENCLAVE hasher.

//! Reading SGXS measured streams.

//! The SIGSTRUCT: build, parse, verify, MRSIGNER.

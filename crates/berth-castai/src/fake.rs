//! A stand-in for the Cast.ai API on loopback (feature `test-util`). Placeholder until
//! the server lands in the next commit.

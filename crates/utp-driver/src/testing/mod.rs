//! The conformance suite every runtime adapter runs from its tests (feature `testing`).

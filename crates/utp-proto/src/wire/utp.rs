//! The uTP (BEP 29) packet format. (Being written.)

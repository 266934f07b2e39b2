//! Record matching building blocks, free of any engine: normalisations of values,
//! similarity comparators and precision thresholds, a Fellegi-Sunter match model
//! (comparison levels, training by expectation maximisation, scoring), clustering of
//! matched pairs, and stable customer ids across refreshes.
#![warn(missing_docs)]

pub mod cluster;
pub mod compare;
pub mod ids;
pub mod model;
pub mod normalize;
pub mod random;

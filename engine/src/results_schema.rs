//! The schema of `results.csv`, the report's long-format frame: its column names and the `seed`
//! of an aggregate row. The report stage (oodpipe-stages) writes the file with these names and
//! `diff`/`runs` read it back here ([`crate::results_frame`], [`crate::results_diff`]), so that a
//! column renamed or added on one side cannot leave the other behind. The engine treats the rows
//! as data: three key strings, a number and maybe an interval.

/// The OOD set's label (a key column).
pub const OOD_SET: &str = "ood_set";
/// The method's label (a key column).
pub const METHOD: &str = "method";
/// The metric's name (a key column).
pub const METRIC: &str = "metric";
/// A training seed's number, or [`ALL_SEEDS`] for the aggregate row.
pub const SEED: &str = "seed";
/// The value (in percent).
pub const VALUE: &str = "value";
/// The interval's bounds (empty where none).
pub const CI_LOW: &str = "ci_low";
pub const CI_HIGH: &str = "ci_high";
/// What kind of interval `ci_low`/`ci_high` are.
pub const INTERVAL: &str = "interval";
/// The standard deviation across seeds (or replicates).
pub const STD: &str = "std";
/// How many seeds (or images) the value is over.
pub const N: &str = "n";
/// The paper's value, and ours minus the paper's.
pub const PAPER: &str = "paper";
pub const DELTA: &str = "delta";

/// A row's identity: (OOD set, method, metric).
pub const KEYS: [&str; 3] = [OOD_SET, METHOD, METRIC];

/// Every column of `results.csv`, in the file's order.
pub const COLUMNS: [&str; 12] = [OOD_SET, METHOD, METRIC, SEED, VALUE, CI_LOW, CI_HIGH, INTERVAL, STD, N, PAPER, DELTA];

/// The `seed` of a row that aggregates every seed.
pub const ALL_SEEDS: &str = "all";

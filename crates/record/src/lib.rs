//! Recording: a camera's synchronized output written as fragmented MP4 segments that survive a
//! crash, indexed in SQLite, kept within age and disk limits, and exported as one MP4.
//!
//! Everything here is blocking IO; the server runs it on its own threads.

pub mod export;
pub mod file_source;
pub mod index;
pub mod mp4_boxes;
pub mod parameter_sets;
pub mod reconcile;
pub mod retention;
pub mod segment_path;
pub mod segment_writer;
pub mod storage_lock;
pub mod utc;

pub use export::{plan as plan_export, ExportError, ExportPlan};
pub use index::{Index, IndexError, SegmentRow};
pub use reconcile::{reconcile, Reconciled};
pub use retention::{enforce as enforce_retention, RetentionPolicy, RetentionReport};
pub use segment_path::{segment_path, BadSegmentPath};
pub use segment_writer::{FrameKind, RecordFrame, SegmentEvent, SegmentWriter, WriteError};
pub use storage_lock::StorageLock;

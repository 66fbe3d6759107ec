//! The backup engine: a deduplicating chunk store with incremental-forever
//! snapshots, verify, garbage collection and retention. No HTTP here: errors
//! ([`error::EngineError`]) name the object (snapshot, chunk digest, object
//! key, file path) and the cause; the API layer picks status codes. The work
//! runs on plain threads (hashing, compression, encryption are CPU-bound):
//! async callers wrap it in `spawn_blocking`.
//!
//! # Layout of a repository
//!
//! ```text
//! config.json                    chunk size, pack size, key check value (never the key)
//! packs/<hh>/<pack-id>           chunks appended whole, id = BLAKE3 of the pack
//! pack-index/<hh>/<pack-id>      digest -> (offset, stored len, plain len, flags)
//! indexes/<hh>/<index-id>        one fixed index per disk per snapshot
//! snapshots/<name>/<id>.json     manifests
//! locks/                         backup leases, gc.lock
//! tmp/                           writes in flight (local backend)
//! ```
//!
//! # Chunks
//!
//! Fixed-size 64 KiB chunks aligned to disk offsets ([`fixed_index`]): the
//! qcow2 cluster and dirty-bitmap granularity, so a scattered 64 KiB guest
//! write changes exactly one chunk and an incremental stores about what
//! changed (4 MiB chunks, as in PBS, would store up to 64x). Digest: BLAKE3 of
//! the plain chunk, keyed BLAKE3 when encrypted ([`digest`]). An all-zero chunk
//! is never stored: the index holds the reserved zero digest. A chunk is zstd
//! level 1 compressed when that saves at least 1/8, then AES-256-GCM encrypted
//! (random nonce, digest as associated data) when the repository has a key
//! ([`chunk_codec`], [`crypto`]). To avoid one object per 64 KiB, new chunks
//! are appended into ~8 MiB packs ([`pack`]) written whole. Dedup is global:
//! one chunk map for every disk, VM and snapshot ([`chunk_store`]).
//!
//! # Invariants
//!
//! * **Atomic writes.** Every object is written to a temporary name, fsynced,
//!   then published by rename (replace) or hard link (create-if-absent)
//!   ([`local_repository`]). Object stores give the same with whole-object PUT.
//! * **Manifest last.** A backup writes packs, then each pack's index, then
//!   the fixed indexes, and only then the manifest. A snapshot is visible iff
//!   its manifest exists, so a crash (kill -9 included) at any point leaves no
//!   visible snapshot and only unreferenced objects, which GC removes.
//! * **Content addressing.** Packs, pack indexes and fixed indexes are named
//!   by the BLAKE3 of their bytes and written create-if-absent: never modified.
//!   Manifests and fixed/pack indexes carry checksums or parse strictly, so a
//!   truncated or corrupt one is an error naming it, never a silent restore.
//! * **Incremental forever.** With changed ranges, a backup copies the
//!   parent's fixed index and re-reads only the chunks the ranges touch (plus
//!   the tail if the size changed); every snapshot's index still lists every
//!   chunk, so restore never replays a chain. Without ranges it reads all and
//!   stores only chunks the store does not hold.
//!
//! # Locks and garbage collection
//!
//! * **Backup** holds a lease object (`locks/backup-<uuid>.json`: pid, host,
//!   start time, parent index keys it reuses) from before it loads the chunk
//!   map until its manifest is written ([`lease`]). When it first reuses a
//!   chunk from a pack, it *touches* the pack (refreshes its mtime) and learns
//!   whether it still exists; a vanished pack's chunks are stored anew. Before
//!   writing the manifest it checks that every pack it reused still exists;
//!   if not (a GC decided just before the touch), that attempt writes no
//!   snapshot and the backup starts over from the source (bounded retries).
//! * **GC** takes the exclusive `locks/gc.lock` (create-if-absent). Cutoff =
//!   min(now − grace, start of the oldest live backup lease) − 1 s of slack
//!   for coarse filesystem timestamps. Mark: every chunk
//!   of every fixed index named by a manifest or a live lease (a manifest that
//!   cannot be read aborts GC). Sweep: a pack whose chunks are all unmarked is
//!   deleted (pack index first, then pack) only if its mtime, re-read just
//!   before, is older than the cutoff. So packs written by a running backup
//!   (newer than its lease), packs it touched, and the parent it reuses are
//!   never swept; orphans of crashed backups (packs without index, unused
//!   fixed indexes, `tmp/` files) go once older than the cutoff. Packs that
//!   are partly used are kept whole (repacking is not implemented). A backup
//!   loading the chunk map skips a pack index that vanishes under it.
//! * **Prune / forget** delete manifests only (chunks go at the next GC), and
//!   never one whose `immutable_until` lies in the future ([`prune`]).
//! * **Restore, verify, stats, random-access reads** take no lock: they only
//!   read immutable objects; a chunk swept under them is reported as missing.

pub mod backup;
pub mod changed_ranges;
pub mod chunk_codec;
pub mod chunk_dict;
pub mod chunk_store;
pub mod command;
pub mod crypto;
pub mod datastore;
pub mod digest;
pub mod error;
pub mod fixed_index;
pub mod gc;
pub mod lease;
pub mod limits;
pub mod local_repository;
pub mod manifest;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod repository;
pub mod restore;
pub mod sealed;
pub mod snapshot_reader;
pub mod stats;
pub mod verify;

pub use error::{EngineError, Result};

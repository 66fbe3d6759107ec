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
//! pack-index/<hh>/<pack-id>      digest -> (offset, stored len, plain len, flags)  [sealed]
//! indexes/<hh>/<index-id>        one fixed index per disk per snapshot              [sealed]
//! snapshots/<name>/<id>.json     manifests (JSON; sealed when encrypted)
//! dicts/chunks                   the zstd dictionary for chunks, once trained      [sealed]
//! index-log/<seq>                packs added / removed per backup, copy and GC (JSON)
//! locks/                         backup leases, gc.lock
//! tmp/                           writes in flight (local backend)
//! ```
//!
//! *Sealed* objects ([`sealed`]) are zstd-compressed (zero digests compress:
//! the benchmark's 2 GiB disk, 35 % zeros, has a 685,491-byte fixed index
//! instead of 1,048,640) and, when the repository has a key, AES-256-GCM
//! encrypted with a metadata key and bound to their pack id or object key:
//! an encrypted repository shows no digest, size or disk name in clear, only
//! the snapshot names and ids in the manifest keys, object sizes and times,
//! and the leases (pid, host, start). Reading any metadata (restore, verify,
//! gc, prune, forget, stats, snapshots) then needs the key.
//! Plain indexes of the first format (`SDFIDX01`, `SDPIDX01`) are still read
//! in a repository without a key.
//!
//! # Chunks
//!
//! Fixed-size 64 KiB chunks aligned to disk offsets ([`fixed_index`]): the
//! qcow2 cluster and dirty-bitmap granularity, so a scattered 64 KiB guest
//! write changes exactly one chunk and an incremental stores about what
//! changed (4 MiB chunks, as in PBS, would store up to 64x). Digest: BLAKE3 of
//! the plain chunk, keyed BLAKE3 when encrypted ([`digest`]). An all-zero chunk
//! is never stored: the index holds the reserved zero digest. A chunk is zstd
//! level 1 compressed when that saves at least 1/64 (a 4 KiB probe skips
//! incompressible data), then AES-256-GCM encrypted (random nonce, digest as
//! associated data) when the repository has a key ([`chunk_codec`],
//! [`crypto`]). Once the repository has a chunk dictionary ([`chunk_dict`]:
//! 16 KiB of content trained by the first backup from 32 compressible chunks,
//! kept only if it saves at least 2 % on them), compression uses it as a
//! prefix: 64 KiB chunks then compress like 1 MiB blocks (benchmark text:
//! 4.58x -> 4.84x). Levels 2-4 are no better at 64 KiB and the lazy levels
//! that are cost 4x the time, so level 1 stays. To avoid one object per
//! 64 KiB, new chunks are appended into ~8 MiB packs ([`pack`]) written whole.
//! Dedup is global: one chunk map for every disk, VM and snapshot
//! ([`chunk_store`]), kept on this machine's disk, not in memory
//! ([`index_cache`]: sorted tables refreshed from the pack indexes written
//! since, found through the index log ([`index_log`]) when the cache is
//! warm, by the full listing whenever it could be stale).
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
//! * **Content addressing.** Packs and fixed indexes are named by the BLAKE3
//!   of their stored bytes (a pack index by its pack's id) and written
//!   create-if-absent: never modified; a fixed index whose bytes do not match
//!   its name is refused. Manifests, sealed objects and the plain encodings
//!   inside them carry checksums or authentication tags and parse strictly, so
//!   a truncated or corrupt one is an error naming it, never a silent restore.
//! * **Dictionary.** `dicts/chunks` is written create-if-absent before any
//!   pack that uses it (a losing concurrent trainer adopts the winner's), is
//!   never modified or removed, and a chunk stored with it cannot be decoded
//!   without it: a missing or damaged dictionary is an error naming it.
//! * **Incremental forever.** With changed ranges, a backup copies the
//!   parent's fixed index and re-reads only the chunks the ranges touch (plus
//!   the tail if the size changed); every snapshot's index still lists every
//!   chunk, so restore never replays a chain. Without ranges it reads all and
//!   stores only chunks the store does not hold.
//!
//! # Locks and garbage collection
//!
//! No decision compares this machine's clock with an object's time, and no
//! listing is trusted to be complete on its own (object stores, [`gc_plan`]).
//!
//! * **Leases** ([`lease`]): a backup holds `locks/backup-<uuid>.json` (pid,
//!   host, parent index keys it reuses) from before it loads the chunk map
//!   until its manifest is written; a pin holds a snapshot. A heartbeat
//!   rewrites each lease every 60 s; a lease is live while the storage's
//!   clock ([`repository::Repository::server_now`]: a probe object's time)
//!   is less than 10 minutes past the lease's own time; on its own host a
//!   dead pid makes it stale at once. A backup whose heartbeat has not landed
//!   for 7 minutes commits nothing.
//! * **GC** takes the exclusive `locks/gc.lock` (create-if-absent with a
//!   random token, so our own retried write is recognised). Mark: every
//!   chunk of every fixed index named by a manifest or a live lease (a
//!   manifest that cannot be read aborts GC, and so does a listing of
//!   `snapshots/` that misses a snapshot the caller knows exists). Then the
//!   two-phase plan ([`gc_plan`]): GC writes `gc/plan-<seq>` with its
//!   candidates (unreferenced packs and fixed indexes, partly used packs to
//!   repack), then records the live backups in it; a backup, after putting
//!   its lease, reads the newest plan and neither reuses a candidate's
//!   chunks nor writes onto a candidate's key. A later GC deletes (pack
//!   index first, then pack) or repacks a candidate of the previous plan
//!   once that plan is the grace period old (storage clock) and every backup
//!   it recorded has ended, and only if the candidate is still unused; with
//!   no grace and no backup running, a GC acts on its own plan at once.
//!   Repacking copies a partly used pack's chunks in use (stored bytes as
//!   they are) into new packs written whole with their indexes, and only
//!   then removes the old pack; a reader whose pack has gone looks the chunk
//!   up again in the pack indexes written since. `tmp/` files go by age
//!   (storage clock) while no backup runs. GC never touches `dicts/`.
//! * **Backup safety net**: before its manifest a backup lists the GC plans
//!   again; when a GC claimed a plan since the one it read, it checks that
//!   every pack it reused still exists ([`gc_plan::check_reused`]: one
//!   listing or a HEAD each, whichever is fewer requests); if one is gone,
//!   that attempt writes no snapshot and the backup starts over from the
//!   source (bounded retries). Without a newer plan no GC can have deleted
//!   a reused pack, and no request per reused pack is made.
//! * **Copies** ([`copy`]: one restore point to another repository, 3-2-1)
//!   write the target like a backup: lease, newest plan avoided, packs and
//!   indexes first, every chunk read back and re-hashed at the target, then
//!   the manifest (same name and id); the source snapshot is pinned.
//! * **Prune / forget** delete manifests only (chunks go at the next GC), and
//!   never one whose `immutable_until` lies in the future ([`prune`]).
//! * **Restore, verify, stats, random-access reads** take no lock: they only
//!   read immutable objects; a chunk swept under them is reported as missing.

pub mod aligned_buf;
pub mod backup;
pub mod block_source;
pub mod changed_ranges;
pub mod chunk_codec;
pub mod chunk_dict;
pub mod chunk_store;
pub mod command;
pub mod copy;
pub mod crypto;
pub mod datastore;
pub mod digest;
pub mod error;
pub mod fixed_index;
pub mod gc;
pub mod gc_plan;
pub mod index_cache;
pub mod index_log;
pub mod lease;
pub mod limits;
pub mod local_repository;
pub mod manifest;
pub mod object_lock;
pub mod pack;
pub mod progress;
pub mod prune;
pub mod repository;
pub mod restore;
pub mod restore_output;
pub mod sealed;
pub mod snapshot_reader;
pub mod stats;
pub mod verify;

pub use error::{EngineError, Result};
